"""The capabilities a worker runs, in the order they see each event."""

from __future__ import annotations

from .capability import Capability
from .config import Settings


def default_capabilities(settings: Settings) -> list[Capability]:
    """Every capability built so far, configured from the settings."""
    return []
