"""ipvsadm ingestor: recognise and parse IPVS outputs into raw_ipvs_* frames.

Kinds (one per print layout; the parsers live in ipvsadm_*.py):
  ipvsadm_list      ipvsadm -L [-n] with --stats/--rate/--exact/--persistent-conn/--thresholds/
                    --tun-info, with or without headers (grep fragments)
  ipvsadm_conn      ipvsadm -L[n]c connection entries
  ipvsadm_save      ipvsadm-save / ipvsadm -S [-n]
  proc_ip_vs        /proc/net/ip_vs
  proc_ip_vs_conn   /proc/net/ip_vs_conn
  proc_ip_vs_stats  /proc/net/ip_vs_stats and /proc/net/ip_vs_stats_percpu
"""

from __future__ import annotations

from collections.abc import Callable

from . import ipvsadm_conn, ipvsadm_list, ipvsadm_proc, ipvsadm_save
from .ipvsadm_common import Collector
from .ipvsadm_fields import squeeze
from .records import Detection, Line, ParsedChunk, iter_lines

KINDS: tuple[str, ...] = (
    "ipvsadm_list",
    "ipvsadm_conn",
    "ipvsadm_save",
    "proc_ip_vs",
    "proc_ip_vs_conn",
    "proc_ip_vs_stats",
)

_TABLES: dict[str, tuple[str, ...]] = {
    "ipvsadm_list": ("raw_ipvs_services", "raw_ipvs_backends"),
    "ipvsadm_save": ("raw_ipvs_services", "raw_ipvs_backends"),
    "proc_ip_vs": ("raw_ipvs_services", "raw_ipvs_backends"),
    "ipvsadm_conn": ("raw_ipvs_connections",),
    "proc_ip_vs_conn": ("raw_ipvs_connections",),
    "proc_ip_vs_stats": ("raw_ipvs_stats",),
}


def detect(text: str) -> Detection | None:
    """Score each kind by the lines that look like it; ties go to the earlier kind in KINDS."""
    scores = dict.fromkeys(KINDS, 0)
    stats_headers = 0
    for line in iter_lines(text):
        squeezed = squeeze(line.text)
        if not squeezed:
            continue
        if ipvsadm_list.is_header(squeezed):
            scores["ipvsadm_list"] += 1
            # the kernel's own title line is unpadded; ipvsadm pads RemoteAddress:Port
            scores["proc_ip_vs"] += 2 if line.raw.rstrip() == ipvsadm_proc.PROC_DEST_TITLE else 1
        elif ipvsadm_conn.is_list_header(squeezed):
            scores["ipvsadm_conn"] += 1
        elif ipvsadm_conn.is_proc_header(squeezed):
            scores["proc_ip_vs_conn"] += 1
        elif squeezed in ipvsadm_proc.STATS_HEADERS:
            stats_headers += 1
        elif ipvsadm_conn.looks_like_list_row(squeezed):
            scores["ipvsadm_conn"] += 1
        elif ipvsadm_conn.looks_like_proc_row(squeezed):
            scores["proc_ip_vs_conn"] += 1
        elif ipvsadm_list.looks_like_record(squeezed):
            scores["ipvsadm_list"] += 1
        elif ipvsadm_proc.looks_like_record(squeezed):
            scores["proc_ip_vs"] += 1
        elif ipvsadm_save.looks_like_record(squeezed):
            scores["ipvsadm_save"] += 1
        elif stats_headers and len(squeezed.split()) in (5, 6):
            scores["proc_ip_vs_stats"] += 1
    scores["proc_ip_vs_stats"] += stats_headers if stats_headers >= 2 else 0
    kind = max(KINDS, key=lambda k: scores[k])
    return Detection(kind, scores[kind]) if scores[kind] > 0 else None


def parse(text: str, kind: str) -> ParsedChunk:
    """Parse `text` as `kind`; never raises on bad content (bad records become RecordErrors)."""
    out = Collector(_TABLES.get(kind, ()))
    feed = _feeder(kind, out)
    for line in iter_lines(text):
        feed(line)
    return out.chunk()


def _feeder(kind: str, out: Collector) -> Callable[[Line], None]:
    if kind == "ipvsadm_conn":
        return ipvsadm_conn.ConnParser(out, proc=False).feed
    if kind == "proc_ip_vs_conn":
        return ipvsadm_conn.ConnParser(out, proc=True).feed
    if kind == "ipvsadm_save":
        return ipvsadm_save.SaveParser(out).feed
    if kind == "proc_ip_vs":
        return ipvsadm_proc.ProcServicesParser(out).feed
    if kind == "proc_ip_vs_stats":
        return ipvsadm_proc.ProcStatsParser(out).feed
    return ipvsadm_list.ListParser(out).feed
