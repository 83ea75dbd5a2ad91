"""kdd2015 (MOOC activity, every event stamped 23:59:59 of its day): a day-granular real log."""

from __future__ import annotations

import gzip

import orjson
import pytest

from streams.config import MS_PER_DAY
from streams.core.contract import parse_time_ms
from streams.core.sourceclock import SourceClock, evidence_id
from tests.realdata.conftest import DATASETS

pytestmark = pytest.mark.realdata


def test_kdd2015_day_stamped_log_moves_on_day_by_day() -> None:
    """Every event of kdd2015 is stamped 23:59:59 of its day: each new day's first events are a
    day ahead of everything before them. The source watermark moves on once enough users show the
    new day, and no event of the real log is judged late."""
    clock = SourceClock(lateness_ms=600_000, idle_ms=10**9)
    late = moved_days = 0
    last_day = None
    with gzip.open(DATASETS / "kdd2015" / "events.jsonl.gz", "rb") as fh:
        for n, line in enumerate(fh):
            if n >= 60_000:
                break
            doc = orjson.loads(line)
            ts = parse_time_ms(doc["timestamp"])
            assert ts is not None
            if clock.is_late(ts):
                late += 1
                continue
            clock.observe(evidence_id(doc["user_id"].encode()), ts)
            day = clock.value // MS_PER_DAY
            if day != last_day:
                moved_days += 1
                last_day = day
    assert late == 0 and moved_days > 20
