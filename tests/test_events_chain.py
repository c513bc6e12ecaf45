"""Property tests of the hash chain: any chain built with ``row_hash`` verifies, and any single
change to a row (one byte of its payload or hash, its stream, type, version or timestamp), a
deleted row or two swapped rows is reported at the first row it breaks."""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from events import GENESIS, ChainRow, row_hash, verify_rows
from events._chain import chain_stream_rows

_CONTENT = st.tuples(
    st.sampled_from(["run-1", "run-2", "schedule:x", "é"]) | st.text(max_size=8),
    st.sampled_from(["step.ready", "run.created", "x"]),
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
    st.binary(max_size=40),
)


def build(contents: list[tuple[str, str, float, bytes]], first_seq: int = 1) -> list[ChainRow]:
    rows: list[ChainRow] = []
    prev = GENESIS
    versions: dict[str, int] = {}
    for offset, (stream, type_, at, payload) in enumerate(contents):
        version = versions[stream] = versions.get(stream, 0) + 1
        prev = row_hash(prev, stream, version, type_, at, payload)
        rows.append(ChainRow(first_seq + offset, stream, version, type_, at, payload, prev))
    return rows


ROWS = st.lists(_CONTENT, min_size=1, max_size=12).map(build)


@settings(max_examples=200, deadline=None)
@given(rows=ROWS)
def test_a_built_chain_verifies(rows: list[ChainRow]) -> None:
    problem, count, last = verify_rows(rows)
    assert problem is None
    assert count == len(rows)
    assert last == rows[-1].hash


@settings(max_examples=100, deadline=None)
@given(rows=ROWS, cut=st.integers(min_value=1, max_value=11))
def test_an_excerpt_verifies_from_its_predecessor(rows: list[ChainRow], cut: int) -> None:
    assume(cut < len(rows))
    problem, _, _ = verify_rows(rows[cut:], prev=rows[cut - 1].hash, prev_seq=rows[cut - 1].seq)
    assert problem is None


def _flip(data: bytes, index: int, bit: int) -> bytes:
    index %= len(data)
    return data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1 :]


@settings(max_examples=300, deadline=None)
@given(
    rows=ROWS,
    which=st.integers(min_value=0),
    field=st.sampled_from(["payload", "hash", "stream", "type", "version", "recorded_at"]),
    index=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_single_change_is_detected_at_its_row(
    rows: list[ChainRow], which: int, field: str, index: int, bit: int
) -> None:
    i = which % len(rows)
    row = rows[i]
    if field == "payload":
        assume(row.payload)
        changed = row._replace(payload=_flip(row.payload, index, bit))
    elif field == "hash":
        changed = row._replace(hash=_flip(row.hash, index, bit))
    elif field == "stream":
        changed = row._replace(stream=row.stream + chr(0x61 + bit))
    elif field == "type":
        changed = row._replace(type=_flip(row.type.encode(), index, bit % 7).decode())
    elif field == "version":
        changed = row._replace(version=row.version + 1 + bit)
    else:
        changed = row._replace(recorded_at=math.nextafter(row.recorded_at, math.inf))
    assert changed != row
    tampered = [*rows[:i], changed, *rows[i + 1 :]]
    problem, _, _ = verify_rows(tampered)
    assert problem is not None
    assert problem.seq == row.seq


@settings(max_examples=200, deadline=None)
@given(rows=ROWS, which=st.integers(min_value=0), renumber=st.booleans())
def test_a_deleted_row_is_detected(rows: list[ChainRow], which: int, renumber: bool) -> None:
    assume(len(rows) >= 2)
    i = which % (len(rows) - 1)  # not the last row: see test_dropping_the_tail_is_not_visible
    rest = [*rows[:i], *rows[i + 1 :]]
    if renumber:  # close the seq gap too, as a careful forger would
        rest = [r._replace(seq=n + 1) for n, r in enumerate(rest)]
    problem, _, _ = verify_rows(rest)
    assert problem is not None
    assert problem.seq == (i + 1 if renumber else rows[i + 1].seq)


@settings(max_examples=200, deadline=None)
@given(rows=ROWS, which=st.integers(min_value=0))
def test_swapped_rows_are_detected(rows: list[ChainRow], which: int) -> None:
    assume(len(rows) >= 2)
    i = which % (len(rows) - 1)
    a, b = rows[i], rows[i + 1]
    assume(a[1:] != b[1:])
    swapped = [*rows[:i], b._replace(seq=a.seq), a._replace(seq=b.seq), *rows[i + 2 :]]
    problem, _, _ = verify_rows(swapped)
    assert problem is not None
    assert problem.seq == a.seq


@settings(max_examples=50, deadline=None)
@given(rows=ROWS)
def test_rows_out_of_seq_order_are_reported(rows: list[ChainRow]) -> None:
    assume(len(rows) >= 2)
    problem, _, _ = verify_rows([rows[1], rows[0], *rows[2:]])
    assert problem is not None


def test_dropping_the_tail_is_not_visible_to_the_chain_alone() -> None:
    """Documents a limit: a truncated log is still a valid chain. Detecting it needs an anchor
    outside the rows (the highest seq ever issued, a published head hash)."""
    rows = build([("s", "x", 1.0, b"a"), ("s", "x", 2.0, b"b")])
    assert verify_rows(rows[:1])[0] is None


@settings(max_examples=200, deadline=None)
@given(
    stream=st.sampled_from(["run-1", "é", ""]) | st.text(max_size=8),
    items=st.lists(
        st.tuples(st.binary(max_size=40), st.sampled_from(["step.ready", "x", "ü"]) | st.text()),
        max_size=10,
    ),
    start=st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 2**40), st.integers(0, 9)),
    at=st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_the_append_paths_batch_hashing_equals_row_hash(
    stream: str, items: list[tuple[bytes, str]], start: tuple[bytes, int, int], at: float
) -> None:
    prev, seq, version = start
    rows: list[tuple[int, str, int, str, float, bytes, bytes]] = []
    last = chain_stream_rows(prev, seq, stream, version, at, [(None, p, t) for p, t in items], rows)
    expected = []
    for payload, type_ in items:
        seq, version = seq + 1, version + 1
        prev = row_hash(prev, stream, version, type_, at, payload)
        expected.append((seq, stream, version, type_, at, payload, prev))
    assert rows == expected
    assert last == (prev, seq, version)
