"""The package type-checks clean (settings in pyproject.toml's [tool.mypy]); the package says so
to its users with a ``py.typed`` marker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_mypy_finds_no_errors() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert (done.returncode, done.stdout.strip()) == (0, "")


def test_the_package_is_marked_typed() -> None:
    assert (REPO / "streams" / "py.typed").is_file()
