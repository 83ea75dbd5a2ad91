"""The plug-in contract: a capability written outside the package (docs/examples/activation.py,
the worked example of docs/capabilities.md) runs beside the built-in ones, reads its own
settings section, and misconfigurations are named at start-up."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest

from streams.capabilities.registry import build_capabilities
from streams.config import MS_PER_HOUR, ConfigError, load_settings, settings_to_toml
from streams.core.capability import Capability, PartitionCapability, PartitionContext
from tests.support.fakes import unit_runtime

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"
T0 = 1_790_000_000_000


@pytest.fixture
def example_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLES))
    yield
    sys.path.remove(str(EXAMPLES))
    sys.modules.pop("activation", None)


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "engagement.toml"
    path.write_text(text)
    return path


def event(event_id: str, user: str, hours: float, name: str) -> bytes:
    return orjson.dumps({"event_id": event_id, "type": "track", "event": name, "user_id": user,
                         "timestamp": T0 + int(hours * MS_PER_HOUR)})


def run(settings: Any, table: Any = None) -> tuple[Any, Any, Any]:
    runtime, table, sink = unit_runtime(settings, build_capabilities(settings), table)
    return runtime, table, sink


def test_a_plugin_capability_runs_beside_the_built_in_ones(tmp_path: Path, example_path: None) -> None:
    settings = load_settings(config(tmp_path, '[pipeline]\nbootstrap = "unit:9092"\npartitions = 1\n'
                                    'plugins = ["activation:Activation"]\n'
                                    '[activation]\nevent = "invite_sent"\ntopic = "activations"\n'), env={})
    caps = build_capabilities(settings)
    assert [c.name for c in caps] == ["activity", "sessions", "usage", "engagement", "risk", "accounts", "activation"]
    assert caps[-1].topics() == ["activations"]
    runtime, table, sink = run(settings)
    stream = [event("a1", "ann", 0, "page_viewed"), event("b1", "bob", 1, "invite_sent"),
              event("c1", "cid", 2, "page_viewed"), event("a2", "ann", 5.5, "invite_sent"),
              event("a3", "ann", 6, "invite_sent")]
    for offset, raw in enumerate(stream):
        user = orjson.loads(raw)["user_id"].encode()
        assert runtime.handle(0, user, raw, offset, T0) == "applied"
    published = sink.values("activations")
    assert [(m["user_id"], m["hours_to_activate"]) for m in published] == [("bob", 0.0), ("ann", 5.5)]
    proc = runtime.processor(0)
    plugin = proc.capabilities[-1]
    assert plugin.figures() == {} and getattr(plugin, "activated") == 2
    ann = proc.store.get(0, b"ann")
    assert ann is not None and plugin.describe(b"ann", ann)["hours_to_activate"] == 5.5
    cid = proc.store.get(0, b"cid")
    assert cid is not None and plugin.describe(b"cid", cid) == {"activated": False}
    runtime.flush()
    # A restart rebuilds the partition figure from the records alone.
    restarted, _, _ = run(settings, table.recovered())
    assert getattr(restarted.processor(0).capabilities[-1], "activated") == 2
    # The settings handed to worker processes carry the plug-in's section.
    again = load_settings(config(tmp_path, settings_to_toml(settings)), env={})
    assert again.plugin_sections == {"activation": {"event": "invite_sent", "topic": "activations"}}


@pytest.mark.parametrize("text, named", [
    ('[pipeline]\nplugins = ["activation:Activation"]\n[activation]\nevnt = "x"\n', "[activation].evnt: unknown setting"),
    ('[pipeline]\nplugins = ["activation:Activation"]\n[activation]\nevent = ""\n', "[activation]: event must not be empty"),
    ('[pipeline]\nplugins = ["activation:Nope"]\n', "plugins: 'activation' has no 'Nope'"),
    ('[pipeline]\nplugins = ["no_such_module:X"]\n', "plugins: cannot import 'no_such_module'"),
    ('[pipeline]\nplugins = ["activation"]\n', "plugins: 'activation' is not of the form module:Class"),
    ('[pipeline]\nplugins = ["activation:Activation"]\n[activatoin]\nevent = "x"\n', "[activatoin]: unknown section"),
    ('[activatoin]\nevent = "x"\n', "[activatoin]: unknown section"),
    ('[pipeline]\ncapabilities = ["risk"]\n', "'risk' requires 'engagement' to run before it"),
    ('[pipeline]\ncapabilities = ["activty"]\n', "capabilities: unknown ['activty']"),
])
def test_misconfigured_capabilities_are_named(tmp_path: Path, example_path: None, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_capabilities(load_settings(config(tmp_path, text), env={}))
    assert named in str(caught.value)


class SameSlot(Capability):
    name = "copycat"
    slot = "a"  # the activity capability's

    def for_partition(self, ctx: PartitionContext) -> PartitionCapability:
        return PartitionCapability(ctx)


def test_record_slots_are_checked_unique_at_start_up() -> None:
    settings = load_settings(env={}, overrides={"plugins": [f"{__name__}:SameSlot"]})
    with pytest.raises(ConfigError, match="'copycat' and 'activity' both use record slot 'a'"):
        build_capabilities(settings)


def test_only_the_chosen_built_in_capabilities_run_in_registry_order() -> None:
    settings = load_settings(env={}, overrides={"capabilities": "usage,activity"})
    assert [c.name for c in build_capabilities(settings)] == ["activity", "usage"]
