"""Ingestors, one module per input family: KINDS, detect(text) and parse(text, kind)."""

from __future__ import annotations

from types import ModuleType

from . import conntrack, host, ipset, iptables, ipvsadm, k8s, nft, sysctl

TEXT_INGESTORS: tuple[ModuleType, ...] = (
    conntrack,
    ipvsadm,
    iptables,
    ipset,
    nft,
    host,
    k8s,
    sysctl,
)
