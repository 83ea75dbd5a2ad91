"""Several worker processes sharing one pipeline's partitions, for tests that ask more than one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from streams.config import Settings
from streams.local.worker_process import WorkerProcess
from tests.support.wait import wait_for


def start_fleet(workers: Callable[..., WorkerProcess], settings: Settings, tmp_path: Path,
                count: int = 2) -> list[WorkerProcess]:
    """``count`` workers (the ``workers`` fixture), returned once the partitions are split evenly."""
    fleet = [workers(settings.with_overrides(data_dir=str(tmp_path / f"data-{i}")), name=f"worker{i}")
             for i in range(count)]
    for worker in fleet:
        worker.wait_ready(timeout=60)
    share = [settings.partitions // count] * count

    def split() -> Any:
        return sorted(len(w.figures()["partitions"]) for w in fleet) == share

    wait_for(split, timeout=60, message=f"the {count} workers sharing the {settings.partitions} partitions")
    return fleet
