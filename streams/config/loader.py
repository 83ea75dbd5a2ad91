"""Where settings come from: defaults, a TOML file, ``ENGAGEMENT_*`` variables and flags.

A value that does not fit its field stops the command with a :class:`ConfigError` naming the
setting, never a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import fields
from typing import Any, Mapping

from streams.config.checks import ConfigError
from streams.config.constants import ENV_PREFIX
from streams.config.settings import Settings


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """Turn a TOML / env / flag value into the field's type, or say which setting is wrong."""
    origin = typing.get_origin(kind)
    try:
        if dataclasses.is_dataclass(kind):
            if isinstance(value, typing.cast(type, kind)):
                return value
            if not isinstance(value, dict):
                raise ValueError
            return load_section(kind, value, name)
        if origin in (tuple, list):
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise ValueError
            inner = (typing.get_args(kind) or (str,))[0]
            return tuple(_coerce(f"{name}[{i}]", item.strip() if isinstance(item, str) else item, inner)
                         for i, item in enumerate(items) if item != "")
        if origin is dict or kind is dict:
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError
            return int(str(value).replace("_", ""))
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is Any:
            return value
        if isinstance(value, (dict, list)):
            raise ValueError
        return str(value)
    except ConfigError:
        raise  # a nested section's own message names the exact key
    except (TypeError, ValueError):
        label = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"{name}: expected {label}, got {value!r}") from None


def load_section(cls: Any, section: Mapping[str, Any], where: str) -> Any:
    """Build a (nested) settings dataclass from a TOML table, rejecting unknown keys by name."""
    kinds = typing.get_type_hints(cls)
    values = {}
    for key, value in section.items():
        if key not in kinds:
            raise ConfigError(f"{where}.{key}: unknown setting")
        values[key] = _coerce(f"{where}.{key}", value, kinds[key])
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def check_settings(settings: Settings) -> Settings:
    """Reject values the pipeline cannot run with, naming the setting."""
    positive = ("partitions", "replication_factor", "max_event_bytes", "dead_letter_payload_bytes",
                "commit_interval_s", "tick_interval_s", "state_cache_users", "max_partition_skew_s", "max_ahead_s",
                "rekey_cache_users", "rocksdb_block_cache_mb", "rocksdb_write_buffer_mb", "connect_timeout_s")
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name}: must be greater than 0, got {getattr(settings, name)!r}")
    for name in ("allowed_lateness_s", "idle_partition_s", "max_future_s", "max_clock_skew_s"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name}: must not be negative, got {getattr(settings, name)!r}")
    if not (0 < settings.web_port < 65536):
        raise ConfigError(f"web_port: must be a TCP port (1-65535), got {settings.web_port}")
    if not settings.store.startswith(("memory://", "rocksdb://")):
        raise ConfigError(f"store: must be memory:// or rocksdb://, got {settings.store!r}")
    if settings.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError(f"security_protocol: unknown protocol {settings.security_protocol!r}")
    names = [settings.events_topic, *settings.output_topics]
    if len(set(names)) != len(names) or not all(names):
        raise ConfigError(f"topics: topic names must be distinct and non-empty, got {names}")
    return settings


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge defaults, a TOML file, ``ENGAGEMENT_*`` variables and flag overrides, then check them.

    The TOML file has a ``[pipeline]`` table for the top-level settings and one table per
    capability (``[activity]``, ``[sessions]``, ...). Environment variables set top-level
    settings only (``ENGAGEMENT_PARTITIONS=8``).
    """
    env = os.environ if env is None else env
    kinds = typing.get_type_hints(Settings)
    sections = {f.name for f in fields(Settings) if dataclasses.is_dataclass(kinds[f.name])}
    values: dict[str, Any] = {}
    foreign: dict[str, dict[str, Any]] = {}

    path = config_file or env.get(f"{ENV_PREFIX}CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config: file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None
        for table, content in doc.items():
            if not isinstance(content, dict):
                raise ConfigError(f"config: [{table}] in {path} must be a table")
            if table == "pipeline":
                for key, value in content.items():
                    if key not in kinds or key in sections or key == "plugin_sections":
                        raise ConfigError(f"[pipeline].{key}: unknown setting (in {path})")
                    values[key] = _coerce(f"[pipeline].{key}", value, kinds[key])
            elif table in sections:
                values[table] = load_section(kinds[table], content, f"[{table}]")
            else:  # a plug-in capability's section: checked by the capability itself
                foreign[table] = content

    for f in fields(Settings):
        var = f"{ENV_PREFIX}{f.name.upper()}"
        if var in env and f.name not in sections and f.name != "plugin_sections":
            values[f.name] = _coerce(var, env[var], kinds[f.name])

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in kinds:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _coerce(f"--{key.replace('_', '-')}", value, kinds[key])

    if foreign:
        if not values.get("plugins"):
            raise ConfigError(f"[{sorted(foreign)[0]}]: unknown section (in {path})")
        values["plugin_sections"] = foreign
    return check_settings(Settings(**values))


def settings_to_toml(settings: Settings) -> str:
    """The settings as a TOML document that :func:`load_settings` reads back to equal settings.

    Used to hand a complete configuration (capability sections included) to worker processes.
    """
    import tomli_w

    kinds = typing.get_type_hints(Settings)
    doc: dict[str, Any] = {"pipeline": {}}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(kinds[f.name]):
            doc[f.name] = dataclasses.asdict(value)
        elif f.name == "plugin_sections":
            doc.update(value)
        else:
            doc["pipeline"][f.name] = list(value) if isinstance(value, tuple) else value
    return tomli_w.dumps(doc)
