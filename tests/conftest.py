"""Fixtures: one embedded Tansu broker for the session, isolated topics per test, worker processes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from streams.config import Settings, load_settings
from streams.local.broker import EmbeddedBroker
from streams.local.worker_process import WorkerProcess
from streams.runtime.topics import ensure_topics
from tests.support.debian_tools import install, needed_by


def pytest_collection_finish(session: pytest.Session) -> None:
    """Install the Debian programs the collected tests need before the first one runs."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    install(needed_by(session.items), say=reporter.write_line if reporter else print)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A real Kafka-protocol broker (Tansu) on a free loopback port, stopped even if tests fail."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture
def make_settings(broker: EmbeddedBroker, tmp_path: Path) -> Callable[..., Settings]:
    """Settings on the embedded broker with topics and group of this test's own."""

    def make(**overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:8]
        base = dict(bootstrap=broker.bootstrap, local=True, app_id=f"t-{tag}", partitions=4,
                    events_topic=f"events-{tag}", dead_letter_topic=f"dlq-{tag}",
                    signals_topic=f"signals-{tag}", sessions_topic=f"sessions-{tag}",
                    metrics_topic=f"metrics-{tag}", partials_topic=f"partials-{tag}", data_dir=str(tmp_path / f"data-{tag}"),
                    commit_interval_s=0.5)
        base.update(overrides)
        settings = load_settings(env={}, overrides=base)
        asyncio.run(ensure_topics(settings))
        return settings

    return make


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker processes; every one is stopped (SIGTERM, then SIGKILL) after the test."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, name: str = "worker") -> WorkerProcess:
        proc = WorkerProcess(settings, log_path=tmp_path / f"{name}-{len(started)}.log", loglevel="info")
        started.append(proc.start())
        return proc

    yield start
    for proc in started:
        proc.stop(timeout=10)
