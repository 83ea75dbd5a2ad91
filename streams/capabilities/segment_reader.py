"""The segment labels a user is counted under now, as the activity capability resolves them.

Segment values have one owner: the activity capability keeps each user's values (as per-partition
label codes, with their day history) and caps the number of labels. Sessions (the ``segments`` of
a session message) and usage (per-segment engagement) read the newest value of each dimension
from it instead of keeping their own copies, so every figure uses the same bounded labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams.capabilities.lifecycle import newest_codes
from streams.config import SEGMENT_UNKNOWN

if TYPE_CHECKING:
    from streams.capabilities.activity import PartitionActivity
    from streams.core.capability import PartitionContext
    from streams.core.state import UserState

Codes = tuple[Any, ...]
#: The activity capability's record slot (``streams.capabilities.activity.SLOT``; not imported: import cycle).
ACTIVITY_SLOT = "a"


class SegmentReader:
    """Reads one partition's segment labels from its activity capability (if it runs)."""

    def __init__(self, ctx: "PartitionContext") -> None:
        self.ctx = ctx
        self._activity: "PartitionActivity | None" = None
        self._dims: int | None = None
        """Segment dimensions to read (0: none, or no activity capability); None until first asked."""
        self._labels: dict[Codes, list[tuple[str, str]]] = {}
        """Codes -> labels: a partition's code of a value never changes, and lookups are per event."""

    def _peer(self) -> "PartitionActivity | None":
        if self._activity is None:
            from streams.capabilities.activity import (
                PartitionActivity,  # here: activity imports sessions, which uses this
            )

            self._activity = self.ctx.peer(PartitionActivity)
        return self._activity

    def current(self, state: "UserState") -> list[Any] | None:
        """The user's newest label code per dimension (None: no value yet); None without segments.

        Read straight from the stored record by :func:`streams.capabilities.lifecycle.newest_codes`: this runs
        for every event, and decoding a whole :class:`~streams.capabilities.lifecycle.View` costs more than the
        rest of usage. A list, so a caller can compare it with a stored list as it is.
        ``tests/test_usage.py`` checks it agrees with the View.
        """
        dims = self._dims
        if dims is None:
            # Asked from restore / on_event on, when every capability of the partition exists.
            activity = self._peer()
            dims = self._dims = len(activity.shared.dims) if activity is not None else 0
        if not dims:
            return None
        return newest_codes(state.ext.get(ACTIVITY_SLOT), dims)

    def code_on(self, state: "UserState", dim: int, day: int) -> Any:
        """The user's label code of dimension ``dim`` on ``day`` (None: no value then), from the
        activity record's history: a judgement of a past day ignores later identify events."""
        activity = self._peer()
        if activity is None or dim >= len(activity.shared.dims):
            return None
        view = activity.rules.new_view(state.ext.get(ACTIVITY_SLOT), state.max_ts)
        return view.label(dim, day)

    def codes(self, state: "UserState") -> Codes | None:
        """:meth:`current` as a tuple (a key of :meth:`labels`)."""
        current = self.current(state)
        return None if current is None else tuple(current)

    def labels(self, codes: Codes) -> list[tuple[str, str]]:
        """(dimension, label) for codes from :meth:`codes` (``unknown`` for no value)."""
        labels = self._labels.get(codes)
        if labels is None:
            activity = self._peer()
            if activity is None:
                return []
            labels = self._labels[codes] = [
                (dim.name, activity.codes.name(i, code) if code is not None else SEGMENT_UNKNOWN)
                for i, (dim, code) in enumerate(zip(activity.shared.dims, codes))]
        return labels

    def names(self, state: "UserState") -> dict[str, str]:
        """{dimension: label} of the user's newest values ({} without segments)."""
        codes = self.codes(state)
        return dict(self.labels(codes)) if codes is not None else {}
