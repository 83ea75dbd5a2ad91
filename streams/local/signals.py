"""Ctrl-C, SIGTERM and a closed terminal (SIGHUP) end the commands that start processes (demo,
up) the same clean way.

Each raises ``KeyboardInterrupt`` in the main thread, so the context managers that started the
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
    """Within the block, SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt``; the previous
    handlers after. (The broker and the worker run in sessions of their own, so a closed terminal
    reaches only this process, which must stop them.)"""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
