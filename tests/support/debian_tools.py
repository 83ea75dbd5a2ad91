"""Real peer programs from Debian (promtool, prometheus, amtool, docker-compose) for the deploy tests.

``.ci/run`` installs them up front. When a developer runs the tests without them, the first test
that needs one installs its package with apt (as root), or is skipped with the reason and the
command to run; it never passes without running the tool.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

#: binary -> Debian package that ships it.
PACKAGES = {"promtool": "prometheus", "prometheus": "prometheus", "amtool": "prometheus-alertmanager",
            "docker-compose": "docker-compose"}


@functools.lru_cache(maxsize=None)
def _apt_updated() -> bool:
    return subprocess.run(["apt-get", "update", "-qq"], capture_output=True).returncode == 0


@functools.lru_cache(maxsize=None)
def debian_tool(binary: str) -> str:
    """Path of ``binary``; installs its Debian package if missing and possible, else skips."""
    found = shutil.which(binary)
    if found:
        return found
    package = PACKAGES[binary]
    how = f"apt-get install -y {package}"
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"{binary} not installed and apt-get is unavailable or not root: run '{how}'")
    if not _apt_updated():
        pytest.skip(f"{binary} not installed and 'apt-get update' failed: run '{how}'")
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                          capture_output=True, text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    found = shutil.which(binary)
    if done.returncode != 0 or not found:
        pytest.skip(f"{binary}: '{how}' failed: {done.stderr.strip()[-500:]}")
    return found


def run_tool(binary: str, *args: str, cwd: str | os.PathLike[str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a Debian tool; the result carries stdout+stderr for assertion messages."""
    return subprocess.run([debian_tool(binary), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
