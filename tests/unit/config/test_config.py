"""Bad flags and settings stop a command with one line naming them; settings merge as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.config import ConfigError, load_settings, settings_to_toml


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run([sys.executable, "-m", "streams", *args], capture_output=True, input=stdin,
                          env={**base, **(env or {})}, timeout=60)


@pytest.mark.parametrize("args,env,named", [
    (["worker", "--partitions", "0", "--bootstrap", "x:1"], {}, "partitions"),
    (["worker", "--web-port", "70000", "--bootstrap", "x:1"], {}, "web_port"),
    (["worker", "--store", "redis://", "--bootstrap", "x:1"], {}, "store"),
    (["worker"], {}, "bootstrap"),
    (["worker", "--bootstrap", "x:1"], {"ENGAGEMENT_ALLOWED_LATENESS_S": "soon"}, "ENGAGEMENT_ALLOWED_LATENESS_S"),
    (["worker", "--bootstrap", "x:1", "--config", "/nonexistent.toml"], {}, "/nonexistent.toml"),
    (["demo", "--users", "0"], {}, "--users"),
    (["bench", "--events", "-5"], {}, "--events"),
    (["tail", "--bootstrap", "x:1"], {}, "TOPIC or --what"),
    (["produce"], {}, "bootstrap"),
])
def test_bad_input_names_the_setting_without_traceback(args: list[str], env: dict[str, str], named: str) -> None:
    result = run_cli(*args, env=env)
    err = result.stderr.decode()
    assert result.returncode != 0
    assert named in err
    assert "Traceback" not in err


def test_unknown_toml_setting_is_named(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[pipeline]\npartitions = 3\nparttions = 4\n")
    with pytest.raises(ConfigError, match=r"\[pipeline\]\.parttions"):
        load_settings(config, env={})
    config.write_text("[nonsense]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"\[nonsense\]"):
        load_settings(config, env={})
    config.write_text("[pipeline]\npartitions = 'many'\n")
    with pytest.raises(ConfigError, match=r"\[pipeline\]\.partitions: expected int"):
        load_settings(config, env={})


def test_sources_merge_in_order(tmp_path: Path) -> None:
    config = tmp_path / "ok.toml"
    config.write_text("[pipeline]\npartitions = 3\nweb_port = 7000\nallowed_lateness_s = 60\n")
    settings = load_settings(config, env={"ENGAGEMENT_WEB_PORT": "7100", "ENGAGEMENT_PARTITIONS": "5"},
                             overrides={"partitions": 8})
    assert (settings.partitions, settings.web_port, settings.allowed_lateness_s) == (8, 7100, 60.0)


def test_settings_round_trip_through_toml(tmp_path: Path) -> None:
    settings = load_settings(env={}, overrides={"partitions": 7, "local": True, "store": "rocksdb://"})
    path = tmp_path / "s.toml"
    path.write_text(settings_to_toml(settings))
    assert load_settings(path, env={}) == settings
