"""Ctrl-C and SIGTERM end the commands that start processes (demo, up) the same clean way.

Both raise ``KeyboardInterrupt`` in the main thread, so the context managers that started the
broker and the worker stop them in order. SIGINT is set explicitly: a program started from a
script as a background job inherits SIGINT *ignored*, and Python then never installs its handler.
"""

from __future__ import annotations

import contextlib
import signal
from types import FrameType
from typing import Iterator


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise ``KeyboardInterrupt``; the previous handlers after."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
