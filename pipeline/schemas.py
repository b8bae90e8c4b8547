"""One polars schema per raw table, with a doc string per column.

Every raw table also carries the provenance columns (``PROVENANCE``): the ingestor fills
``source_line`` (or ``frame_no`` for packets), the loader fills the rest. The DuckDB tables are
created from these schemas and each column's doc becomes its ``COMMENT ON COLUMN``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl


@dataclass(frozen=True)
class Column:
    name: str
    dtype: Any  # a polars data type (class or instance)
    doc: str


@dataclass(frozen=True)
class TableSchema:
    name: str
    doc: str
    columns: tuple[Column, ...]
    line_column: str | None = "source_line"

    @property
    def all_columns(self) -> tuple[Column, ...]:
        if self.line_column is None:
            return (*PROVENANCE, *self.columns)
        line = Column(self.line_column, pl.Int64, "1-based line (or frame number) of the record")
        return (*PROVENANCE, line, *self.columns)

    def polars_schema(self) -> dict[str, Any]:
        return {c.name: c.dtype for c in self.all_columns}

    def parser_schema(self) -> dict[str, Any]:
        """Columns an ingestor produces: everything except what the loader adds."""
        loader_added = {c.name for c in PROVENANCE}
        return {c.name: c.dtype for c in self.all_columns if c.name not in loader_added}

    def frame(self, rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
        """Build the ingestor-side frame from dict rows; missing keys become null, keys that are
        not columns are ignored."""
        schema = self.parser_schema()
        rows = list(rows)
        if all(type(row) is dict for row in rows):
            # polars picks each column's value out of the dicts itself, converting values by the
            # same rules as below, without a completed copy of every row
            return pl.DataFrame(rows, schema=schema)
        return pl.DataFrame(
            [{k: row.get(k) for k in schema} for row in rows], schema=schema, orient="row"
        )

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.polars_schema())


PROVENANCE: tuple[Column, ...] = (
    Column("bundle_id", pl.Utf8, "name of the capture bundle (its directory name)"),
    Column("node", pl.Utf8, "node the file belongs to (its folder), '-' for bundle-level files"),
    Column("source_file", pl.Utf8, "path of the input file relative to the bundle's parent"),
)

TUPLE_COLUMNS = ("src", "dst", "sport", "dport")


def _conntrack_tuple(prefix: str, direction: str) -> tuple[Column, ...]:
    return (
        Column(f"{prefix}_src", pl.Utf8, f"{direction} tuple source address (normalised)"),
        Column(f"{prefix}_dst", pl.Utf8, f"{direction} tuple destination address (normalised)"),
        Column(f"{prefix}_sport", pl.Int32, f"{direction} tuple source port (tcp/udp/sctp/dccp)"),
        Column(f"{prefix}_dport", pl.Int32, f"{direction} tuple destination port"),
        Column(f"{prefix}_icmp_type", pl.Int32, f"{direction} tuple ICMP type"),
        Column(f"{prefix}_icmp_code", pl.Int32, f"{direction} tuple ICMP code"),
        Column(f"{prefix}_icmp_id", pl.Int32, f"{direction} tuple ICMP id"),
        Column(f"{prefix}_gre_key", pl.Utf8, f"{direction} tuple GRE srckey/dstkey as printed"),
        Column(f"{prefix}_packets", pl.Int64, f"{direction} packets (nf_conntrack_acct)"),
        Column(f"{prefix}_bytes", pl.Int64, f"{direction} bytes (nf_conntrack_acct)"),
        Column(f"{prefix}_zone", pl.Int32, f"zone-{direction} (zone of this direction only)"),
    )


RAW_CONNTRACK_ENTRIES = TableSchema(
    "raw_conntrack_entries",
    "conntrack table entries and events: conntrack -L (any -o), /proc/net/nf_conntrack, -E",
    (
        Column(
            "format",
            pl.Utf8,
            "default|extended|proc|event|xml: the print layout seen (-o id/ktimestamp add"
            " columns, not formats; proc = /proc/net/nf_conntrack, told from extended by"
            " zone=0, expanded IPv6 or GRE timeouts in the same file)",
        ),
        Column("event", pl.Utf8, "NEW|UPDATE|DESTROY for -E lines, null for table dumps"),
        Column(
            "event_ts",
            pl.Datetime("us", "UTC"),
            "event time: -E -o timestamp [epoch.usec] (UTC); -o xml,timestamp <when> is the"
            " capture host's local time, stored as if it were UTC",
        ),
        Column("l3proto", pl.Utf8, "ipv4|ipv6 when printed (extended, /proc), else inferred"),
        Column("proto", pl.Utf8, "layer-4 protocol name, lowercase; unknown numbers as text"),
        Column("proto_num", pl.Int32, "layer-4 protocol number"),
        Column("timeout_s", pl.Int64, "seconds until the entry expires; null when not printed"),
        Column("state", pl.Utf8, "protocol state (TCP/SCTP/DCCP), null when not printed"),
        *_conntrack_tuple("orig", "original"),
        *_conntrack_tuple("reply", "reply"),
        Column("flags", pl.List(pl.Utf8), "status flags as printed: ASSURED, UNREPLIED, ..."),
        Column("mark", pl.Int64, "connection mark (mark=)"),
        Column("secctx", pl.Utf8, "security context (secctx=)"),
        Column("zone", pl.Int32, "conntrack zone (zone=)"),
        Column("labels", pl.Utf8, "connlabels as printed (labels=)"),
        Column("use", pl.Int32, "reference count (use=)"),
        Column("ct_id", pl.Int64, "conntrack id (id=, -o id)"),
        Column("delta_time_s", pl.Int64, "seconds since the entry was created (delta-time=)"),
        Column(
            "start_ts",
            pl.Datetime("us", "UTC"),
            "entry start: -o ktimestamp [start=ctime] is the capture host's local time stored"
            " as if UTC (second resolution); XML <start> nanoseconds are true UTC",
        ),
        Column("stop_ts", pl.Datetime("us", "UTC"), "entry stop ([stop=...], <stop>), as start_ts"),
        Column("secmark", pl.Int64, "security mark (secmark=)"),
        Column("helper", pl.Utf8, "conntrack helper name (helper=)"),
        Column("userspace_portid", pl.Int64, "-E: netlink portid of the program that caused it"),
        Column("userspace_progname", pl.Utf8, "-E: name of that program (progname=)"),
        Column(
            "extra",
            pl.Utf8,
            "key=value tokens printed but not mapped to a column (e.g. GRE"
            " 'timeout=0, stream_timeout=0' in /proc), as printed",
        ),
        Column("raw", pl.Utf8, "the record's text as read (lines joined with a space)"),
    ),
)

RAW_CONNTRACK_STATS = TableSchema(
    "raw_conntrack_stats",
    "conntrack -S per-cpu counters, one row per cpu and counter",
    (
        Column("format", pl.Utf8, "stats (conntrack -S) | proc (/proc/net/stat/nf_conntrack)"),
        Column("cpu", pl.Int32, "cpu number (cpu=N); for proc the row's position (0-based)"),
        Column("counter", pl.Utf8, "counter name as printed (found, invalid, insert, drop, ...)"),
        Column("value", pl.Int64, "counter value"),
    ),
)

_IPVS_STATS = (
    Column("conns", pl.Int64, "--stats Conns (connections scheduled)"),
    Column("in_pkts", pl.Int64, "--stats InPkts"),
    Column("out_pkts", pl.Int64, "--stats OutPkts"),
    Column("in_bytes", pl.Int64, "--stats InBytes (K/M/G suffixes expanded)"),
    Column("out_bytes", pl.Int64, "--stats OutBytes"),
    Column("cps", pl.Int64, "--rate CPS (connections per second)"),
    Column("in_pps", pl.Int64, "--rate InPPS"),
    Column("out_pps", pl.Int64, "--rate OutPPS"),
    Column("in_bps", pl.Int64, "--rate InBPS"),
    Column("out_bps", pl.Int64, "--rate OutBPS"),
    Column("is_exact", pl.Boolean, "false when a value carried a K/M/G/T suffix (truncated)"),
)

_IPVS_SERVICE_KEY = (
    Column(
        "format",
        pl.Utf8,
        "list|stats|rate|persistent_conn|thresholds|save|proc: the listing the row came from",
    ),
    Column("proto", pl.Utf8, "tcp|udp|sctp, or fwm for firewall-mark services"),
    Column("vip", pl.Utf8, "virtual address (normalised; a host name when not -n)"),
    Column("vport", pl.Int32, "virtual port (null for fwm)"),
    Column("vport_name", pl.Utf8, "port as printed when it was a service name (no -n)"),
    Column("fwmark", pl.Int64, "firewall mark of an FWM service"),
)

RAW_IPVS_SERVICES = TableSchema(
    "raw_ipvs_services",
    "IPVS virtual services: ipvsadm -Ln (+ --stats/--rate), ipvsadm-save, /proc/net/ip_vs",
    (
        *_IPVS_SERVICE_KEY,
        Column("scheduler", pl.Utf8, "scheduler name (rr, wrr, lc, wlc, sh, mh, ...)"),
        Column("flags", pl.Utf8, "scheduler flags as printed (e.g. 'persistent 10800')"),
        Column("persistent_s", pl.Int64, "persistence timeout in seconds (persistent N)"),
        Column("netmask", pl.Utf8, "persistence netmask when printed (IPv6: prefix length)"),
        Column("family", pl.Utf8, "inet|inet6 (null when the address is a host name)"),
        *_IPVS_STATS,
    ),
)

RAW_IPVS_BACKENDS = TableSchema(
    "raw_ipvs_backends",
    "IPVS real servers (-> lines) with the service they belong to",
    (
        *_IPVS_SERVICE_KEY,
        Column("service_line", pl.Int64, "line of the service this backend belongs to"),
        Column("backend_ip", pl.Utf8, "real server address (normalised)"),
        Column("backend_port", pl.Int32, "real server port"),
        Column("backend_port_name", pl.Utf8, "port as printed when it was a service name"),
        Column("forward", pl.Utf8, "Masq|Route|Tunnel|Local or the unknown text as printed"),
        Column("weight", pl.Int64, "weight (0 = terminating / drained endpoint)"),
        Column("active_conn", pl.Int64, "ActiveConn"),
        Column("inact_conn", pl.Int64, "InActConn"),
        Column("persist_conn", pl.Int64, "PersistConn (--persistent-conn)"),
        Column("u_threshold", pl.Int64, "Uthreshold (--thresholds, -x in ipvsadm-save)"),
        Column("l_threshold", pl.Int64, "Lthreshold (--thresholds, -y in ipvsadm-save)"),
        Column("tunnel_info", pl.Utf8, "TunnelInfo (--tun-info) or --tun-* options as printed"),
        *_IPVS_STATS,
    ),
)

RAW_IPVS_CONNECTIONS = TableSchema(
    "raw_ipvs_connections",
    "IPVS connection table: ipvsadm -Lnc and /proc/net/ip_vs_conn",
    (
        Column("format", pl.Utf8, "list|proc"),
        Column("proto", pl.Utf8, "tcp|udp|sctp (other protocol names lowercased as printed)"),
        Column("expire_s", pl.Int64, "seconds until expiry"),
        Column("state", pl.Utf8, "IPVS connection state (ESTABLISHED, TIME_WAIT, UDP, ...)"),
        Column("client_ip", pl.Utf8, "source address"),
        Column("client_port", pl.Int32, "source port"),
        Column("vip", pl.Utf8, "virtual address"),
        Column("vport", pl.Int32, "virtual port"),
        Column("backend_ip", pl.Utf8, "destination (real server) address"),
        Column("backend_port", pl.Int32, "destination port"),
        Column("pe_name", pl.Utf8, "persistence engine name (e.g. sip) when printed"),
        Column("pe_data", pl.Utf8, "persistence engine data (e.g. SIP Call-ID) as printed"),
    ),
)

RAW_IPVS_STATS = TableSchema(
    "raw_ipvs_stats",
    "/proc/net/ip_vs_stats (and _percpu) totals and rates, one row per counter",
    (
        Column("section", pl.Utf8, "total|rate"),
        Column("cpu", pl.Int32, "cpu number in ip_vs_stats_percpu; null for all cpus"),
        Column("counter", pl.Utf8, "conns, in_pkts, out_pkts, in_bytes, out_bytes, cps, ..."),
        Column("value", pl.Int64, "value (hex decoded)"),
    ),
)

RAW_IPTABLES_CHAINS = TableSchema(
    "raw_iptables_chains",
    "chains declared by iptables-save (:CHAIN POLICY [p:b]) or iptables -S (-P/-N)",
    (
        Column("format", pl.Utf8, "save (:CHAIN line) | S (-P / -N line)"),
        Column(
            "table_name",
            pl.Utf8,
            "nat|filter|mangle|raw|security from *table; for -S listings and fragments 'nat'"
            " only when the block shows it (nat-only target or nat's -P set), else null",
        ),
        Column("family", pl.Utf8, "ipv4|ipv6 from the ip(6)tables-save header or rule addresses"),
        Column("chain", pl.Utf8, "chain name"),
        Column("policy", pl.Utf8, "ACCEPT|DROP for built-in chains, null for user chains"),
        Column("pkts", pl.Int64, "policy packet counter [p:b]"),
        Column("bytes", pl.Int64, "policy byte counter [p:b]"),
    ),
)

RAW_IPTABLES_RULES = TableSchema(
    "raw_iptables_rules",
    "rules of iptables-save / iptables -S, kept as text and tokenised",
    (
        Column(
            "format",
            pl.Utf8,
            "save|S|rules: save in files with save markers (*table, :CHAIN, COMMIT, header,"
            " [p:b]), S with -P/-N lines, rules for bare -A fragments (printed alike by both)",
        ),
        Column("table_name", pl.Utf8, "table the rule is in (null when unknown, e.g. -S fragment)"),
        Column("family", pl.Utf8, "ipv4|ipv6 from the ip(6)tables-save header or rule addresses"),
        Column("chain", pl.Utf8, "chain of the rule (-A CHAIN)"),
        Column(
            "rule_num",
            pl.Int32,
            "1-based position of the rule within its chain in this table listing (rejected"
            " -A lines of the chain count too)",
        ),
        Column("rule", pl.Utf8, "the rule text after '-A CHAIN' (as printed, -c p b included)"),
        Column("pkts", pl.Int64, "packet counter: [p:b] (iptables-save -c) or -c p b (-S -v)"),
        Column("bytes", pl.Int64, "byte counter: [p:b] or -c p b"),
        Column("proto", pl.Utf8, "-p value ('!' prefix when negated)"),
        Column("src", pl.Utf8, "-s value ('!' prefix when negated)"),
        Column("dst", pl.Utf8, "-d value ('!' prefix when negated)"),
        Column("in_iface", pl.Utf8, "-i value ('!' prefix when negated)"),
        Column("out_iface", pl.Utf8, "-o value ('!' prefix when negated)"),
        Column("match_modules", pl.List(pl.Utf8), "-m modules in order"),
        Column(
            "matches",
            pl.List(
                pl.Struct(
                    {
                        "module": pl.Utf8,
                        "option": pl.Utf8,
                        "negated": pl.Boolean,
                        "args": pl.List(pl.Utf8),
                    }
                )
            ),
            "every match option in order, with its module ('' for -p/-s/-d/-i/-o/-f), '!' and"
            " arguments; each -m is an entry too (option '-m', args [module])",
        ),
        Column("comment", pl.Utf8, "first -m comment --comment text (unquoted)"),
        Column("jump_kind", pl.Utf8, "j (jump) or g (goto); null when the rule has no target"),
        Column("target", pl.Utf8, "target chain or extension (KUBE-SVC-..., DNAT, MASQUERADE)"),
        Column("target_args", pl.List(pl.Utf8), "tokens after the target (--to-destination ...)"),
    ),
)

RAW_IPSET_SETS = TableSchema(
    "raw_ipset_sets",
    "ipset list / ipset save set headers",
    (
        Column("format", pl.Utf8, "list|save"),
        Column("set_name", pl.Utf8, "set name"),
        Column("set_type", pl.Utf8, "hash:ip,port, bitmap:port, ..."),
        Column("revision", pl.Int32, "Revision:"),
        Column("header", pl.Utf8, "Header: options as printed"),
        Column("family", pl.Utf8, "family inet|inet6 when given"),
        Column("size_in_memory", pl.Int64, "Size in memory:"),
        Column("references", pl.Int64, "References:"),
        Column("number_of_entries", pl.Int64, "Number of entries: (as printed by ipset)"),
        Column("members_listed", pl.Int64, "members actually present in this file"),
    ),
)

RAW_IPSET_MEMBERS = TableSchema(
    "raw_ipset_members",
    "ipset members, one row per member",
    (
        Column("format", pl.Utf8, "list|save"),
        Column("set_name", pl.Utf8, "set the member belongs to"),
        Column("member", pl.Utf8, "element as printed, without options (10.200.1.10,udp:53)"),
        Column("ip", pl.Utf8, "address or network part, when present"),
        Column("ip2", pl.Utf8, "second address/network (hash:ip,port,ip / ,net, hash:net,net)"),
        Column("proto", pl.Utf8, "protocol of a ,proto:port element"),
        Column("port", pl.Int32, "port of a ,proto:port element or a bitmap:port member"),
        Column("extra", pl.Utf8, "remaining element parts and options (timeout, comment, ...)"),
    ),
)

_NFT_FORMAT = Column("format", pl.Utf8, "text (nft list ruleset, -a adds handles) | json (nft -j)")
_NFT_FAMILY = Column("family", pl.Utf8, "nftables family: ip|ip6|inet|arp|bridge|netdev")
_NFT_TABLE = Column("table_name", pl.Utf8, "table the object belongs to")
_NFT_HANDLE = Column(
    "handle", pl.Int64, "kernel handle: '# handle N' (nft -a) or the JSON 'handle'; null without -a"
)

RAW_NFT_TABLES = TableSchema(
    "raw_nft_tables",
    "nftables tables of nft list ruleset / list tables / list table, text or JSON",
    (
        _NFT_FORMAT,
        _NFT_FAMILY,
        Column("table_name", pl.Utf8, "table name"),
        _NFT_HANDLE,
        Column("flags", pl.List(pl.Utf8), "table flags (dormant, owner, ...) when printed"),
        Column("comment", pl.Utf8, "table comment"),
    ),
)

RAW_NFT_CHAINS = TableSchema(
    "raw_nft_chains",
    "nftables chains: base chains with type/hook/priority/policy, regular chains without",
    (
        _NFT_FORMAT,
        _NFT_FAMILY,
        _NFT_TABLE,
        Column("chain", pl.Utf8, "chain name"),
        _NFT_HANDLE,
        Column("chain_type", pl.Utf8, "filter|nat|route for base chains, null for regular ones"),
        Column("hook", pl.Utf8, "prerouting|input|forward|output|postrouting|ingress|egress"),
        Column(
            "priority",
            pl.Int64,
            "hook priority as a number (text names such as dstnat, srcnat - 10 resolved with"
            " nft's table for the family: dstnat -100, srcnat 100, filter 0, mangle -150, ...)",
        ),
        Column("policy", pl.Utf8, "accept|drop for base chains"),
        Column("device", pl.Utf8, "device of a netdev/ingress base chain"),
        Column("comment", pl.Utf8, "chain comment"),
    ),
)

RAW_NFT_SETS = TableSchema(
    "raw_nft_sets",
    "nftables named sets and maps (verdict maps included) with their declared types",
    (
        _NFT_FORMAT,
        _NFT_FAMILY,
        _NFT_TABLE,
        Column("name", pl.Utf8, "set or map name (referenced as @name in rules)"),
        Column("kind", pl.Utf8, "set|map"),
        _NFT_HANDLE,
        Column("key_type", pl.Utf8, "key type as nft prints it (ipv4_addr . inet_proto . ...)"),
        Column("data_type", pl.Utf8, "map data type (verdict, ipv4_addr . inet_service, ...)"),
        Column("flags", pl.List(pl.Utf8), "set flags (interval, timeout, dynamic, constant)"),
        Column("timeout_s", pl.Int64, "default element timeout in seconds"),
        Column("size", pl.Int64, "maximum size when printed"),
        Column("policy", pl.Utf8, "performance|memory when printed"),
        Column("comment", pl.Utf8, "set comment"),
        Column("element_count", pl.Int64, "elements listed in this file (parsed or rejected)"),
    ),
)

RAW_NFT_ELEMENTS = TableSchema(
    "raw_nft_elements",
    "elements of named sets and maps, one row per element",
    (
        _NFT_FORMAT,
        _NFT_FAMILY,
        _NFT_TABLE,
        Column("set_name", pl.Utf8, "set or map the element belongs to"),
        Column("position", pl.Int32, "1-based position in the set's listing"),
        Column("element", pl.Utf8, "the element as nft prints it (key, options, ': value')"),
        Column("key", pl.Utf8, "key (concatenations joined with ' . ')"),
        Column("value", pl.Utf8, "map value (goto CHAIN, an address, ...); null in sets"),
        Column("comment", pl.Utf8, "element comment"),
        Column("options", pl.Utf8, "timeout/expires/counter options of the element, as printed"),
    ),
)

RAW_NFT_RULES = TableSchema(
    "raw_nft_rules",
    "nftables rules in chain order, as nft prints them, with the verdict and NAT pulled out",
    (
        _NFT_FORMAT,
        _NFT_FAMILY,
        _NFT_TABLE,
        Column("chain", pl.Utf8, "chain of the rule"),
        Column("position", pl.Int32, "1-based position in the chain (rejected rules count too)"),
        _NFT_HANDLE,
        Column(
            "rule",
            pl.Utf8,
            "rule text in nft syntax, blanks collapsed, without '# handle'; from JSON rendered"
            " the way nft prints it (iptables-nft 'xt' expressions as xt match \"name\")",
        ),
        Column("verdict", pl.Utf8, "accept|drop|reject|return|continue|queue|jump|goto|vmap"),
        Column("target", pl.Utf8, "chain of jump/goto"),
        Column("nat", pl.Utf8, "dnat|snat|masquerade|redirect when the rule translates"),
        Column("nat_args", pl.Utf8, "what follows the NAT keyword (to ADDR:PORT, flags)"),
        Column("set_refs", pl.List(pl.Utf8), "named sets/maps the rule uses (@name), in order"),
        Column("comment", pl.Utf8, "rule comment"),
        Column("pkts", pl.Int64, "counter packets"),
        Column("bytes", pl.Int64, "counter bytes"),
        Column(
            "has_xt",
            pl.Boolean,
            "true when the JSON holds an iptables-nft 'xt' match/target, whose meaning only"
            " iptables-save shows; null otherwise (text: nft prints its own translation)",
        ),
    ),
)

RAW_NFT_OBJECTS = TableSchema(
    "raw_nft_objects",
    "other named nftables objects: counters, quotas, limits, flowtables, ct helpers/timeouts",
    (
        _NFT_FORMAT,
        _NFT_FAMILY,
        _NFT_TABLE,
        Column("kind", pl.Utf8, "counter|quota|limit|flowtable|ct helper|ct timeout|..."),
        Column("name", pl.Utf8, "object name"),
        _NFT_HANDLE,
    ),
)

RAW_HOST_ADDRS = TableSchema(
    "raw_host_addrs",
    "interface addresses from ip -j addr (or plain ip addr / ip -br addr)",
    (
        Column("format", pl.Utf8, "json|text|brief"),
        Column("ifindex", pl.Int32, "interface index"),
        Column("ifname", pl.Utf8, "interface name (without @peer)"),
        Column("link_type", pl.Utf8, "ether, loopback, ..."),
        Column("mac", pl.Utf8, "link-layer address"),
        Column("oper_state", pl.Utf8, "UP, DOWN, UNKNOWN"),
        Column("family", pl.Utf8, "inet|inet6"),
        Column("local", pl.Utf8, "address (normalised)"),
        Column("prefixlen", pl.Int32, "prefix length"),
        Column("scope", pl.Utf8, "global|link|host"),
        Column("is_secondary", pl.Boolean, "secondary address (not the primary of its subnet)"),
        Column("label", pl.Utf8, "address label (inet only; e.g. eth0:vip)"),
        Column("peer", pl.Utf8, "peer address of a point-to-point address (peer ...)"),
        Column("addr_flags", pl.List(pl.Utf8), "address flags: secondary, nodad, dynamic, ..."),
        Column("link_flags", pl.List(pl.Utf8), "interface flags: UP, LOWER_UP, NOARP, ..."),
        Column("mtu", pl.Int32, "interface MTU"),
        Column("master", pl.Utf8, "bridge/bond the interface is enslaved to (master ...)"),
        Column("link_kind", pl.Utf8, "veth, bridge, dummy, vxlan, ... (only with ip -d)"),
    ),
)

RAW_HOST_ROUTES = TableSchema(
    "raw_host_routes",
    "routes from ip -j route (or plain ip route)",
    (
        Column("format", pl.Utf8, "json|text"),
        Column("table_name", pl.Utf8, "routing table (main when not printed)"),
        Column("route_type", pl.Utf8, "unicast (when not printed), local, broadcast, ..."),
        Column("dst", pl.Utf8, "destination prefix in CIDR form (default -> 0.0.0.0/0 or ::/0)"),
        Column("gateway", pl.Utf8, "via address"),
        Column("dev", pl.Utf8, "egress interface"),
        Column("protocol", pl.Utf8, "proto (kernel, static, ...; boot when not printed)"),
        Column("scope", pl.Utf8, "scope (global when not printed)"),
        Column("prefsrc", pl.Utf8, "preferred source address (src)"),
        Column("metric", pl.Int64, "metric"),
        Column("family", pl.Utf8, "inet|inet6 (of dst; a default route's from its gateway)"),
        Column("weight", pl.Int32, "nexthop weight of a multipath route (one row per nexthop)"),
        Column("flags", pl.List(pl.Utf8), "route and nexthop flags: onlink, linkdown, dead, ..."),
    ),
)

RAW_HOST_SYSCTLS = TableSchema(
    "raw_host_sysctls",
    "kernel settings from sysctl -a (or grep . /proc/sys/net/netfilter/*), one row per key",
    (
        Column("format", pl.Utf8, "sysctl (key = value) | proc (/proc/sys/path:value)"),
        Column("key", pl.Utf8, "dotted sysctl name, e.g. net.netfilter.nf_conntrack_max"),
        Column("value", pl.Utf8, "value as printed (tabs between fields become one space)"),
        Column("value_int", pl.Int64, "the value as a number when it is one integer"),
    ),
)

RAW_K8S_OBJECTS = TableSchema(
    "raw_k8s_objects",
    "kubectl -o json objects, one row per object (kind, namespace, name) with the raw JSON",
    (
        Column("kind", pl.Utf8, "Pod, Service, EndpointSlice, Endpoints, Node, ..."),
        Column("namespace", pl.Utf8, "metadata.namespace"),
        Column("name", pl.Utf8, "metadata.name"),
        Column("object_json", pl.Utf8, "the object as JSON text"),
        Column("api_version", pl.Utf8, "apiVersion (v1, discovery.k8s.io/v1, ...)"),
    ),
)

RAW_K8S_PODS = TableSchema(
    "raw_k8s_pods",
    "pods with their IPs (one row per pod IP)",
    (
        Column("namespace", pl.Utf8, "namespace"),
        Column("pod", pl.Utf8, "pod name"),
        Column("node_name", pl.Utf8, "spec.nodeName"),
        Column("pod_ip", pl.Utf8, "one of status.podIPs"),
        Column("host_ip", pl.Utf8, "status.hostIP"),
        Column("phase", pl.Utf8, "status.phase"),
        Column("labels_json", pl.Utf8, "metadata.labels as JSON"),
        Column("is_host_network", pl.Boolean, "spec.hostNetwork (pod IP = node IP)"),
        Column(
            "container_ports",
            pl.List(pl.Struct({"name": pl.Utf8, "port": pl.Int32, "proto": pl.Utf8})),
            "containers[].ports (resolve a Service's named targetPort)",
        ),
    ),
)

RAW_K8S_SERVICE_PORTS = TableSchema(
    "raw_k8s_service_ports",
    "service ports (one row per service, cluster IP and port)",
    (
        Column("namespace", pl.Utf8, "namespace"),
        Column("service", pl.Utf8, "service name"),
        Column("service_type", pl.Utf8, "ClusterIP, NodePort, LoadBalancer, ..."),
        Column("cluster_ip", pl.Utf8, "one of spec.clusterIPs (null for headless)"),
        Column("port_name", pl.Utf8, "ports[].name"),
        Column("proto", pl.Utf8, "tcp|udp|sctp"),
        Column("port", pl.Int32, "ports[].port"),
        Column("target_port", pl.Utf8, "ports[].targetPort (number or name)"),
        Column("node_port", pl.Int32, "ports[].nodePort"),
        Column("session_affinity", pl.Utf8, "spec.sessionAffinity"),
        Column("external_traffic_policy", pl.Utf8, "spec.externalTrafficPolicy"),
        Column("internal_traffic_policy", pl.Utf8, "spec.internalTrafficPolicy"),
        Column(
            "session_affinity_timeout_s",
            pl.Int64,
            "sessionAffinityConfig.clientIP.timeoutSeconds (IPVS 'persistent N')",
        ),
        Column("external_ips", pl.List(pl.Utf8), "spec.externalIPs"),
        Column("load_balancer_ips", pl.List(pl.Utf8), "status.loadBalancer.ingress[].ip"),
    ),
)

RAW_K8S_ENDPOINTS = TableSchema(
    "raw_k8s_endpoints",
    "endpoints from EndpointSlices (or v1 Endpoints): one row per address and port",
    (
        Column("namespace", pl.Utf8, "namespace"),
        Column("service", pl.Utf8, "kubernetes.io/service-name label (or Endpoints name)"),
        Column("slice", pl.Utf8, "EndpointSlice name"),
        Column("address", pl.Utf8, "endpoint address"),
        Column("port_name", pl.Utf8, "ports[].name"),
        Column("proto", pl.Utf8, "tcp|udp|sctp"),
        Column("port", pl.Int32, "ports[].port"),
        Column("node_name", pl.Utf8, "endpoints[].nodeName"),
        Column("pod", pl.Utf8, "targetRef name when kind is Pod"),
        Column("is_ready", pl.Boolean, "conditions.ready (null: unset); Endpoints: in addresses"),
        Column("is_serving", pl.Boolean, "conditions.serving"),
        Column("is_terminating", pl.Boolean, "conditions.terminating"),
        Column("source_kind", pl.Utf8, "EndpointSlice|Endpoints (do not count both)"),
        Column("address_type", pl.Utf8, "addressType: IPv4|IPv6|FQDN (Endpoints: null)"),
        Column("zone", pl.Utf8, "endpoints[].zone"),
    ),
)

RAW_K8S_NODES = TableSchema(
    "raw_k8s_nodes",
    "nodes with their addresses (one row per address)",
    (
        Column("node_name", pl.Utf8, "metadata.name"),
        Column("address_type", pl.Utf8, "InternalIP, ExternalIP, Hostname"),
        Column("address", pl.Utf8, "the address"),
        Column("pod_cidr", pl.Utf8, "spec.podCIDR"),
        Column("pod_cidrs", pl.List(pl.Utf8), "spec.podCIDRs (dual stack)"),
    ),
)

RAW_PACKETS = TableSchema(
    "raw_packets",
    "one row per packet of a pcap/pcapng (inner packets of VXLAN/Geneve are rows too)",
    (
        Column("ts", pl.Datetime("ns", "UTC"), "capture timestamp (UTC); null for a pcapng SPB"),
        Column(
            "iface",
            pl.Utf8,
            "SLL2 ifindex (as text) for link_type sll2; else the pcapng interface name "
            "(if_name) or number; null for other pcap files",
        ),
        Column("iface_id", pl.Int32, "pcapng interface number (Wireshark's frame.interface_id)"),
        Column("ifindex", pl.Int32, "SLL2 interface index (tcpdump -i any)"),
        Column(
            "direction",
            pl.Utf8,
            "SLL/SLL2 packet type: in (to us), out (from us), broadcast, multicast, other",
        ),
        Column("link_type", pl.Utf8, "ethernet|sll|sll2|raw|ipv4|ipv6|null|loop|linktype_<n>"),
        Column(
            "eth_type",
            pl.Int32,
            "EtherType after any VLAN tags (Ethernet, SLL, SLL2); 0x8847 for MPLS; null for "
            "802.3/LLC frames and links without one",
        ),
        Column("vlan", pl.Int32, "outermost VLAN id (802.1Q 0x8100, 802.1ad 0x88a8, 0x9100)"),
        Column("ip_version", pl.Int8, "4 or 6; null for non-IP frames"),
        Column("src_ip", pl.Utf8, "source address (normalised: Python ipaddress text)"),
        Column("dst_ip", pl.Utf8, "destination address (normalised)"),
        Column(
            "proto",
            pl.Utf8,
            "tcp|udp|icmp|icmpv6|sctp|gre|esp|... or the IP protocol number as text; for IPv6 "
            "the protocol after the extension headers",
        ),
        Column("proto_num", pl.Int16, "IP protocol number (IPv6: after extension headers)"),
        Column("src_port", pl.Int32, "source port (tcp/udp/sctp)"),
        Column("dst_port", pl.Int32, "destination port"),
        Column(
            "tcp_flags",
            pl.Utf8,
            "TCP flags as letters in the fixed order F S R P A U E C (FIN SYN RST PSH ACK URG "
            "ECE CWR): 'S', 'SA', 'A', 'PA', 'FA', 'R', 'RA'; '' when no flag is set",
        ),
        Column(
            "tcp_flags_bits",
            pl.Int16,
            "the 12 TCP flag bits (FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128 AE=256)",
        ),
        Column("seq", pl.Int64, "TCP sequence number (absolute)"),
        Column("ack", pl.Int64, "TCP acknowledgement number (absolute, even without ACK)"),
        Column("window", pl.Int32, "TCP window (unscaled)"),
        Column("tsval", pl.Int64, "TCP timestamp option TSval (unchanged by NAT)"),
        Column("tsecr", pl.Int64, "TCP timestamp option TSecr"),
        Column("ip_id", pl.Int32, "IPv4 identification"),
        Column("ttl", pl.Int16, "IPv4 TTL / IPv6 hop limit"),
        Column("ip_len", pl.Int32, "IP total length (IPv6: payload length + 40)"),
        Column(
            "payload_len",
            pl.Int32,
            "bytes after the transport header (TCP data offset, UDP/ICMP 8, SCTP 12), from the "
            "IP length so Ethernet padding never counts; for other protocols and non-first "
            "fragments the IP payload",
        ),
        Column("frame_len", pl.Int32, "original frame length (inner rows: the inner frame)"),
        Column("caplen", pl.Int32, "captured length (inner rows: captured inner bytes)"),
        Column("is_truncated", pl.Boolean, "caplen < len (cut by snaplen)"),
        Column("is_fragment", pl.Boolean, "IP fragment (MF set or offset > 0); null if not IP"),
        Column("frag_offset", pl.Int32, "fragment offset in bytes"),
        Column("icmp_type", pl.Int16, "ICMP/ICMPv6 type"),
        Column("icmp_code", pl.Int16, "ICMP/ICMPv6 code"),
        Column("tunnel", pl.Utf8, "vxlan|geneve: the tunnel an inner row came out of"),
        Column("vni", pl.Int64, "VXLAN/Geneve VNI of an inner row"),
        Column("encap_depth", pl.Int8, "0 for the captured frame, 1 inside a tunnel, ..."),
        Column(
            "outer_frame_no",
            pl.Int64,
            "inner rows: frame_no of the captured frame they came out of (= frame_no)",
        ),
    ),
    line_column="frame_no",
)

# Bookkeeping tables written by the loader itself (no source_line of their own).
RAW_INGEST_FILES = TableSchema(
    "raw_ingest_files",
    "one row per input file and load: kind, content hash and record counts",
    (
        Column("kind", pl.Utf8, "file kind recognised from content, or null when skipped"),
        Column("content_sha256", pl.Utf8, "SHA-256 of the file content (idempotent loads)"),
        Column("size_bytes", pl.Int64, "file size"),
        Column("records_read", pl.Int64, "records seen (parsed + rejected)"),
        Column("records_parsed", pl.Int64, "records loaded into raw tables"),
        Column("records_rejected", pl.Int64, "records written to raw_ingest_errors instead"),
        Column("warnings", pl.Int64, "file-level warnings (e.g. summary count mismatch)"),
        Column(
            "status",
            pl.Utf8,
            "loaded|skipped|failed: only a loaded file counts as unchanged next time; a failed "
            "file is tried again by every run",
        ),
        Column("reason", pl.Utf8, "why a file was skipped or failed"),
        Column("engine", pl.Utf8, "pcap decoder used: fast|pyshark (null for text files)"),
        Column(
            "capture_id",
            pl.Utf8,
            "a loaded capture's folder of Parquet files under <data dir>/captures/ (its packets, "
            "app messages, flows and rejected records); null for text files",
        ),
    ),
    line_column=None,
)

RAW_INGEST_ERRORS = TableSchema(
    "raw_ingest_errors",
    "records that could not be parsed, and file-level warnings, with their location",
    (
        Column("byte_offset", pl.Int64, "byte offset for binary inputs (pcap)"),
        Column("reason", pl.Utf8, "what was wrong"),
        Column("raw", pl.Utf8, "the record's text (or hex for binary input)"),
        Column("is_rejection", pl.Boolean, "true: a record was rejected; false: a warning"),
    ),
)

TEXT_TABLES: tuple[TableSchema, ...] = (
    RAW_CONNTRACK_ENTRIES,
    RAW_CONNTRACK_STATS,
    RAW_IPVS_SERVICES,
    RAW_IPVS_BACKENDS,
    RAW_IPVS_CONNECTIONS,
    RAW_IPVS_STATS,
    RAW_IPTABLES_CHAINS,
    RAW_IPTABLES_RULES,
    RAW_IPSET_SETS,
    RAW_IPSET_MEMBERS,
    RAW_NFT_TABLES,
    RAW_NFT_CHAINS,
    RAW_NFT_SETS,
    RAW_NFT_ELEMENTS,
    RAW_NFT_RULES,
    RAW_NFT_OBJECTS,
    RAW_HOST_ADDRS,
    RAW_HOST_ROUTES,
    RAW_HOST_SYSCTLS,
    RAW_K8S_OBJECTS,
    RAW_K8S_PODS,
    RAW_K8S_SERVICE_PORTS,
    RAW_K8S_ENDPOINTS,
    RAW_K8S_NODES,
)

RAW_APP_MESSAGES = TableSchema(
    "raw_app_messages",
    "one row per HTTP or DNS message found in a packet's TCP/UDP payload (outer packets only)",
    (
        Column("ts", pl.Datetime("ns", "UTC"), "capture timestamp of the packet (UTC)"),
        Column("src_ip", pl.Utf8, "source address of the packet (normalised)"),
        Column("dst_ip", pl.Utf8, "destination address of the packet (normalised)"),
        Column("proto", pl.Utf8, "tcp|udp"),
        Column("src_port", pl.Int32, "source port"),
        Column("dst_port", pl.Int32, "destination port"),
        Column(
            "kind",
            pl.Utf8,
            "http_request|http_response|dns_query|dns_response|udp_whoami (the lab's UDP "
            "responder: a datagram starting with `Hostname:`)",
        ),
        Column("http_method", pl.Utf8, "request method (GET, POST, ...)"),
        Column("http_uri", pl.Utf8, "request target as sent (/path?query)"),
        Column("http_host", pl.Utf8, "Host header of a request (the ip:port the client dialed)"),
        Column("http_user_agent", pl.Utf8, "User-Agent header of a request"),
        Column("http_status", pl.Int32, "response status code"),
        Column("http_reason", pl.Utf8, "response reason phrase"),
        Column(
            "body_lines",
            pl.Utf8,
            "first up to 10 lines of a response body (or UDP whoami datagram) in this packet, "
            "'\\n'-joined",
        ),
        Column("whoami_hostname", pl.Utf8, "whoami body `Hostname:` line: the backend"),
        Column("whoami_ip", pl.Utf8, "first whoami `IP:` line that is not 127.0.0.1 or ::1"),
        Column(
            "whoami_remote_addr",
            pl.Utf8,
            "whoami `RemoteAddr:` line: the ip:port the backend saw (after any SNAT)",
        ),
        Column("dns_id", pl.Int32, "DNS transaction id"),
        Column("dns_qname", pl.Utf8, "first question's name (no trailing dot)"),
        Column("dns_qtype", pl.Utf8, "first question's type as text: A, AAAA, SRV, ... TYPE<n>"),
        Column("dns_rcode", pl.Utf8, "response code as text: NOERROR, NXDOMAIN, ... (responses)"),
        Column(
            "dns_answers",
            pl.List(pl.Utf8),
            "answer records as `name TYPE value`, e.g. "
            "`kube-dns.kube-system.svc.cluster.local A 10.200.1.10`",
        ),
    ),
    line_column="frame_no",
)


RAW_FLOWS = TableSchema(
    "raw_flows",
    "one row per connection per capture file, summarised like Zeek's conn.log when the capture "
    "was loaded (queries/20_intermediate/int_flows__summarized.sql over that capture alone)",
    (
        Column("ts", pl.Datetime("ns", "UTC"), "first packet of the connection (UTC)"),
        Column("uid", pl.Utf8, "Zeek-style connection id (C + 17 base62 digits), stable per file"),
        Column("orig_h", pl.Utf8, "originator address"),
        Column("orig_p", pl.Int32, "originator port (ICMP: type)"),
        Column("resp_h", pl.Utf8, "responder address"),
        Column("resp_p", pl.Int32, "responder port (ICMP: code or counterpart type)"),
        Column("proto", pl.Utf8, "tcp|udp|icmp|... as in Zeek"),
        Column("duration", pl.Float64, "seconds from first to last packet; null if 0"),
        Column("orig_bytes", pl.Float64, "originator payload bytes (TCP: from sequence numbers)"),
        Column("resp_bytes", pl.Float64, "responder payload bytes"),
        Column("conn_state", pl.Utf8, "Zeek conn_state (S0, S1, SF, REJ, RSTO, ...)"),
        Column("history", pl.Utf8, "Zeek history letters (upper case: originator)"),
        Column("missed_bytes", pl.Float64, "bytes acknowledged but never seen (gaps)"),
        Column("orig_pkts", pl.Int64, "packets from the originator"),
        Column("orig_ip_bytes", pl.Float64, "IP bytes from the originator"),
        Column("resp_pkts", pl.Int64, "packets from the responder"),
        Column("resp_ip_bytes", pl.Float64, "IP bytes from the responder"),
        Column("ip_proto", pl.Int32, "IP protocol number"),
        Column("community_id", pl.Utf8, "Community ID v1 (seed 0) of the flow"),
        Column("first_seq", pl.Int64, "originator's initial TCP sequence number"),
        Column("rtt_syn_synack_ms", pl.Float64, "SYN -> SYN/ACK as seen at this capture point"),
        Column("rtt_synack_ack_ms", pl.Float64, "SYN/ACK -> ACK as seen at this capture point"),
        Column("iface", pl.Utf8, "interfaces the packets were captured on (',' joined)"),
        Column("first_frame_no", pl.Int64, "frame number of the connection's first packet"),
        Column("last_frame_no", pl.Int64, "frame number of the connection's last packet"),
    ),
    line_column=None,
)

PACKET_TABLES: tuple[TableSchema, ...] = (RAW_PACKETS, RAW_APP_MESSAGES)
PARQUET_TABLES: tuple[TableSchema, ...] = (RAW_PACKETS, RAW_APP_MESSAGES, RAW_FLOWS)
"""Stored as Parquet files per capture in the data directory; views in the database."""

# Derived tables: computed by pipeline/explain after every load (the kernel's rule walk is not
# SQL); fully replaced each run. Answer views join them with the SQL-built views.
DERIVED_SNAT_DECISIONS = TableSchema(
    "derived_snat_decisions",
    "per translated connection: the nat rules it walked and the SNAT source they predict",
    (
        Column("proto", pl.Utf8, "protocol"),
        Column("client_ip", pl.Utf8, "original source"),
        Column("client_port", pl.Int32, "original source port"),
        Column("dialed_ip", pl.Utf8, "original destination"),
        Column("dialed_port", pl.Int32, "original destination port"),
        Column("backend_ip", pl.Utf8, "reply source (DNAT target)"),
        Column("backend_port", pl.Int32, "reply source port"),
        Column("snat_ip", pl.Utf8, "reply destination: the source the backend saw"),
        Column("snat_port", pl.Int32, "reply destination port"),
        Column("hook", pl.Utf8, "PREROUTING (arriving) or OUTPUT (locally generated)"),
        Column("decision", pl.Utf8, "none|masquerade|snat|unknown"),
        Column("trail", pl.List(pl.Utf8), "rules that matched, in order: table/chain#n `rule`"),
        Column("mark", pl.Int64, "packet mark after nat PREROUTING/OUTPUT"),
        Column("mark_set_by", pl.Utf8, "the rule that jumped to the marking chain -> MARK rule"),
        Column("dnat_by", pl.Utf8, "the DNAT rule, or the IPVS virtual service"),
        Column("egress_iface", pl.Utf8, "interface of the route to the backend"),
        Column("route", pl.Utf8, "the route used, as ip route prints it"),
        Column("predicted_snat_ip", pl.Utf8, "source address the rules and routes predict"),
        Column("agrees", pl.Boolean, "predicted_snat_ip = snat_ip (null when not predicted)"),
        Column("snat_class", pl.Utf8, "none|node IP|pod gateway|other (from addresses alone)"),
        Column("snat_class_basis", pl.Utf8, "why the observed source is in that class"),
        Column("is_random_fully", pl.Boolean, "the SNAT/MASQUERADE rule has --random-fully"),
        Column(
            "is_snat_port_in_nodeport_range",
            pl.Boolean,
            "SNAT source port within 30000-32767 (can collide with NodePorts)",
        ),
        Column("path_probability", pl.Float64, "probability of the chosen statistic branch"),
        Column("reason", pl.Utf8, "one sentence: why the backend saw this source"),
        Column("missing_inputs", pl.List(pl.Utf8), "inputs that would be needed to explain it"),
        Column("unknowns", pl.List(pl.Utf8), "matches/targets that could not be evaluated"),
    ),
)

DERIVED_EXPECTED_BACKENDS = TableSchema(
    "derived_expected_backends",
    "per node and dialed service: the share of connections the rules promise each backend",
    (
        Column("proto", pl.Utf8, "protocol"),
        Column("dialed_ip", pl.Utf8, "dialed VIP / node address"),
        Column("dialed_port", pl.Int32, "dialed port"),
        Column("backend_ip", pl.Utf8, "backend address"),
        Column("backend_port", pl.Int32, "backend port"),
        Column("expected_share", pl.Float64, "promised share (null when not predictable)"),
        Column("expected_connections", pl.Float64, "expected count for the observed total"),
        Column("basis", pl.Utf8, "iptables statistic cascade, ipvs rr/wrr, ..."),
        Column("is_predictable", pl.Boolean, "false for lc/wlc/sh/mh and unknown rules"),
    ),
    line_column=None,
)

DERIVED_DISTRIBUTION_TESTS = TableSchema(
    "derived_distribution_tests",
    "per scope and dialed service: chi-square goodness of fit, observed vs promised",
    (
        Column("scope", pl.Utf8, "all | node"),
        Column("proto", pl.Utf8, "protocol"),
        Column("dialed_ip", pl.Utf8, "dialed address"),
        Column("dialed_port", pl.Int32, "dialed port"),
        Column("connections", pl.Int64, "observed connections"),
        Column("chi2", pl.Float64, "chi-square statistic"),
        Column("dof", pl.Int32, "degrees of freedom (backends with a share - 1)"),
        Column("p_value", pl.Float64, "p-value of the goodness-of-fit test"),
        Column("verdict", pl.Utf8, "plain-language verdict"),
        Column("nodes_disagree", pl.Boolean, "nodes promise different backends or shares"),
    ),
    line_column=None,
)

BOOKKEEPING_TABLES: tuple[TableSchema, ...] = (RAW_INGEST_FILES, RAW_INGEST_ERRORS)

DERIVED_TABLES: tuple[TableSchema, ...] = (
    DERIVED_SNAT_DECISIONS,
    DERIVED_EXPECTED_BACKENDS,
    DERIVED_DISTRIBUTION_TESTS,
)

DB_TABLES: tuple[TableSchema, ...] = (*TEXT_TABLES, *BOOKKEEPING_TABLES, *DERIVED_TABLES)
"""Tables stored in the DuckDB file itself."""

ALL_TABLES: tuple[TableSchema, ...] = (
    *TEXT_TABLES,
    *PARQUET_TABLES,
    *BOOKKEEPING_TABLES,
    *DERIVED_TABLES,
)

BY_NAME: dict[str, TableSchema] = {t.name: t for t in ALL_TABLES}
