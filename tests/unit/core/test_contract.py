"""The runtime contract agrees with the published JSON Schema, and judges timestamps as documented."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import jsonschema
import orjson
import pytest

from streams.config import load_settings
from streams.core.contract import Decoder, Event, Rejection, load_schema, parse_time_ms

NOW_MS = int(datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc).timestamp() * 1000)
VALID = {
    "event_id": "3f1c2a9e", "type": "track", "event": "report_created", "user_id": "user-1",
    "account_id": "acct-1", "timestamp": "2026-11-02T11:59:00.250Z",
    "properties": {"feature": "reports"}, "context": {"platform": "web"},
}


def variant(**changes: object) -> dict:
    doc = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


VALID_EXAMPLES = [
    VALID,
    variant(user_id=..., anonymous_id="anon-9"),
    variant(type="page", event=..., timestamp=NOW_MS - 1000),
    variant(type="identify", event=..., traits={"plan": "pro"}),
    variant(type="group", event=..., traits={"seats": 10}),
    variant(account_id=None, sent_at="2026-11-02T11:59:01Z"),
    variant(timestamp="2026-11-02T13:59:00+02:00"),
]
INVALID_EXAMPLES = [
    variant(event_id=...),
    variant(event_id=""),
    variant(type="click"),
    variant(user_id=...),
    variant(user_id=""),
    variant(timestamp=...),
    variant(event=...),  # track needs an event name
    variant(properties=[1, 2]),
    variant(user_id=42),
    variant(event_id="x" * 129),
]


#: Timestamps the schema rejects: every one is a ``bad_timestamp``, not a ``schema`` violation.
BAD_TIME_EXAMPLES = [
    variant(timestamp="yesterday"),
    variant(timestamp="2026-11-02T11:59:00"),  # no UTC offset: not RFC 3339
    variant(timestamp=-5000),
    variant(timestamp=10**15),
    variant(timestamp=True),
    variant(sent_at="now"),
]


@pytest.fixture(scope="module")
def reference() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return Decoder(load_settings(env={}))


@pytest.mark.parametrize("doc", VALID_EXAMPLES)
def test_valid_examples_accepted_by_both(doc: dict, reference: jsonschema.Draft202012Validator, decoder: Decoder) -> None:
    assert reference.is_valid(doc)
    judged = decoder.decode(orjson.dumps(doc), NOW_MS)
    assert isinstance(judged, Event), judged


@pytest.mark.parametrize("doc", INVALID_EXAMPLES)
def test_invalid_examples_rejected_by_both(doc: dict, reference: jsonschema.Draft202012Validator, decoder: Decoder) -> None:
    assert not reference.is_valid(doc)
    judged = decoder.decode(orjson.dumps(doc), NOW_MS)
    assert isinstance(judged, Rejection)
    assert judged.reason == "schema"
    assert judged.message


@pytest.mark.parametrize("doc", BAD_TIME_EXAMPLES)
def test_every_timestamp_the_schema_rejects_is_a_bad_timestamp(doc: dict, reference: jsonschema.Draft202012Validator,
                                                               decoder: Decoder) -> None:
    assert not reference.is_valid(doc)
    judged = decoder.decode(orjson.dumps(doc), NOW_MS)
    assert isinstance(judged, Rejection)
    assert judged.reason == "bad_timestamp"
    field = "sent_at" if "sent_at" in doc else "timestamp"
    assert judged.message.startswith(f"{field} {doc[field]!r}" if isinstance(doc[field], str) else f"{field} {doc[field]}")


def test_a_bad_timestamp_next_to_another_violation_is_a_schema_violation(decoder: Decoder) -> None:
    judged = decoder.decode(orjson.dumps(variant(timestamp="yesterday", event_id=...)), NOW_MS)
    assert isinstance(judged, Rejection)
    assert judged.reason == "schema"
    assert "timestamp" in judged.message and "event_id" in judged.message


def test_bound_violations_name_the_setting(decoder: Decoder) -> None:
    old = decoder.decode(orjson.dumps(variant(timestamp="1999-12-31T23:59:59Z")), NOW_MS)
    ahead = decoder.decode(orjson.dumps(variant(timestamp="2026-11-04T12:00:00Z")), NOW_MS)
    assert isinstance(old, Rejection) and isinstance(ahead, Rejection)
    assert (old.reason, ahead.reason) == ("bad_timestamp", "bad_timestamp")
    assert "min_timestamp_ms" in old.message and "2000-01-01T00:00:00.000Z" in old.message
    assert "max_future_s = 86400" in ahead.message and "48.0 h ahead" in ahead.message
    older = Decoder(load_settings(env={}, overrides={"min_timestamp_ms": 0}))
    assert isinstance(older.decode(orjson.dumps(variant(timestamp="1999-12-31T23:59:59Z")), NOW_MS), Event)


def test_schema_examples_are_valid(reference: jsonschema.Draft202012Validator) -> None:
    """The examples the schema documents per field make a valid event when put together."""
    schema = load_schema()
    doc = {name: spec["examples"][0] for name, spec in schema["properties"].items() if "examples" in spec}
    doc["type"] = "track"
    assert reference.is_valid(doc), list(reference.iter_errors(doc))


@pytest.mark.parametrize("raw,reason", [
    (b"", "empty"),
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "schema"),
    (b'"text"', "schema"),
    (orjson.dumps(variant(properties={"blob": "x" * 40000})), "too_large"),
    (orjson.dumps(variant(timestamp="1970-01-01T00:00:00Z")), "bad_timestamp"),
    (orjson.dumps(variant(timestamp="2031-01-01T00:00:00Z")), "bad_timestamp"),
])
def test_rejection_reasons(raw: bytes, reason: str, decoder: Decoder) -> None:
    judged = decoder.decode(raw, NOW_MS)
    assert isinstance(judged, Rejection)
    assert judged.reason == reason


def test_timestamps_normalized_to_utc_ms(decoder: Decoder) -> None:
    a = decoder.decode(orjson.dumps(variant(timestamp="2026-11-02T13:59:00.250+02:00")), NOW_MS)
    b = decoder.decode(orjson.dumps(variant(timestamp=NOW_MS - 59_750)), NOW_MS)
    assert isinstance(a, Event) and isinstance(b, Event)
    assert a.ts == b.ts == NOW_MS - 59_750


def test_small_client_skew_is_corrected_large_gap_is_kept(decoder: Decoder) -> None:
    # The client clock runs 90 s fast: it says it sent at 12:01:30 what arrived at 12:00:00.
    skewed = decoder.decode(orjson.dumps(variant(timestamp="2026-11-02T12:01:00Z", sent_at="2026-11-02T12:01:30Z")), NOW_MS)
    assert isinstance(skewed, Event)
    assert skewed.ts == NOW_MS - 30_000
    # A replay of last month's file: the gap is delivery delay, not skew, and event time is kept.
    replayed = decoder.decode(orjson.dumps(variant(timestamp="2026-10-02T12:00:00Z", sent_at="2026-10-02T12:00:05Z")), NOW_MS)
    assert isinstance(replayed, Event)
    assert replayed.ts == parse_time_ms("2026-10-02T12:00:00Z")


def test_identity_prefers_user_id(decoder: Decoder) -> None:
    both = decoder.decode(orjson.dumps(variant(anonymous_id="anon-1")), NOW_MS)
    anon = decoder.decode(orjson.dumps(variant(user_id=..., anonymous_id="anon-1")), NOW_MS)
    assert isinstance(both, Event) and isinstance(anon, Event)
    assert (both.user, anon.user) == ("user-1", "anon-1")
