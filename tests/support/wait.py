"""Polling helper for tests that wait on worker processes and brokers."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.3,
             message: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except OSError:
            last = None
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message} (last: {last!r})")
