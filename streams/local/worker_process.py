"""Worker processes started by the demo, the benchmark and the tests (real ``streams worker`` runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from streams.config import Settings, settings_to_toml
from streams.local.broker import free_port


class WorkerProcess:
    """``python -m streams worker`` with the given settings, on its own /metrics port."""

    def __init__(self, settings: Settings, log_path: str | os.PathLike[str] | None = None,
                 loglevel: str = "warning", extra_args: tuple[str, ...] = (), keep_port: bool = False) -> None:
        # Several workers on one machine: the default port is swapped for a free one unless kept.
        moved = settings.web_port == 6066 and not keep_port
        self.settings = settings.with_overrides(web_port=free_port()) if moved else settings
        self.log_path = log_path
        self.loglevel = loglevel
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self._config = tempfile.NamedTemporaryFile("w", suffix=".toml", prefix="worker-", delete=False)
        self._config.write(settings_to_toml(self.settings))
        self._config.close()

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self) -> "WorkerProcess":
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "--config", self._config.name,
             "--loglevel", self.loglevel, *self.extra_args],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, timeout: float = 2.0) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return resp.read()

    def figures(self) -> dict[str, Any]:
        """The worker's /figures document: per-partition figures and outcome counts."""
        return orjson.loads(self.get("/figures"))

    def wait_ready(self, timeout: float = 60.0, partitions: int | None = None) -> "WorkerProcess":
        """Wait until the worker serves /figures (and owns ``partitions`` partitions, if given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited with code {self.proc.returncode if self.proc else None}"
                                   f" (log: {self.log_path})")
            try:
                doc = self.figures()
                if partitions is None or len(doc["partitions"]) >= partitions:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"worker at {self.url} not ready within {timeout}s (log: {self.log_path})")

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye (a crash)."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM and wait for a clean shutdown; SIGKILL if it does not come."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        Path(self._config.name).unlink(missing_ok=True)

    def __enter__(self) -> "WorkerProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
