"""The capabilities a worker runs, in the order they see each event."""

from __future__ import annotations

from .accounts import AccountsCapability
from .activity import ActivityCapability
from .capability import Capability
from .classify import Classifier
from .config import Settings
from .engagement import EngagementCapability
from .risk import RiskCapability
from .sessions import Sessions
from .signals import SignalCounts
from .usage import Usage


def default_capabilities(settings: Settings) -> list[Capability]:
    """Every capability built so far, configured from the settings."""
    classifier = Classifier(settings.usage)  # sessions and usage must agree on what an event is
    # Engagement scores a day's batch in on_watermark, before accounts send that day's shares.
    signals = SignalCounts()  # one signal counter for churn risk, engagement score, account health
    engagement = EngagementCapability(settings, classifier, signals)
    return [ActivityCapability(settings), Sessions(settings, classifier), Usage(settings, classifier),
            engagement, RiskCapability(settings, signals), AccountsCapability(settings, engagement, signals)]
