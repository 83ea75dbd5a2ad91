"""Every setting and constant of the pipeline, by concern.

* :mod:`~streams.config.constants`: units, outcomes, output roles and the worker's fixed tuning;
* :mod:`~streams.config.settings`: :class:`Settings`, the top-level settings with one section per
  capability, each section in a module of its own (:mod:`~streams.config.activity`,
  :mod:`~streams.config.sessions`, :mod:`~streams.config.usage`, :mod:`~streams.config.engagement`,
  :mod:`~streams.config.risk`, :mod:`~streams.config.accounts`);
* :mod:`~streams.config.loader`: defaults, a TOML file (``--config`` or ``ENGAGEMENT_CONFIG``),
  ``ENGAGEMENT_<FIELD>`` variables and command-line flags, later ones winning. A value that does
  not fit its field stops the command with a :class:`ConfigError` naming the setting.

Everything is re-exported here, so ``from streams.config import Settings, MS_PER_DAY`` works
wherever a name lives.
"""

from __future__ import annotations

from streams.config.accounts import *  # noqa: F401,F403
from streams.config.activity import *  # noqa: F401,F403
from streams.config.checks import ConfigError
from streams.config.constants import *  # noqa: F401,F403
from streams.config.engagement import *  # noqa: F401,F403
from streams.config.loader import load_settings, settings_to_toml
from streams.config.risk import *  # noqa: F401,F403
from streams.config.sessions import *  # noqa: F401,F403
from streams.config.settings import Settings
from streams.config.usage import *  # noqa: F401,F403

__all__ = ["ConfigError", "Settings", "load_settings", "settings_to_toml"]
