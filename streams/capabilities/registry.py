"""The capabilities a worker can run, in the order they see each event.

Adding a capability to the package: write its module (a :class:`~streams.core.capability.Capability`
subclass, plus a section in :mod:`streams.config` if it has settings) and add one line below.
Capabilities written outside the package are named in the ``plugins`` setting instead
(``module:Class``, run after the built-in ones; see ``docs/capabilities.md``).
"""

from __future__ import annotations

import importlib

from streams.capabilities.accounts import AccountsCapability
from streams.capabilities.activity import ActivityCapability
from streams.capabilities.engagement import EngagementCapability
from streams.capabilities.risk import RiskCapability
from streams.capabilities.sessions import Sessions
from streams.capabilities.usage import Usage
from streams.config import ConfigError, Settings
from streams.core.capability import Capability, Shared, check_capabilities

#: Built-in capabilities in event order. Activity comes first (the others read its segment
#: labels); engagement comes before risk and accounts, which build on its daily notices and score
#: a day's batch before accounts send that day's shares.
BUILTIN: tuple[type[Capability], ...] = (
    ActivityCapability,
    Sessions,
    Usage,
    EngagementCapability,
    RiskCapability,
    AccountsCapability,
)
BY_NAME = {cap.name: cap for cap in BUILTIN}


def plugin_class(path: str) -> type[Capability]:
    """The capability class named by ``module:Class`` (a ``plugins`` entry)."""
    module_name, _, class_name = path.partition(":")
    if not module_name or not class_name:
        raise ConfigError(f"plugins: {path!r} is not of the form module:Class")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise ConfigError(f"plugins: cannot import {module_name!r} ({exc})") from None
    except AttributeError:
        raise ConfigError(f"plugins: {module_name!r} has no {class_name!r}") from None
    if not (isinstance(found, type) and issubclass(found, Capability)):
        raise ConfigError(f"plugins: {path!r} is not a streams.core.capability.Capability subclass")
    return found


def build_capabilities(settings: Settings) -> list[Capability]:
    """The configured capabilities (``capabilities``: built-in names, empty for all; then
    ``plugins``), each made once for the worker, checked to run together."""
    names = settings.capabilities or tuple(BY_NAME)
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise ConfigError(f"capabilities: unknown {unknown}; built-in: {sorted(BY_NAME)}")
    order = {cap: index for index, cap in enumerate(BUILTIN)}
    classes = sorted((BY_NAME[name] for name in set(names)), key=order.__getitem__)
    classes += [plugin_class(path) for path in settings.plugins]
    unclaimed = set(settings.plugin_sections) - {cls.name for cls in classes}
    if unclaimed:
        raise ConfigError(f"[{sorted(unclaimed)[0]}]: unknown section (no capability of that name runs)")
    shared = Shared()
    capabilities = [cls(settings, shared) for cls in classes]
    check_capabilities(capabilities)
    return capabilities
