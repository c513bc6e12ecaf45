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
from ._types import _TAG_OF_CLASS, TAGS, AnyEvent, Event, UnknownEvent, tag_of

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


def encode(event: AnyEvent) -> bytes:
    """Encode an event payload (its tag included) with the codec's version prefix."""
    if isinstance(event, UnknownEvent):
        return _PREFIX + _encoder.encode({**event.data, "type": event.type})
    return _PREFIX + _encoder.encode(event)


def encode_items(events: Iterable[AnyEvent]) -> list[tuple[AnyEvent, bytes, str]]:
    """``(event, payload, tag)`` for each event: :func:`encode` and :func:`tag_of` inlined for
    the append path, where a call per event is a measurable share of the cost.

    Raises what they raise for a value that is not an encodable event.
    """
    tags = _TAG_OF_CLASS
    encode_struct = _encoder.encode
    out: list[tuple[AnyEvent, bytes, str]] = []
    for event in events:
        tag = tags.get(type(event))
        if tag is None:  # an UnknownEvent, or not an event at all
            out.append((event, encode(event), tag_of(event)))
        else:
            out.append((event, _PREFIX + encode_struct(event), tag))
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


def decode_many(payloads: Sequence[bytes]) -> list[AnyEvent]:
    """:func:`decode` of each payload, in one call into msgspec when they are all known events.

    The payloads are decoded together as one msgpack array, and the result is used only if it
    is exactly a version byte then an event for each payload; otherwise (an unknown tag, a
    corrupted payload) each one is decoded alone, which raises or yields as :func:`decode` does.
    """
    n = len(payloads)
    if n < 2:
        return [decode(payload) for payload in payloads]
    try:
        items = _many_decoder.decode(_ARRAY32.pack(0xDD, 2 * n) + b"".join(payloads))
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        items = None
    if items is not None and len(items) == 2 * n:
        versions, events = items[0::2], items[1::2]
        if versions.count(CODEC_VERSION) == n and not any(type(e) is int for e in events):
            return events  # type: ignore[return-value]  # no int among them, checked above
    return [decode(payload) for payload in payloads]
