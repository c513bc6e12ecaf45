"""The public face of ``events``: the exported names (the engine and projections are written
against them) and the shape every event type must have."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest

import events

EXPORTED = {
    # the log
    "EventStore",
    "Durability",
    "TransactionHook",
    "Subscription",
    "Follower",
    "Recorded",
    "SCHEMA_VERSION",
    "COLD_TYPES",
    # errors
    "EngineError",
    "StoreError",
    "StoreCorruptedError",
    "StoreBusyError",
    "ConcurrencyError",
    # codec and chain
    "encode",
    "decode",
    "decode_many",
    "decode_joined",
    "join_payloads",
    "CODEC_VERSION",
    "row_hash",
    "verify_rows",
    "ChainRow",
    "ChainProblem",
    "GENESIS",
    # audit
    "audit_database",
    "audit_export",
    "export_stream",
    "connect_database",
    "AuditReport",
    "AuditProblem",
    # event types
    "Event",
    "AnyEvent",
    "EVENT_TYPES",
    "TAGS",
    "tag_of",
    "UnknownEvent",
    "InputRef",
    "StepSpec",
    "ArtifactRef",
    *(cls.__name__ for cls in events.EVENT_TYPES),
}


def test_exported_names() -> None:
    public = {name for name in dir(events) if not name.startswith("_")}
    assert public == EXPORTED


@pytest.mark.parametrize("cls", events.EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_event_type_is_a_frozen_tagged_struct(cls: type[msgspec.Struct]) -> None:
    config = cls.__struct_config__
    assert config.frozen
    assert config.tag_field == "type"
    assert isinstance(config.tag, str)
    assert "." in config.tag
    assert events.TAGS[config.tag] is cls
    assert cls.__module__ == "events._types"  # all in one module


def test_error_tree() -> None:
    assert issubclass(events.StoreError, events.EngineError)
    assert issubclass(events.StoreCorruptedError, events.StoreError)
    assert issubclass(events.StoreBusyError, events.StoreError)
    assert issubclass(events.ConcurrencyError, events.EngineError)
    assert not issubclass(events.ConcurrencyError, events.StoreError)


def test_tag_of_rejects_what_is_not_an_event() -> None:
    assert events.tag_of(events.StepReady(step="x")) == "step.ready"
    assert events.tag_of(events.UnknownEvent(type="later.thing")) == "later.thing"
    with pytest.raises(TypeError):
        events.tag_of(events.InputRef(step="x"))  # type: ignore[arg-type]


def test_the_store_and_its_async_stack_load_on_first_use() -> None:
    # A rebuild's child processes import ``projections`` to fold: they start without asyncio,
    # anyio and aiosqlite, which only the store, the tail and the audit need.
    probe = (
        "import sys, projections._rebuild_child, events\n"
        "heavy = ['aiosqlite', 'anyio', 'asyncio', 'events._store', 'events._audit']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "from events import EventStore, audit_database\n"
        "print(EventStore.__module__, audit_database.__module__, 'aiosqlite' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "events._store events._audit True"]
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        events.NoSuchThing  # noqa: B018


@pytest.mark.parametrize(
    "cls",
    [*events.EVENT_TYPES, events.InputRef, events.StepSpec, events.ArtifactRef, events.Recorded],
    ids=lambda c: c.__name__,
)
def test_events_and_their_shapes_are_not_tracked_by_the_garbage_collector(
    cls: type[msgspec.Struct],
) -> None:
    # A run keeps several per step alive: tracked, every collection would walk them all.
    assert cls.__struct_config__.gc is False


def test_an_untracked_event_still_frees_what_it_holds() -> None:
    import gc
    import weakref

    class Held:
        pass

    held = Held()
    probe = weakref.ref(held)
    event = events.MetadataLogged(metadata={"k": [held]})
    assert not gc.is_tracked(event)
    del held, event
    assert probe() is None  # reference counting frees it: no collection needed
