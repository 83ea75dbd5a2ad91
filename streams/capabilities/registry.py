"""The capabilities a worker runs, in the order they see each event."""

from __future__ import annotations

from streams.capabilities.accounts import AccountsCapability
from streams.capabilities.activity import ActivityCapability
from streams.core.capability import Capability
from streams.capabilities.classify import Classifier
from streams.config import Settings
from streams.capabilities.engagement import EngagementCapability
from streams.capabilities.risk import RiskCapability
from streams.capabilities.sessions import Sessions
from streams.capabilities.signals import SignalCounts
from streams.capabilities.usage import Usage


def default_capabilities(settings: Settings) -> list[Capability]:
    """Every capability built so far, configured from the settings."""
    classifier = Classifier(settings.usage)  # sessions and usage must agree on what an event is
    # Engagement scores a day's batch in on_watermark, before accounts send that day's shares.
    signals = SignalCounts()  # one signal counter for churn risk, engagement score, account health
    engagement = EngagementCapability(settings, classifier, signals)
    return [ActivityCapability(settings), Sessions(settings, classifier), Usage(settings, classifier),
            engagement, RiskCapability(settings, signals), AccountsCapability(settings, engagement, signals)]
