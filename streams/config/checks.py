"""The error every bad setting raises, and the small checks the sections share."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the setting."""


def _positive(where: str, **values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ConfigError(f"{where}.{key}: must be greater than 0, got {value!r}")


def _distinct_names(where: str, names: list[str], limit: int) -> None:
    """At most ``limit`` names, distinct and non-empty (they become labels and figure keys)."""
    if len(names) > limit:
        raise ConfigError(f"{where}: at most {limit}, got {len(names)}")
    if len(set(names)) != len(names) or not all(names):
        raise ConfigError(f"{where}: names must be distinct and non-empty, got {names}")


def _increasing(where: str, key: str, values: tuple[float, ...]) -> None:
    if not values or any(b <= a for a, b in zip(values, values[1:])) or values[0] <= 0:
        raise ConfigError(f"{where}.{key}: must be positive and strictly increasing, got {list(values)!r}")


def _share(where: str, **values: float) -> None:
    for key, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where}.{key}: must be between 0 and 1, got {value!r}")

