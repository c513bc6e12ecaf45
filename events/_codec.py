"""The payload codec: msgpack, one encoder and one decoder, created once.

A payload is one version byte followed by the msgpack of the tagged event struct. The version
byte lets a later release change the wire format while still reading old rows.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from ._errors import StoreCorruptedError
from ._types import (
    _TAG_OF_CLASS,
    TAGS,
    AnyEvent,
    ArtifactStored,
    Event,
    HookFailed,
    HookStarted,
    HookSucceeded,
    StepCached,
    StepCancelled,
    StepFailed,
    StepLogs,
    StepReady,
    StepRetryScheduled,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    UnknownEvent,
    tag_of,
)

CODEC_VERSION = 1
_PREFIX = bytes([CODEC_VERSION])

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)
_raw_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder()
# Payloads decoded together: their concatenation after a msgpack array32 header is an array of
# version byte, event, version byte, event... (a version byte is the msgpack of a small int).
_many_decoder: msgspec.msgpack.Decoder[list[int | Event]] = msgspec.msgpack.Decoder(
    list[int | Event]
)
_ARRAY32 = struct.Struct(">BI")
# The same concatenation read as raw spans, one per item, to check where each item ends.
_spans: msgspec.msgpack.Decoder[list[msgspec.Raw]] = msgspec.msgpack.Decoder(list[msgspec.Raw])
_VERSION_SPAN = msgspec.Raw(_PREFIX)


def encode(event: AnyEvent) -> bytes:
    """Encode an event payload (its tag included) with the codec's version prefix."""
    if isinstance(event, UnknownEvent):
        return _PREFIX + _encoder.encode({**event.data, "type": event.type})
    return _PREFIX + _encoder.encode(event)


# The events a step's every transition appends, built by the engine from values of fixed types
# (ids, names, numbers, refs): what they encode always decodes back. Every other event is
# decoded once as it is appended (see encode_items). msgspec does not check a Struct's fields
# when it is built, and its encoder takes what the decoder refuses (a metadata key that is not
# a string): such a row, once committed, would make every read of the log fail from then on.
_DECODES_BACK = frozenset(
    {
        StepReady,
        StepStarted,
        StepSucceeded,
        ArtifactStored,
        StepCached,
        StepFailed,
        StepRetryScheduled,
        StepSkipped,
        StepCancelled,
        StepLogs,
        HookStarted,
        HookSucceeded,
        HookFailed,
    }
)


def encode_items(events: Iterable[AnyEvent]) -> list[tuple[AnyEvent, bytes, str]]:
    """``(event, payload, tag)`` for each event: :func:`encode` and :func:`tag_of` inlined for
    the append path, where a call per event is a measurable share of the cost.

    Raises what they raise for a value that is not an encodable event, and ``TypeError`` for
    a payload that would not decode back (see :data:`_DECODES_BACK`) or an
    :class:`UnknownEvent` carrying a tag this version knows (it would not decode as one).
    """
    tags = _TAG_OF_CLASS
    encode_struct = _encoder.encode
    trusted = _DECODES_BACK
    out: list[tuple[AnyEvent, bytes, str]] = []
    for event in events:
        cls = type(event)
        tag = tags.get(cls)
        if tag is None:  # an UnknownEvent, or not an event at all
            if isinstance(event, UnknownEvent) and event.type in TAGS:
                raise TypeError(f"an UnknownEvent cannot carry the known type {event.type!r}")
            out.append((event, encode(event), tag_of(event)))
            continue
        payload = _PREFIX + encode_struct(event)
        if cls not in trusted:
            try:
                _decoder.decode(memoryview(payload)[1:])
            except msgspec.ValidationError as exc:
                raise TypeError(f"{tag} would not decode back from the log: {exc}") from None
        out.append((event, payload, tag))
    return out


def decode(payload: bytes) -> AnyEvent:
    """Decode a payload written by :func:`encode`.

    An unknown tag gives :class:`UnknownEvent`; bytes that are not a payload at all raise
    :class:`StoreCorruptedError`.
    """
    if not payload or payload[0] != CODEC_VERSION:
        version = payload[0] if payload else None
        raise StoreCorruptedError(f"event payload has unknown codec version {version!r}")
    body = memoryview(payload)[1:]
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise StoreCorruptedError(f"event payload does not decode: {exc}") from exc
    # Valid msgpack, but not a type we know: keep it, do not crash.
    try:
        data = _raw_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # A string that is not UTF-8 fails only here when the typed decode stopped before it.
        raise StoreCorruptedError(f"event payload does not decode: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise StoreCorruptedError("event payload is not a tagged map")
    tag = data.pop("type")
    if tag in TAGS:
        raise StoreCorruptedError(f"event payload of type {tag!r} does not match its schema")
    return UnknownEvent(type=tag, data=data)


def join_payloads(payloads: Sequence[bytes]) -> bytes:
    """``payloads`` as one buffer that :func:`decode_joined` decodes in one call: a msgpack
    array header, then each payload as it is (a version byte is the msgpack of a small int)."""
    return _ARRAY32.pack(0xDD, 2 * len(payloads)) + b"".join(payloads)


def decode_joined(joined: bytes | memoryview, lengths: Sequence[int]) -> list[AnyEvent]:
    """:func:`decode` of each payload of ``joined`` (made by :func:`join_payloads`; ``lengths``
    are the payloads' lengths), in one call into msgspec when they are all known events.

    The result is always what decoding each payload alone gives (see :func:`_decode_all`): if
    the one call does not apply, each payload is cut out by its length and decoded alone, which
    raises or yields as :func:`decode` does.

    Raises:
        StoreCorruptedError: ``joined`` is not a header and payloads of these lengths, or a
            payload does not decode.
    """
    n = len(lengths)
    if len(joined) != _ARRAY32.size + sum(lengths):
        raise StoreCorruptedError(
            f"{len(joined)} bytes of joined payloads, not a header and {n} payloads"
        )
    events = _decode_all(joined, lengths) if n > 1 else None
    if events is not None:
        return events
    view, at, out = memoryview(joined), _ARRAY32.size, []
    for length in lengths:
        out.append(decode(bytes(view[at : at + length])))
        at += length
    return out


def _decode_all(joined: bytes | memoryview, lengths: Sequence[int]) -> list[AnyEvent] | None:
    """The events of joined payloads decoded in one call, or None unless that gives exactly
    what decoding each payload alone would.

    It does when every payload is exactly one version byte then one known event: a first,
    cheap pass reads the items as raw spans (no objects built) and checks that each payload of
    ``lengths`` is the byte ``CODEC_VERSION`` then one whole item, so that no item crosses from
    one payload into the next and no version is spelled as a longer int.
    """
    n = len(lengths)
    try:
        spans = _spans.decode(joined)
        if (
            len(spans) != 2 * n
            or spans[0::2].count(_VERSION_SPAN) != n
            or [len(span) + 1 for span in spans[1::2]] != list(lengths)
        ):
            return None
        items = _many_decoder.decode(joined)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        return None
    events = items[1::2]
    if any(type(e) is int for e in events):
        return None  # an event spelled as a bare int: decode() names the problem
    return events  # type: ignore[return-value]  # no int among them, checked above


def decode_many(payloads: Sequence[bytes]) -> list[AnyEvent]:
    """:func:`decode` of each payload, in one call into msgspec when they are all known events
    (:func:`decode_joined` of them joined): the result is what decoding each gives."""
    return decode_joined(join_payloads(payloads), [len(payload) for payload in payloads])
