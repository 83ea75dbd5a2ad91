"""A wrong broker address: every command that talks to Kafka ends in one line naming the address
and the cause, within the configured time, with no traceback and no unclosed client."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterator

import pytest

from streams.local.broker import free_port
from tests.unit.config.test_config import run_cli


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP listener that accepts connections and never answers (a wrong service, a firewall)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def commands(tmp_path: Path) -> list[list[str]]:
    events = tmp_path / "one.jsonl"
    events.write_text('{"event_id":"a","type":"page","user_id":"u1","timestamp":"2026-11-01T10:00:00Z"}\n')
    return [["produce", "--quiet", str(events)], ["tail", "--what", "signals"], ["worker"],
            ["report", "-o", str(tmp_path / "r.html")]]


def assert_one_line(result: object, *expected: str) -> None:
    err = result.stderr.decode()  # type: ignore[attr-defined]
    lines = [line for line in err.splitlines() if line.strip()]
    assert result.returncode == 1, err  # type: ignore[attr-defined]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Unclosed" not in err
    for text in expected:
        assert text in lines[0], lines[0]


def test_refused_address_is_named_with_its_cause(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    for argv in commands(tmp_path):
        result = run_cli(*argv, env={"ENGAGEMENT_BOOTSTRAP": address})
        assert_one_line(result, address, "connection refused")


def test_unknown_host_is_named(tmp_path: Path) -> None:
    result = run_cli("tail", "--what", "signals", env={"ENGAGEMENT_BOOTSTRAP": "no-such-host.invalid:9092"})
    assert_one_line(result, "no-such-host.invalid:9092", "unknown host")


def test_a_listener_that_never_answers_gives_up_after_the_configured_timeout(tmp_path: Path,
                                                                            silent_listener: int) -> None:
    address = f"127.0.0.1:{silent_listener}"
    for argv in commands(tmp_path):
        # run_cli's own limit (60 s) is far above the 1 s asked for; aiokafka alone waits 40 s per try
        result = run_cli(*argv, env={"ENGAGEMENT_BOOTSTRAP": address, "ENGAGEMENT_CONNECT_TIMEOUT_S": "1"})
        assert_one_line(result, address, "no Kafka answer within 1s")


def test_version() -> None:
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"streams, version {version('engagement-streams')}"
