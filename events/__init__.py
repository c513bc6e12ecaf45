"""evenflow's event log: what happened, how it is stored, and how it is streamed.

This package imports nothing else of evenflow's. ``projections`` builds on it; ``engine`` on both.

The store, the tail, the audit and the export are imported on first use of one of their names
(they pull in asyncio, aiosqlite and anyio): a process that only decodes and folds events, such
as a rebuild's child processes, starts without them.
"""

import typing as _typing

from ._chain import GENESIS as GENESIS
from ._chain import ChainProblem as ChainProblem
from ._chain import ChainRow as ChainRow
from ._chain import row_hash as row_hash
from ._chain import verify_rows as verify_rows
from ._codec import CODEC_VERSION as CODEC_VERSION
from ._codec import decode as decode
from ._codec import decode_joined as decode_joined
from ._codec import decode_many as decode_many
from ._codec import encode as encode
from ._codec import join_payloads as join_payloads
from ._errors import ConcurrencyError as ConcurrencyError
from ._errors import EngineError as EngineError
from ._errors import StoreBusyError as StoreBusyError
from ._errors import StoreCorruptedError as StoreCorruptedError
from ._errors import StoreError as StoreError
from ._schema import COLD_TYPES as COLD_TYPES
from ._schema import SCHEMA_VERSION as SCHEMA_VERSION
from ._types import *  # noqa: F403  (every event type is public)
from ._types import EVENT_TYPES as EVENT_TYPES
from ._types import TAGS as TAGS
from ._types import AnyEvent as AnyEvent
from ._types import Event as Event
from ._types import Recorded as Recorded
from ._types import UnknownEvent as UnknownEvent
from ._types import tag_of as tag_of

if _typing.TYPE_CHECKING:
    from ._audit import AuditProblem as AuditProblem
    from ._audit import AuditReport as AuditReport
    from ._audit import audit_database as audit_database
    from ._audit import connect_database as connect_database
    from ._export import audit_export as audit_export
    from ._export import export_stream as export_stream
    from ._store import Durability as Durability
    from ._store import EventStore as EventStore
    from ._store import TransactionHook as TransactionHook
    from ._subscription import Subscription as Subscription
    from ._tail import Follower as Follower

_LAZY = {
    "AuditProblem": "._audit",
    "AuditReport": "._audit",
    "audit_database": "._audit",
    "connect_database": "._audit",
    "audit_export": "._export",
    "export_stream": "._export",
    "Durability": "._store",
    "EventStore": "._store",
    "TransactionHook": "._store",
    "Subscription": "._subscription",
    "Follower": "._tail",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
