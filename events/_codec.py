"""The payload codec: msgpack, one encoder and one decoder, created once.

A payload is one version byte followed by the msgpack of the tagged event struct. The version
byte lets a later release change the wire format while still reading old rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from ._errors import StoreCorruptedError
from ._types import _TAG_OF_CLASS, TAGS, AnyEvent, Event, UnknownEvent, tag_of

CODEC_VERSION = 1
_PREFIX = bytes([CODEC_VERSION])

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)
_raw_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder()


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
