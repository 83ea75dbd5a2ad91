"""The real-data group: public logs of real behaviour from ``../shared/datasets`` (never copied into
the repository). It runs whenever that folder is there (CI has it) and is skipped, saying why,
when it is not."""

from __future__ import annotations

import pytest

from streams.config import REPO_ROOT

DATASETS = REPO_ROOT.parent / "shared" / "datasets"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if DATASETS.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{DATASETS} (public event logs, see its README) is not here: "
                                   "the real-data group needs it")
    for item in items:
        if "realdata" in item.keywords:
            item.add_marker(skip)
