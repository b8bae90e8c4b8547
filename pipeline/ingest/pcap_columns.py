"""Decoded packet fields as numpy columns, and the raw_packets frame built from them.

Both decoders (pcap_fast in bulk, pcap_dpkt per packet) produce the same intermediate columns:
int64 arrays with -1 for null, plus addresses as (version, high 64 bits, low 64 bits). One
function turns them into the polars frame, so text formatting (addresses, flags, names) is shared
and the two decoders can only differ in what they decode.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..schemas import RAW_PACKETS
from .pcap_batch import LINK_SLL2, TS_MISSING, RecordBatch, link_name

Cols = dict[str, np.ndarray]

INT_FIELDS = (
    "packet",  # index of the frame in its batch
    "depth",  # 0 for the captured frame, 1 inside a tunnel, ...
    "link",
    "frame_len",
    "caplen",
    "is_truncated",
    "eth_type",
    "vlan",
    "pkttype",
    "ifindex",
    "ip_version",
    "proto_num",
    "src_port",
    "dst_port",
    "tcp_flags_bits",
    "seq",
    "ack",
    "window",
    "tsval",
    "tsecr",
    "ip_id",
    "ttl",
    "ip_len",
    "payload_len",
    "payload_off",  # where the transport payload starts in the captured frame (not a column)
    "is_fragment",
    "frag_offset",
    "icmp_type",
    "icmp_code",
    "tunnel",
    "vni",
)
ADDR_FIELDS = ("src_v", "src_hi", "src_lo", "dst_v", "dst_hi", "dst_lo")

TCP_FLAG_LETTERS = "FSRPAUEC"
"""tcp_flags letters, in this fixed order (bit 0 first): FIN SYN RST PSH ACK URG ECE CWR."""

PROTO_NAMES = {
    1: "icmp",
    2: "igmp",
    4: "ipip",
    6: "tcp",
    17: "udp",
    41: "ipv6",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "icmpv6",
    89: "ospf",
    103: "pim",
    112: "vrrp",
    132: "sctp",
}
DIRECTIONS = {0: "in", 1: "broadcast", 2: "multicast", 3: "other", 4: "out"}
TUNNELS = {1: "vxlan", 2: "geneve"}


def flags_text(bits: int) -> str:
    """TCP flags byte as letters in the fixed order F S R P A U E C (SYN-ACK -> 'SA')."""
    return "".join(letter for i, letter in enumerate(TCP_FLAG_LETTERS) if bits >> i & 1)


_FLAG_TEXT = pl.Series([flags_text(b) for b in range(256)], dtype=pl.Utf8)
_PROTO_TEXT = pl.Series([PROTO_NAMES.get(p, str(p)) for p in range(256)], dtype=pl.Utf8)
_DIRECTION_TEXT = pl.Series([DIRECTIONS.get(p, "other") for p in range(256)], dtype=pl.Utf8)
_TUNNEL_TEXT = pl.Series(["", *TUNNELS.values()], dtype=pl.Utf8)
_NO_TEXT = pl.Series([""], dtype=pl.Utf8)
_NULL_TEXT = pl.Series([None], dtype=pl.Utf8)
_ARROW_INTS: dict[Any, tuple[pa.DataType, type]] = {
    pl.Int8: (pa.int8(), np.int8),
    pl.Int16: (pa.int16(), np.int16),
    pl.Int32: (pa.int32(), np.int32),
    pl.Int64: (pa.int64(), np.int64),
}


def empty(n: int) -> Cols:
    """All fields of n rows, every one null (a decoder may also just leave fields out)."""
    return {name: _missing(name, n) for name in (*INT_FIELDS, *ADDR_FIELDS)}


def _missing(name: str, n: int) -> np.ndarray:
    if name.endswith(("_hi", "_lo")):
        return np.zeros(n, np.uint64)
    return np.full(n, 0 if name.endswith("_v") else -1, np.int64)


def field(cols: Cols, name: str) -> np.ndarray:
    """A field's values; fields a decoder left out are null (-1; address version 0)."""
    values = cols.get(name)
    return values if values is not None else _missing(name, cols["packet"].shape[0])


def from_rows(rows: Sequence[dict[str, Any]]) -> Cols:
    """Columns from the slow path's row dicts (missing or None -> null)."""
    cols: Cols = {}
    for name in INT_FIELDS:
        values = [row.get(name) for row in rows]
        cols[name] = np.array([-1 if v is None else int(v) for v in values], np.int64)
    for side in ("src", "dst"):
        ver, hi, lo = [], [], []
        for row in rows:
            addr = row.get(side)
            if addr is None:
                ver.append(0)
                hi.append(0)
                lo.append(0)
                continue
            value = int.from_bytes(addr, "big")
            ver.append(4 if len(addr) == 4 else 6)
            hi.append(value >> 64)
            lo.append(value & 0xFFFFFFFFFFFFFFFF)
        cols[f"{side}_v"] = np.array(ver, np.int64)
        cols[f"{side}_hi"] = np.array(hi, np.uint64)
        cols[f"{side}_lo"] = np.array(lo, np.uint64)
    return cols


def concat(parts: Sequence[Cols]) -> Cols:
    parts = [p for p in parts if p["packet"].shape[0]]
    if not parts:
        return empty(0)
    if len(parts) == 1:
        return parts[0]
    names = {name for part in parts for name in part}
    return {name: np.concatenate([field(p, name) for p in parts]) for name in names}


def _valid_bitmap(valid: np.ndarray) -> pa.Buffer | None:
    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))


def _ints(values: np.ndarray, valid: np.ndarray, dtype: Any) -> pa.Array:
    pa_type, np_type = _ARROW_INTS[dtype]
    data: np.ndarray = np.ascontiguousarray(values, dtype=np_type)
    return pa.Array.from_buffers(pa_type, len(data), [_valid_bitmap(valid), pa.py_buffer(data)])


def _bools(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    bits = pa.py_buffer(np.packbits(values.astype(bool), bitorder="little"))
    return pa.Array.from_buffers(pa.bool_(), len(values), [_valid_bitmap(valid), bits])


def _pick(texts: pl.Series, index: np.ndarray, valid: np.ndarray) -> pl.Series:
    """texts[index] where valid, else null (a polars gather: strings are not copied)."""
    n = index.shape[0]
    if not valid.any():
        return _NULL_TEXT.new_from_index(0, n)
    if valid.all() and (index == index[0]).all():
        return texts.new_from_index(int(index[0]), n)
    safe = np.where(valid, index, 0).astype(np.uint32)
    bitmap = _valid_bitmap(valid)
    positions = pa.Array.from_buffers(pa.uint32(), n, [bitmap, pa.py_buffer(safe)])
    picked = pl.from_arrow(positions)
    assert isinstance(picked, pl.Series)
    return texts.gather(picked)


def _ipv4_text(values: np.ndarray) -> pl.Series:
    """Dotted quads for IPv4 addresses given as integers (vectorised)."""
    values = values.astype(np.int64)
    parts = [pl.Series((values >> shift) & 0xFF).cast(pl.Utf8) for shift in (24, 16, 8, 0)]
    return pl.select(pl.concat_str(parts, separator=".")).to_series()


def _format(ver: int, hi: int, lo: int) -> str | None:
    if ver == 4:
        return str(ipaddress.IPv4Address(lo))
    if ver == 6:
        return str(ipaddress.IPv6Address((hi << 64) | lo))
    return None


def _addresses(cols: Cols) -> tuple[pl.Series, pl.Series]:
    """Source and destination address text: each distinct address is formatted once."""
    n = cols["packet"].shape[0]
    ver = np.concatenate([field(cols, "src_v"), field(cols, "dst_v")])
    lo = np.concatenate([field(cols, "src_lo"), field(cols, "dst_lo")])
    valid = ver != 0
    if not (ver == 6).any():  # the common IPv4-only case
        encoded = pc.dictionary_encode(pa.array(lo.astype(np.uint32)))
        texts = _ipv4_text(encoded.dictionary.to_numpy())
        index = encoded.indices.to_numpy()
    else:
        hi = np.concatenate([field(cols, "src_hi"), field(cols, "dst_hi")])
        keys = np.stack([ver.astype(np.uint64), hi, lo], axis=1)
        uniq, index = np.unique(keys, axis=0, return_inverse=True)
        texts = pl.Series([_format(int(v), int(h), int(x)) for v, h, x in uniq], dtype=pl.Utf8)
    both = _pick(texts, index.reshape(-1), valid)
    return both[:n], both[n:]


def to_frame(cols: Cols, batch: RecordBatch) -> pl.DataFrame:
    """The raw_packets frame (RAW_PACKETS.parser_schema()) for decoded columns of a batch.

    Numbers go through Arrow buffers (no copy into polars); text columns are gathered from small
    tables of distinct values.
    """
    schema = RAW_PACKETS.parser_schema()
    packet = cols["packet"]
    n = packet.shape[0]
    if n == 0:
        return pl.DataFrame(schema=schema)
    out: dict[str, pa.Array] = {}
    for name, dtype in schema.items():
        if name in INT_FIELDS and dtype in _ARROW_INTS:
            values = cols.get(name)
            if values is None:
                out[name] = pa.nulls(n, _ARROW_INTS[dtype][0])
            else:
                out[name] = _ints(values, values >= 0, dtype)
    everywhere = np.ones(n, bool)
    out["frame_no"] = _ints(batch.first_frame_no + packet, everywhere, pl.Int64)
    ts = batch.ts_ns[packet]
    out["ts"] = pa.Array.from_buffers(
        pa.timestamp("ns", tz="UTC"), n, [_valid_bitmap(ts != TS_MISSING), pa.py_buffer(ts)]
    )
    iface_id = batch.iface_id[packet].astype(np.int64)
    out["iface_id"] = _ints(iface_id, np.full(n, batch.is_pcapng), pl.Int32)
    out["is_truncated"] = _bools(cols["is_truncated"] == 1, everywhere)
    frag = field(cols, "is_fragment")
    out["is_fragment"] = _bools(frag == 1, frag >= 0)
    depth = cols["depth"]
    out["encap_depth"] = _ints(depth, everywhere, pl.Int8)
    out["outer_frame_no"] = _ints(batch.first_frame_no + packet, depth > 0, pl.Int64)
    numbers = pl.from_arrow(pa.table(list(out.values()), names=list(out)))
    assert isinstance(numbers, pl.DataFrame)
    by_name = {s.name: s for s in (*numbers.get_columns(), *_texts(cols, batch, iface_id))}
    return pl.DataFrame([by_name[name] for name in schema])


def _texts(cols: Cols, batch: RecordBatch, iface_id: np.ndarray) -> list[pl.Series]:
    n = iface_id.shape[0]
    link = cols["link"]
    if batch.is_pcapng:
        names = [batch.iface_names.get(i, str(i)) for i in range(int(iface_id.max()) + 1)]
        iface = _pick(pl.Series(names, dtype=pl.Utf8), iface_id, np.ones(n, bool))
    else:
        iface = _pick(_NO_TEXT, np.zeros(n, np.int64), np.zeros(n, bool))
    sll2 = link == LINK_SLL2
    if sll2.any():
        ifindex = pl.Series(field(cols, "ifindex")).cast(pl.Utf8)
        iface = pl.select(pl.when(pl.Series(sll2)).then(ifindex).otherwise(iface)).to_series()
    pkttype = field(cols, "pkttype")
    if (link == link[0]).all():  # one link type: every classic pcap chunk
        link_values, link_index = link[:1], np.zeros(n, np.int64)
    else:
        link_values, link_index = np.unique(link, return_inverse=True)
    link_texts = pl.Series([link_name(int(v)) for v in link_values], dtype=pl.Utf8)
    proto = field(cols, "proto_num")
    has_proto = (field(cols, "ip_version") >= 0) & (proto >= 0)
    bits = field(cols, "tcp_flags_bits")
    tunnel = field(cols, "tunnel")
    src, dst = _addresses(cols)
    return [
        iface.alias("iface"),
        _pick(_DIRECTION_TEXT, np.clip(pkttype, 0, 255), pkttype >= 0).alias("direction"),
        _pick(link_texts, link_index, np.ones(n, bool)).alias("link_type"),
        src.alias("src_ip"),
        dst.alias("dst_ip"),
        _pick(_PROTO_TEXT, np.clip(proto, 0, 255), has_proto).alias("proto"),
        _pick(_FLAG_TEXT, bits & 0xFF, (proto == 6) & (bits >= 0)).alias("tcp_flags"),
        _pick(_TUNNEL_TEXT, np.clip(tunnel, 0, 2), tunnel > 0).alias("tunnel"),
    ]
