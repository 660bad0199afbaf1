"""The intent model and the body parser, fuzzed with Hypothesis (no I/O).

Whatever arrives, the parser either yields an intent that can be fingerprinted, logged and
stored, or raises BadRequest: never another exception, which would reach the engine as an
internal error (issue 10, findings 1 to 3). The rules are checked against an independent
statement of them, not against the model's own code.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from decimal import Decimal
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backend.execution.intent import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_STRING_CHARS,
    OrderIntent,
)
from backend.services.execution_service.parsing import (
    BadRequest,
    intent_from_push,
    parse_intent,
    parse_json_body,
    parse_push_envelope,
)
from tests.contract.conftest import INPUTS, campaign

ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:"

# -- an independent statement of what may be stored ---------------------------------------


def storable(text: str) -> bool:
    return not any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


def firestore_id(text: str) -> bool:
    reserved = text in (".", "..") or (len(text) >= 4 and text[:2] == text[-2:] == "__")
    return 0 < len(text.encode()) <= 1500 and "/" not in text and not reserved


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings_of(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings_of(v)]
    return []


def assert_storable(intent: OrderIntent) -> None:
    """What every accepted intent must satisfy before the engine sees it."""
    summary = intent.summary()
    json.dumps(summary, allow_nan=False)  # loggable and storable as JSON
    assert len(intent.fingerprint()) == 32
    assert firestore_id(intent.client_intent_id) and len(intent.client_intent_id) <= 48
    for field in ("strategy_id", "broker_account_id", "symbol"):
        value = getattr(intent, field)
        assert storable(value) and 0 < len(value) <= 128, (field, value)
    assert depth(intent.metadata) <= MAX_METADATA_DEPTH
    assert all(storable(s) for s in strings_of(intent.metadata))
    compact = json.dumps(intent.metadata, separators=(",", ":"), ensure_ascii=False, default=str)
    assert len(compact.encode()) <= MAX_METADATA_BYTES
    # Parsing what was stored gives the same order: normalisation is stable.
    assert OrderIntent.model_validate(summary).fingerprint() == intent.fingerprint()


def parsed_or_refused(data: Any) -> OrderIntent | None:
    try:
        intent = parse_intent(data)
    except BadRequest:
        return None
    assert_storable(intent)
    return intent


# -- strategies ----------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)
decimals = st.one_of(
    st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal("99999999999"), places=4),
    st.sampled_from(["1", "0.5", "1e2", "100.0", "0", "-1", "NaN", "1e-99999999999"]),
    json_values,
)
ids = st.one_of(
    st.text(alphabet=ID_ALPHABET, min_size=1, max_size=48),
    st.sampled_from([".", "..", "__x__", "____", "___", "a/b", "", " ", "x" * 49]),
    st.text(max_size=50),
)
labels = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20),
    st.text(max_size=130),
    st.sampled_from(["acct\x00", "a\nb", "\x7f", "  padded  ", "x" * 129]),
)


def nested(levels: int, leaf: Any) -> Any:
    for _ in range(levels):
        leaf = {"a": leaf}
    return leaf


metadata = st.one_of(
    st.dictionaries(st.text(max_size=20), json_values, max_size=6),
    st.builds(nested, st.integers(min_value=1, max_value=400), json_scalars),
    st.builds(nested, st.integers(min_value=6, max_value=10), json_scalars),
    st.builds(
        lambda n, s: {f"k{i}": s for i in range(n)},
        st.integers(0, 12),
        st.text(min_size=0, max_size=MAX_METADATA_STRING_CHARS + 5),
    ),
    st.dictionaries(
        st.text(min_size=MAX_METADATA_KEY_CHARS - 2, max_size=MAX_METADATA_KEY_CHARS + 2),
        st.integers(),
        max_size=2,
    ),
    json_values,
)
intents = st.fixed_dictionaries(
    {
        "client_intent_id": ids,
        "strategy_id": labels,
        "broker_account_id": labels,
        "symbol": st.one_of(st.sampled_from(["SPY", "brk.b", "BTC/USD"]), st.text(max_size=18)),
        "side": st.sampled_from(["buy", "sell", "short"]),
        "qty": decimals,
        "order_type": st.sampled_from(["market", "limit", "stop", "stop_limit", "iceberg"]),
    },
    optional={
        "time_in_force": st.sampled_from(["day", "gtc", "opg", "cls", "ioc", "fok", "gtd"]),
        "limit_price": decimals,
        "stop_price": decimals,
        "created_at": st.one_of(
            st.datetimes().map(lambda d: d.isoformat()),
            st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
            st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"]),
            json_values,
        ),
        "metadata": metadata,
        "extra": json_values,
    },
)


# -- properties ----------------------------------------------------------------------------


@settings(max_examples=campaign(800))
@given(data=intents)
def test_any_intent_shaped_object_is_either_storable_or_refused(data: dict[str, Any]) -> None:
    INPUTS["hypothesis intent-shaped objects"] += 1
    intent = parsed_or_refused(data)
    if intent is not None:
        # The independent rules agree with the model on everything they can state.
        assert storable(data["broker_account_id"]) and data["broker_account_id"] == (
            intent.broker_account_id
        ), "broker_account_id is never trimmed"
        assert "extra" not in data


@settings(max_examples=campaign(400))
@given(data=json_values)
def test_any_json_value_is_either_an_intent_or_a_bad_request(data: Any) -> None:
    INPUTS["hypothesis JSON values"] += 1
    parsed_or_refused(data)


@settings(max_examples=campaign(400))
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda n, c: c * n, st.integers(0, 20000), st.sampled_from(["[", '{"a":'])).map(
            str.encode
        ),
        st.text(max_size=200).map(str.encode),
        intents.map(lambda d: json.dumps(d, default=str).encode()),
    )
)
def test_any_body_is_either_an_intent_or_a_bad_request(raw: bytes) -> None:
    INPUTS["hypothesis raw bodies"] += 1
    try:
        data = parse_json_body(raw)
    except BadRequest:
        return
    parsed_or_refused(data)


@settings(max_examples=campaign(300))
@given(
    data=st.one_of(
        st.binary(max_size=200), intents.map(lambda d: json.dumps(d, default=str).encode())
    )
)
def test_any_pubsub_data_is_either_an_intent_or_a_poison_message(data: bytes) -> None:
    INPUTS["hypothesis Pub/Sub data"] += 1
    envelope = {"message": {"data": base64.b64encode(data).decode(), "messageId": "m"}}
    try:
        intent = intent_from_push(parse_push_envelope(envelope))
    except BadRequest:
        return
    assert_storable(intent)


@settings(max_examples=campaign(300))
@given(
    cid=st.text(alphabet=ID_ALPHABET, min_size=1, max_size=48),
    text=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]),
        min_size=1,
        max_size=20,
    ),
)
def test_every_storable_id_and_label_is_accepted(cid: str, text: str) -> None:
    INPUTS["hypothesis valid ids and labels"] += 1
    assume(firestore_id(cid) and text.strip() == text and text.strip())
    intent = parsed_or_refused(
        {
            "client_intent_id": cid,
            "strategy_id": text,
            "broker_account_id": text,
            "symbol": "SPY",
            "side": "buy",
            "qty": "1",
            "order_type": "market",
            "metadata": {text: [text]},
        }
    )
    assert intent is not None
