"""Real peer programs from Debian (prometheus, promtool, amtool, docker-compose, chromium) for the tests.

The README's test command has to pass alone on a fresh Debian machine, so the test session
installs what its tests need: test modules name their programs with the ``needs_debian`` marker,
and before the first test runs (``pytest_collection_finish`` in ``tests/conftest.py``) the missing
ones are installed with ``apt-get``, when it is there and the session runs as root. When it
cannot, the session says so once, with the command to run, and each test that needs a missing
program fails naming it: a test never passes, nor is skipped, without running its tool.

``python -m tests.support.debian_tools`` installs every one of them up front (e.g. for a Docker
image).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from typing import Callable, Iterable

import pytest

#: binary -> Debian package that ships it.
PACKAGES = {"promtool": "prometheus", "prometheus": "prometheus", "amtool": "prometheus-alertmanager",
            "prometheus-alertmanager": "prometheus-alertmanager",
            "docker-compose": "docker-compose", "chromium": "chromium"}
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
#: Wait for another apt-get (unattended upgrades, another test run) instead of failing at once.
APT_LOCK_WAIT = ["-o", "DPkg::Lock::Timeout=300"]
problems: dict[str, str] = {}
"""binary -> why it is not installed (filled by :func:`install`)."""


def how_to_install(packages: Iterable[str]) -> str:
    return "apt-get install -y --no-install-recommends " + " ".join(sorted(set(packages)))


def missing(binaries: Iterable[str]) -> list[str]:
    return sorted({b for b in binaries if shutil.which(b) is None})


def install(binaries: Iterable[str], say: Callable[[str], None] = print) -> list[str]:
    """Install the Debian packages of the missing ``binaries``; returns the binaries still missing
    (their reasons in :data:`problems`)."""
    absent = missing(binaries)
    if not absent:
        return []
    packages = sorted({PACKAGES[b] for b in absent})
    how = how_to_install(packages)
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        why = f"not installed, and this is not root with apt-get: run 'sudo {how}'"
    else:
        say(f"installing what the tests need from Debian: {' '.join(packages)} (apt-get; a few minutes the first time)")
        env = {**os.environ, **APT_ENV}
        steps = [["apt-get", *APT_LOCK_WAIT, "update", "-qq"],
                 ["apt-get", *APT_LOCK_WAIT, "install", "-y", "-qq", "--no-install-recommends", *packages]]
        why = ""
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                why = f"'{' '.join(step)}' failed: {done.stderr.strip()[-400:]}; run '{how}'"
                break
    still = missing(absent)
    for binary in still:
        problems[binary] = why or f"'{how}' did not install it"
    if still:
        say(f"WARNING: tests that need {', '.join(still)} will fail: {problems[still[0]]}")
    return still


@functools.lru_cache(maxsize=None)
def debian_tool(binary: str) -> str:
    """Path of ``binary``; installs its Debian package if missing and possible, else fails the test."""
    found = shutil.which(binary) or (None if install([binary]) else shutil.which(binary))
    if found is None:
        pytest.fail(f"{binary} ({PACKAGES[binary]}): {problems.get(binary, 'not installed')}", pytrace=False)
    return found


def run_tool(binary: str, *args: str, cwd: str | os.PathLike[str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a Debian tool; the result carries stdout+stderr for assertion messages."""
    return subprocess.run([debian_tool(binary), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def needed_by(items: Iterable[pytest.Item]) -> set[str]:
    """The programs the collected tests name with ``@pytest.mark.needs_debian(...)``."""
    return {binary for item in items for mark in item.iter_markers("needs_debian") for binary in mark.args}


if __name__ == "__main__":
    sys.exit(1 if install(PACKAGES) else 0)
