"""Property tests of the payload codec: every event type round-trips, unknown tags survive as
:class:`UnknownEvent`, and bytes that are not a payload raise :class:`StoreCorruptedError`."""

from __future__ import annotations

import itertools
import types
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import events
from events import CODEC_VERSION, TAGS, StoreCorruptedError, UnknownEvent, decode, encode

# -- strategies built from the structs' own annotations ---------------------------------------

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_FLOAT = st.floats(allow_nan=False)  # NaN != NaN; infinities round-trip
_TEXT = st.text(max_size=20)
_SCALAR = st.none() | st.booleans() | _INT64 | _FLOAT | _TEXT | st.binary(max_size=8)
# What ``Any`` fields (parameters, metadata, config) hold: msgpack-native values.
_ANY = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for values of the annotation ``tp`` as the event structs use them."""
    if tp is Any:
        return _ANY
    if tp is str:
        return _TEXT
    if tp is bool:
        return st.booleans()
    if tp is int:
        return _INT64
    if tp is float:
        return _FLOAT
    if tp is type(None):
        return st.none()
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([strategy_for(arg) for arg in args])
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=3)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return struct_strategy(tp)
    raise NotImplementedError(f"no strategy for {tp!r}: extend strategy_for")


def struct_strategy(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    """Every field of ``cls`` either left at its default or drawn from its annotation."""
    hints = typing.get_type_hints(cls)
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in msgspec.structs.fields(cls):
        target = required if field.required else optional
        target[field.name] = strategy_for(hints[field.name])
    return st.fixed_dictionaries(required, optional=optional).map(lambda kw: cls(**kw))


ANY_EVENT = st.one_of([struct_strategy(cls) for cls in events.EVENT_TYPES])
UNKNOWN_TAG = _TEXT.filter(lambda tag: tag not in TAGS)
UNKNOWN_EVENT = st.builds(
    UnknownEvent,
    type=UNKNOWN_TAG,
    # ``type`` inside the data would be the tag on the wire: an UnknownEvent cannot carry it.
    data=st.dictionaries(_TEXT.filter(lambda k: k != "type"), _ANY, max_size=4),
)


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", events.EVENT_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_event_type_round_trips(cls: type[msgspec.Struct], data: st.DataObject) -> None:
    event = data.draw(struct_strategy(cls))
    payload = encode(event)
    assert payload[0] == CODEC_VERSION
    assert decode(payload) == event
    assert type(decode(payload)) is cls


@settings(max_examples=200, deadline=None)
@given(event=ANY_EVENT)
def test_tag_on_the_wire_is_the_type_string(event: events.Event) -> None:
    raw = msgspec.msgpack.decode(encode(event)[1:])
    assert raw["type"] == events.tag_of(event)
    assert TAGS[raw["type"]] is type(event)


@settings(max_examples=200, deadline=None)
@given(event=UNKNOWN_EVENT)
def test_unknown_event_round_trips(event: UnknownEvent) -> None:
    assert decode(encode(event)) == event
    assert events.tag_of(event) == event.type


@settings(max_examples=200, deadline=None)
@given(tag=UNKNOWN_TAG, data=st.dictionaries(_TEXT, _ANY, max_size=4))
def test_a_tag_written_by_a_newer_version_decodes_to_unknown_event(
    tag: str, data: dict[str, Any]
) -> None:
    payload = bytes([CODEC_VERSION]) + msgspec.msgpack.encode({**data, "type": tag})
    decoded = decode(payload)
    assert isinstance(decoded, UnknownEvent)
    assert decoded.type == tag
    assert decoded.data == {k: v for k, v in data.items() if k != "type"}


def test_known_tags_are_stable() -> None:
    """A tag is never renamed or reused: this list only ever grows."""
    assert set(TAGS) >= {
        "run.created",
        "run.started",
        "run.succeeded",
        "run.failed",
        "run.cancelled",
        "run.crashed",
        "step.ready",
        "step.started",
        "step.succeeded",
        "step.failed",
        "step.retry_scheduled",
        "step.cached",
        "step.skipped",
        "step.cancelled",
        "artifact.stored",
        "hook.started",
        "hook.succeeded",
        "hook.failed",
        "metadata.logged",
    }
    assert len(TAGS) == len(events.EVENT_TYPES)  # no two types share a tag


# -- what is not a payload -----------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(payload=st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_store_corrupted(payload: bytes) -> None:
    try:
        decoded = decode(payload)
    except StoreCorruptedError:
        return
    assert isinstance(decoded, (UnknownEvent, *events.EVENT_TYPES))


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=64))
def test_bytes_with_a_wrong_codec_version_raise(body: bytes) -> None:
    for version in (0, CODEC_VERSION + 1, 255):
        with pytest.raises(StoreCorruptedError, match="codec version"):
            decode(bytes([version]) + body)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        bytes([CODEC_VERSION]),
        bytes([CODEC_VERSION, 0xC1]),  # 0xc1 is never valid msgpack
        bytes([CODEC_VERSION]) + msgspec.msgpack.encode([1, 2, 3]),
        bytes([CODEC_VERSION]) + msgspec.msgpack.encode({"no": "tag"}),
        bytes([CODEC_VERSION]) + msgspec.msgpack.encode({"type": 7}),
        bytes([CODEC_VERSION]) + msgspec.msgpack.encode({"type": "step.ready"}),  # no step
        bytes([CODEC_VERSION]) + msgspec.msgpack.encode({"type": "step.ready", "step": 3}),
        encode(events.StepReady(step="x"))[:-1],  # truncated
    ],
    ids=[
        "empty",
        "version only",
        "invalid msgpack",
        "array",
        "untagged map",
        "non-string tag",
        "known tag missing field",
        "known tag wrong field type",
        "truncated",
    ],
)
def test_garbage_raises_store_corrupted(payload: bytes) -> None:
    with pytest.raises(StoreCorruptedError):
        decode(payload)


# -- many payloads at once -------------------------------------------------------------------


def _decode_each(payloads: list[bytes]) -> list[Any] | type[StoreCorruptedError]:
    try:
        return [decode(p) for p in payloads]
    except StoreCorruptedError:
        return StoreCorruptedError


def _decode_many(payloads: list[bytes]) -> list[Any] | type[StoreCorruptedError]:
    try:
        return events.decode_many(payloads)
    except StoreCorruptedError:
        return StoreCorruptedError


def _decode_joined(payloads: list[bytes]) -> list[Any] | type[StoreCorruptedError]:
    try:
        return events.decode_joined(events.join_payloads(payloads), [len(p) for p in payloads])
    except StoreCorruptedError:
        return StoreCorruptedError


PAYLOADS = st.lists(
    st.one_of(
        ANY_EVENT.map(encode),
        UNKNOWN_EVENT.map(encode),
        st.binary(max_size=24),  # mostly not a payload
        ANY_EVENT.map(lambda e: encode(e)[:-1]),  # cut short: swallows its successor
        st.sampled_from([bytes([CODEC_VERSION, 1]), bytes([CODEC_VERSION]), b"\x01\x01\x01"]),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(PAYLOADS)
def test_decoding_payloads_together_is_decoding_each(payloads: list[bytes]) -> None:
    """Whatever the payloads (events, unknown tags, garbage, payloads that are a bare version
    byte or an int, or that would read into the next one), decoding them together, as a list
    or joined in one buffer (as a rebuild sends them to its folder), gives what decoding each
    gives: the same events, or StoreCorruptedError."""
    assert _decode_many(payloads) == _decode_each(payloads)
    assert _decode_joined(payloads) == _decode_each(payloads)


@given(st.lists(ANY_EVENT, min_size=2, max_size=20))
def test_known_events_decode_together(evs: list[events.Event]) -> None:
    assert events.decode_many([encode(e) for e in evs]) == evs


@settings(max_examples=300, deadline=None)
@given(
    st.lists(ANY_EVENT, min_size=1, max_size=6),
    st.lists(st.integers(0, 10_000), max_size=8),
    st.booleans(),
)
def test_payloads_cut_anywhere_decode_together_as_each(
    evs: list[events.Event], cuts: list[int], long_version: bool
) -> None:
    """Valid payloads glued together and cut at arbitrary places (so an item may cross from
    one payload into the next), or with a version spelled as a longer msgpack int: decoding
    them together, joined or many, still gives what decoding each gives."""
    whole = b"".join(encode(e) for e in evs)
    if long_version:
        whole = b"\xcc" + whole  # uint8 1: the same int, not the version byte
    bounds = sorted({0, len(whole), *(c % (len(whole) + 1) for c in cuts)})
    payloads = [whole[a:b] for a, b in itertools.pairwise(bounds)]
    assert _decode_joined(payloads) == _decode_each(payloads)
    assert _decode_many(payloads) == _decode_each(payloads)


@pytest.mark.parametrize("lengths", [[], [1], [3, 3]])
def test_joined_payloads_of_other_lengths_are_refused(lengths: list[int]) -> None:
    joined = events.join_payloads([encode(events.StepReady(step=s)) for s in "ab"])
    with pytest.raises(StoreCorruptedError, match="not a header and"):
        events.decode_joined(joined, lengths)
