"""The faster decode builds the same frames as the straightforward row-by-row construction.

Oracles are the plain versions the fast code replaced, kept here: TableSchema.frame as one dict
per row handed to polars row-wise; app_frame as per-message dicts (packet head + parsed message)
built into a frame; a text gather as a Python list lookup. Every comparison is exact: same
columns, dtypes and values (null where null), or both raise.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import dpkt
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import schemas
from pipeline.ingest import pcap_app, pcap_columns
from pipeline.ingest.pcap import read_capture, read_stream
from pipeline.ingest.pcap_batch import RecordBatch
from tests.ingest.pcap_cases import ALL_FILES, case_id

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TABLES = [v for v in vars(schemas).values() if isinstance(v, schemas.TableSchema)]
INT_RANGES = {pl.Int8: 7, pl.Int16: 15, pl.Int32: 31, pl.Int64: 63}


def reference_frame(table: schemas.TableSchema, rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """TableSchema.frame as it was: every row completed to the schema, built row-wise."""
    schema = table.parser_schema()
    return pl.DataFrame(
        [{k: row.get(k) for k in schema} for row in rows], schema=schema, orient="row"
    )


def assert_same(build: Any, reference: Any) -> None:
    """Both raise, or both give the same frame (columns, dtypes, values)."""
    try:
        expected = reference()
    except Exception:  # the old construction raised (e.g. an int too large for Int32)
        with pytest.raises(Exception):  # noqa: B017 - whatever polars raised before
            build()
        return
    got = build()
    assert got.schema == expected.schema
    assert got.equals(expected), (got, expected)


# --- TableSchema.frame -------------------------------------------------------------------------


def _wrong() -> st.SearchStrategy[Any]:
    """A value of some other type than the column's (the row-wise build converts or raises)."""
    return st.one_of(
        st.integers(-(2**70), 2**70), st.text(max_size=4), st.booleans(), st.floats(-1e6, 1e6)
    )


def _value(dtype: Any) -> st.SearchStrategy[Any]:
    if isinstance(dtype, pl.List):
        return st.one_of(st.none(), st.lists(_value(dtype.inner), max_size=3))
    if isinstance(dtype, pl.Struct):
        fields = {f.name: _value(f.dtype) for f in dtype.fields}
        return st.fixed_dictionaries({}, optional=fields)
    if isinstance(dtype, pl.Datetime):
        zones = st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=-3))])
        return st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(2100, 1, 1), timezones=zones)
    base = dtype.base_type() if hasattr(dtype, "base_type") else dtype
    if base in INT_RANGES:
        bits = INT_RANGES[base]
        return st.integers(-(2**bits), 2**bits - 1)
    if base == pl.Boolean:
        return st.booleans()
    if base == pl.Float64:
        return st.floats(allow_nan=False)
    return st.text(max_size=8)


@st.composite
def _table_rows(draw: st.DrawFn) -> tuple[schemas.TableSchema, list[dict[str, Any]]]:
    table = draw(st.sampled_from(TABLES))
    schema = table.parser_schema()
    values = {k: st.one_of(st.none(), _value(d), _value(d), _wrong()) for k, d in schema.items()}
    row = st.fixed_dictionaries({}, optional={**values, "not_a_column": st.integers()})
    return table, draw(st.lists(row, max_size=5))


@SETTINGS
@given(_table_rows())
def test_frame_equals_the_row_wise_build(case: tuple[schemas.TableSchema, list[dict]]) -> None:
    """Any dict rows, of any table: missing keys, extra keys, wrong types, out-of-range ints."""
    table, rows = case
    assert_same(lambda: table.frame(rows), lambda: reference_frame(table, rows))


@SETTINGS
@given(_table_rows())
def test_frame_of_other_mappings_equals_the_row_wise_build(
    case: tuple[schemas.TableSchema, list[dict]],
) -> None:
    table, rows = case
    views = [MappingProxyType(row) for row in rows]
    assert_same(lambda: table.frame(views), lambda: reference_frame(table, views))


def test_frame_of_no_rows_is_the_empty_table() -> None:
    for table in TABLES:
        assert_same(lambda t=table: t.frame([]), lambda t=table: reference_frame(t, []))
        assert table.frame([]).schema == table.parser_schema()


# --- app_frame ---------------------------------------------------------------------------------


def reference_app_frame(
    batch: RecordBatch, cols: pcap_columns.Cols, packets: pl.DataFrame
) -> pl.DataFrame:
    """app_frame as it was (each candidate's packet head as a dict, merged with its message),
    except that the timestamp keeps its nanoseconds."""
    rows, start = pcap_app.candidates(batch, cols)
    if rows.shape[0] == 0:
        return pl.DataFrame(schema=schemas.RAW_APP_MESSAGES.parser_schema())
    packet = cols["packet"][rows]
    caplen = batch.caplen[packet].astype(np.int64)
    off = pcap_columns.field(cols, "payload_off")[rows]
    size = np.minimum(pcap_columns.field(cols, "payload_len")[rows], caplen - off)
    heads = packets[rows.tolist()].select(pcap_app._PACKET_COLUMNS).to_dicts()
    out = []
    kept = []
    for row, head, at, length in zip(
        rows.tolist(), heads, start.tolist(), size.tolist(), strict=True
    ):
        payload = batch.buf[at : at + length].tobytes()
        message = pcap_app.parse_payload(payload, head["proto"], head["src_port"], head["dst_port"])
        if message is not None:
            out.append({**head, **message})
            kept.append(row)
    # the packet's timestamp as decoded (nanoseconds): a Python datetime would cut it to µs
    ts = packets["ts"].gather(kept) if kept else packets["ts"].clear()
    return reference_frame(schemas.RAW_APP_MESSAGES, out).with_columns(ts)


@pytest.fixture
def checked_app_frame(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every app_frame call of the reader is compared with the reference; counts messages."""
    fast = pcap_app.app_frame
    seen = [0, 0]  # batches, messages

    def checked(batch: RecordBatch, cols: pcap_columns.Cols, packets: pl.DataFrame) -> Any:
        got = fast(batch, cols, packets)
        expected = reference_app_frame(batch, cols, packets)
        assert got.schema == expected.schema
        assert got.equals(expected), (got, expected)
        seen[0] += 1
        seen[1] += got.height
        return got

    monkeypatch.setattr(pcap_app, "app_frame", checked)
    return seen


def _drain(chunks: Iterator[Any]) -> None:
    for chunk in chunks:
        chunk.check_counts()


@pytest.mark.parametrize("path", ALL_FILES, ids=case_id)
def test_app_frame_equals_reference_on_every_capture(
    path: Path, checked_app_frame: list[int]
) -> None:
    """All fixture and lab captures, in small chunks, on both decode paths."""
    for slow_only in (False, True):
        _drain(read_capture(path, slow_only=slow_only, chunk_bytes=64 * 1024))


def test_captures_hold_every_message_kind(checked_app_frame: list[int]) -> None:
    """The comparison above covers HTTP, DNS and whoami messages and nanosecond timestamps."""
    kinds: set[str] = set()
    for path in ALL_FILES:
        for chunk in read_capture(path):
            kinds |= set(chunk.frames["raw_app_messages"]["kind"].to_list())
    assert {"http_request", "http_response", "dns_query", "dns_response"} <= kinds
    assert checked_app_frame[1] > 100


def _frame(proto: int, sport: int, dport: int, payload: bytes) -> bytes:
    l4: dpkt.Packet
    if proto == 6:
        l4 = dpkt.tcp.TCP(sport=sport, dport=dport, flags=0x18, data=payload)
    else:
        l4 = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        l4.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", p=proto, data=l4)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))


SEED_PAYLOADS = [
    b"GET /x?y HTTP/1.1\r\nHost: 10.96.0.10:80\r\nUser-Agent: curl/8\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nHostname: web-1\nIP: 127.0.0.1\nIP: 10.0.0.5\n",
    b"Hostname: web-2\nIP: 10.0.0.6\nRemoteAddr: 10.0.0.1:4000\n",
    bytes(dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="a.svc", type=1)])),
    bytes(
        dpkt.dns.DNS(
            id=8,
            op=0x8180,
            qd=[dpkt.dns.DNS.Q(name="a.svc", type=1)],
            an=[dpkt.dns.DNS.RR(name="a.svc", type=1, rdata=b"\x0a\x60\x00\x0a")],
        )
    ),
]
PACKET = st.tuples(
    st.sampled_from([6, 17]),
    st.sampled_from([53, 5353, 80, 40000]),
    st.sampled_from([53, 80, 8080, 5353]),
    st.one_of(
        st.sampled_from(SEED_PAYLOADS),
        st.binary(min_size=1, max_size=80),
        st.builds(
            lambda seed, cut, junk: seed[:cut] + junk,
            st.sampled_from(SEED_PAYLOADS),
            st.integers(0, 120),
            st.binary(max_size=6),
        ),
    ),
    st.integers(0, 999_999_999),  # nanoseconds of the timestamp
)


@SETTINGS
@given(st.lists(PACKET, min_size=1, max_size=12), st.booleans())
def test_app_frame_equals_reference_on_random_payloads(
    packets: list[tuple[int, int, int, bytes, int]], nanos: bool
) -> None:
    """HTTP/DNS/whoami payloads, cut or random, in pcaps with micro- or nanosecond stamps."""
    seen: list[int] = []
    fast = pcap_app.app_frame

    def checked(batch: RecordBatch, cols: pcap_columns.Cols, frame: pl.DataFrame) -> Any:
        got = fast(batch, cols, frame)
        expected = reference_app_frame(batch, cols, frame)
        assert got.schema == expected.schema
        assert got.equals(expected), (got, expected)
        seen.append(got.height)
        return got

    handle = io.BytesIO()
    writer = dpkt.pcap.Writer(handle, nano=nanos)
    for i, (proto, sport, dport, payload, frac) in enumerate(packets):
        ts = 1_700_000_000 + i + (frac if nanos else frac // 1000) / (1e9 if nanos else 1e6)
        writer.writepkt(_frame(proto, sport, dport, payload), ts=ts)
    handle.seek(0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pcap_app, "app_frame", checked)
        for slow_only in (False, True):
            _drain(read_stream(handle, "prop", slow_only=slow_only))  # type: ignore[arg-type]
            handle.seek(0)
    assert seen


# --- text gathers of raw_packets ---------------------------------------------------------------


@SETTINGS
@given(
    st.lists(st.one_of(st.none(), st.text(max_size=5)), min_size=1, max_size=6),
    st.data(),
)
def test_pick_equals_a_list_lookup(texts: list[str | None], data: st.DataObject) -> None:
    """texts[index] where valid else null, including the constant and all-null shortcuts."""
    n = data.draw(st.integers(1, 30))
    index = data.draw(
        st.one_of(
            st.integers(0, len(texts) - 1).map(lambda i: [i] * n),
            st.lists(st.integers(0, len(texts) - 1), min_size=n, max_size=n),
        )
    )
    valid = data.draw(
        st.one_of(
            st.just([True] * n),
            st.just([False] * n),
            st.lists(st.booleans(), min_size=n, max_size=n),
        )
    )
    got = pcap_columns._pick(pl.Series(texts, dtype=pl.Utf8), np.array(index), np.array(valid))
    assert got.dtype == pl.Utf8
    assert got.to_list() == [texts[i] if ok else None for i, ok in zip(index, valid, strict=True)]


def test_nanosecond_capture_keeps_nanoseconds_in_packets_and_messages() -> None:
    """raw_app_messages.ts is its packet's timestamp, nanoseconds included (an older build cut
    it to microseconds by passing it through a Python datetime)."""
    handle = io.BytesIO()
    writer = dpkt.pcap.Writer(handle, nano=True)
    writer.writepkt(_frame(17, 40000, 53, SEED_PAYLOADS[3]), ts=1_700_000_000.123456789)
    handle.seek(0)
    (chunk,) = read_stream(handle, "ns")  # type: ignore[arg-type]
    packet_ns = chunk.frames["raw_packets"]["ts"].dt.epoch("ns")[0]
    message_ns = chunk.frames["raw_app_messages"]["ts"].dt.epoch("ns")[0]
    assert packet_ns % 1000 != 0
    assert message_ns == packet_ns
