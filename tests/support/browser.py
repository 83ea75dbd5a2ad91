"""Headless Chromium for tests that look at a page the way a person would."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.debian_tools import debian_tool

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    """Debian's Chromium (tests using it are marked ``needs_debian("chromium")``)."""
    return debian_tool("chromium")


def rendered_dom(page: Path, profile: Path) -> str:
    """The DOM after the page's scripts ran."""
    out = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                          "--dump-dom", page.resolve().as_uri()], capture_output=True, timeout=120)
    return out.stdout.decode()


def screenshot(page: Path, png: Path, profile: Path, size: str = "1280,1600") -> Path:
    subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                    "--virtual-time-budget=5000", f"--screenshot={png}", page.resolve().as_uri()],
                   capture_output=True, timeout=120)
    return png
