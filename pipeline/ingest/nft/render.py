"""libnftables-json(5) expressions and statements -> the text nft prints for them.

Follows nft's own printer (src/*.c ``*_print``) for what kube-proxy, CNIs and iptables-nft put
in a ruleset: payload/meta/ct/fib/numgen matches, sets and maps (verdict maps included),
binary operations, mangle, counters, verdicts, NAT, reject, log, limit and set updates.
Types the JSON does not carry are taken from the expression they are compared with: a mark
is printed in hex (0x00004000), an interface name in quotes. An expression or statement this
module does not know raises RenderError, so the rule is rejected with its name instead of being
printed wrong.
"""

from __future__ import annotations

from typing import Any

from .rows import time_text

_BINOPS = ("&", "|", "^", "<<", ">>")
_UNQUALIFIED_META = {"iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"}
_IFNAME_META = {"iifname", "oifname", "ibrname", "obrname", "ibriport", "obriport"}
_VERDICT_WORDS = ("accept", "drop", "continue", "return")
_DEFAULT_REJECT = {"ip": "icmp", "ip6": "icmpv6", "inet": "icmpx", "bridge": "icmpx"}


class RenderError(ValueError):
    """An expression or statement that cannot be printed as nft would."""


class _Ctx:
    """How to print constants: marks in hex, interface names quoted."""

    def __init__(self, hexmark: bool = False, quote: bool = False) -> None:
        self.hexmark, self.quote = hexmark, quote


_PLAIN = _Ctx()


def _one(obj: dict[str, Any], what: str) -> tuple[str, Any]:
    if len(obj) != 1:
        raise RenderError(f"{what} object with keys {sorted(obj)} (expected one)")
    return next(iter(obj.items()))


def _ctx_for(expr: Any) -> _Ctx:
    """Type context taken from the left side of a match or a mangle."""
    if isinstance(expr, dict) and len(expr) == 1:
        key, val = next(iter(expr.items()))
        if key in _BINOPS and isinstance(val, list) and val:
            return _ctx_for(val[0])
        if key in ("meta", "ct") and isinstance(val, dict):
            name = val.get("key")
            return _Ctx(hexmark=name == "mark", quote=key == "meta" and name in _IFNAME_META)
    return _PLAIN


def expr(e: Any, ctx: _Ctx = _PLAIN) -> str:
    """One expression (value, selector, set, map, ...) as nft prints it."""
    if isinstance(e, bool):
        return "exists" if e else "missing"
    if isinstance(e, int):
        return f"0x{e:08x}" if ctx.hexmark else str(e)
    if isinstance(e, str):
        if ctx.quote and not e.startswith("@"):
            return f'"{e}"'
        return e
    if isinstance(e, list):  # a bitmask value such as ct state established,related
        return ",".join(expr(x, ctx) for x in e)
    if not isinstance(e, dict):
        raise RenderError(f"unexpected JSON value {e!r}")
    key, val = _one(e, "expression")
    handler = _EXPRS.get(key)
    if handler is None:
        raise RenderError(f"unknown expression {key!r}")
    return handler(val, ctx)


def _payload(v: dict[str, Any], ctx: _Ctx) -> str:
    if "protocol" in v:
        return f"{v['protocol']} {v['field']}"
    return f"@{v['base']},{v['offset']},{v['len']}"


def _meta(v: dict[str, Any], ctx: _Ctx) -> str:
    name = v["key"]
    return name if name in _UNQUALIFIED_META else f"meta {name}"


def _ct(v: dict[str, Any], ctx: _Ctx) -> str:
    parts = ["ct"]
    if v.get("dir"):
        parts.append(v["dir"])
    if v.get("family"):
        parts.append(v["family"])
    parts.append(v["key"])
    return " ".join(parts)


def _fib(v: dict[str, Any], ctx: _Ctx) -> str:
    flags = v.get("flags") or []
    flags = [flags] if isinstance(flags, str) else flags
    return f"fib {' . '.join(flags)} {v['result']}"


def _numgen(v: dict[str, Any], ctx: _Ctx) -> str:
    out = f"numgen {v['mode']} mod {v['mod']}"
    return out + (f" offset {v['offset']}" if v.get("offset") else "")


def _hash(kind: str) -> Any:
    def render(v: dict[str, Any], ctx: _Ctx) -> str:
        out = f"{kind} " + (f"{expr(v['expr'])} " if kind == "jhash" else "")
        out += f"mod {v['mod']}"
        if v.get("seed") is not None:
            out += f" seed 0x{v['seed']:x}"
        return out + (f" offset {v['offset']}" if v.get("offset") else "")

    return render


def _set(v: Any, ctx: _Ctx) -> str:
    items = v if isinstance(v, list) else [v]
    return "{ " + ", ".join(element(item, ctx) for item in items) + " }"


def element(item: Any, ctx: _Ctx = _PLAIN, data_ctx: _Ctx | None = None) -> str:
    """A set element; ``[key, value]`` is a map element printed ``key : value``."""
    if isinstance(item, list) and len(item) == 2 and not _is_flag_list(item):
        value_ctx = data_ctx if data_ctx is not None else _ctx_for(item[0])
        return f"{element(item[0], ctx)} : {expr(item[1], value_ctx)}"
    return expr(item, ctx)


def type_ctx(type_name: str | None) -> _Ctx:
    """Printing context of a named set's declared key or data type."""
    return _Ctx(hexmark=type_name == "mark", quote=type_name == "ifname")


def _is_flag_list(item: list[Any]) -> bool:
    return all(isinstance(x, str) for x in item)


def _elem(v: dict[str, Any], ctx: _Ctx) -> str:
    out = expr(v["val"], ctx)
    if v.get("timeout") is not None:
        out += f" timeout {time_text(v['timeout'])}"
    if v.get("expires") is not None:
        out += f" expires {time_text(v['expires'])}"
    if v.get("counter") is not None:
        out += " " + _stmt_counter(v["counter"])
    if v.get("comment") is not None:
        out += f' comment "{v["comment"]}"'
    return out


def _binop(op: str) -> Any:
    def render(v: list[Any], ctx: _Ctx) -> str:
        left, right = v
        inner = _ctx_for(left)
        rtext = expr(right, inner)
        if isinstance(right, list):
            rtext = "(" + "|".join(expr(x, inner) for x in right) + ")"
        return f"{expr(left, inner)} {op} {rtext}"

    return render


def _verdict_value(word: str) -> Any:
    def render(v: Any, ctx: _Ctx) -> str:
        if word in ("jump", "goto"):
            return f"{word} {v['target']}"
        return word

    return render


_EXPRS: dict[str, Any] = {
    "payload": _payload,
    "meta": _meta,
    "ct": _ct,
    "fib": _fib,
    "numgen": _numgen,
    "jhash": _hash("jhash"),
    "symhash": _hash("symhash"),
    "prefix": lambda v, ctx: f"{expr(v['addr'])}/{v['len']}",
    "range": lambda v, ctx: f"{expr(v[0], ctx)}-{expr(v[1], ctx)}",
    "set": _set,
    "concat": lambda v, ctx: " . ".join(expr(x, ctx) for x in v),
    "map": lambda v, ctx: f"{expr(v['key'])} map {expr(v['data'])}",
    "elem": _elem,
    "tcp option": lambda v, ctx: (
        f"tcp option {v['name']}" + (f" {v['field']}" if "field" in v else "")
    ),
    **{op: _binop(op) for op in _BINOPS},
    **{w: _verdict_value(w) for w in (*_VERDICT_WORDS, "jump", "goto")},
}


# ---- statements ---------------------------------------------------------------------------


def _stmt_match(v: dict[str, Any], family: str) -> str:
    left, right, op = v["left"], v["right"], v.get("op", "==")
    ctx = _ctx_for(left)
    ltext, rtext = expr(left, ctx), expr(right, ctx)
    is_binop = isinstance(left, dict) and len(left) == 1 and next(iter(left)) in _BINOPS
    if is_binop and "&" in left and isinstance(left["&"][1], list) and op in ("==", "!="):
        base, mask = left["&"]  # tcp flags & (fin|syn) == syn prints as 'tcp flags syn / fin,syn'
        neg = "!= " if op == "!=" else ""
        return f"{expr(base)} {neg}{rtext} / {','.join(expr(m) for m in mask)}"
    if op == "in" or (op == "==" and not is_binop):
        return f"{ltext} {rtext}"
    return f"{ltext} {op} {rtext}"


def _stmt_counter(v: Any, family: str = "") -> str:
    if v is None:
        return "counter"
    if isinstance(v, str):
        return f'counter name "{v}"'
    return f"counter packets {v['packets']} bytes {v['bytes']}"


def _stmt_mangle(v: dict[str, Any], family: str) -> str:
    ctx = _ctx_for(v["key"])
    return f"{expr(v['key'], ctx)} set {expr(v['value'], ctx)}"


def _stmt_vmap(v: dict[str, Any], family: str) -> str:
    return f"{expr(v['key'])} vmap {expr(v['data'])}"


def _flags(flags: Any) -> str:
    if not flags:
        return ""
    return " " + ",".join([flags] if isinstance(flags, str) else flags)


def _nat(kind: str) -> Any:
    def render(v: Any, family: str) -> str:
        v = v or {}
        out = kind
        if v.get("family"):
            out += f" {v['family']}"
        addr, port = v.get("addr"), v.get("port")
        if addr is not None or port is not None:
            out += " to"
            if addr is not None:
                text = expr(addr)
                is_v6 = isinstance(addr, str) and ":" in addr
                out += f" [{text}]" if is_v6 and port is not None else f" {text}"
            if port is not None:
                out += ("" if addr is not None else " ") + f":{expr(port)}"
        return out + _flags(v.get("flags"))

    return render


def _stmt_reject(v: Any, family: str) -> str:
    if not v:
        return "reject"
    rtype, code = v.get("type"), v.get("expr")
    if rtype == "tcp reset":
        return "reject with tcp reset"
    if code in (None, "port-unreachable") and rtype in (None, _DEFAULT_REJECT.get(family)):
        return "reject"
    return f"reject with {rtype} {code}"


def _stmt_log(v: Any, family: str) -> str:
    out = "log"
    v = v or {}
    if "prefix" in v:
        out += f' prefix "{v["prefix"]}"'
    if "level" in v:
        out += f" level {v['level']}"
    if "group" in v:
        out += f" group {v['group']}"
    if "snaplen" in v:
        out += f" snaplen {v['snaplen']}"
    return out + (f" flags {_flags(v['flags']).strip()}" if v.get("flags") else "")


def _stmt_limit(v: dict[str, Any], family: str) -> str:
    out = "limit rate " + ("over " if v.get("inv") else "")
    unit = f" {v['rate_unit']}" if v.get("rate_unit") not in (None, "packets") else ""
    out += f"{v['rate']}{unit}/{v.get('per', 'second')}"
    burst = v.get("burst")
    if burst and (unit or burst != 5):
        out += f" burst {burst} {v.get('burst_unit', 'packets')}"
    return out


def _stmt_set(v: dict[str, Any], family: str) -> str:
    return f"{v['op']} {v['set']} {{ {element(v['elem'])} }}"


def _stmt_xt(v: dict[str, Any], family: str) -> str:
    return f'xt {v.get("type", "match")} "{v.get("name", "?")}"'


def _stmt_verdict(word: str) -> Any:
    def render(v: Any, family: str) -> str:
        return f"{word} {v['target']}" if word in ("jump", "goto") else word

    return render


_STMTS: dict[str, Any] = {
    "match": _stmt_match,
    "counter": _stmt_counter,
    "mangle": _stmt_mangle,
    "vmap": _stmt_vmap,
    "dnat": _nat("dnat"),
    "snat": _nat("snat"),
    "masquerade": _nat("masquerade"),
    "redirect": _nat("redirect"),
    "reject": _stmt_reject,
    "log": _stmt_log,
    "limit": _stmt_limit,
    "set": _stmt_set,
    "notrack": lambda v, family: "notrack",
    "xt": _stmt_xt,
    **{w: _stmt_verdict(w) for w in (*_VERDICT_WORDS, "jump", "goto")},
}


def rule_text(exprs: list[Any], family: str, comment: str | None = None) -> tuple[str, bool]:
    """A rule's statement list -> (its text, whether it holds an iptables-nft xt expression)."""
    if not isinstance(exprs, list):
        raise RenderError("rule 'expr' is not a list")
    parts, has_xt = [], False
    for stmt in exprs:
        if not isinstance(stmt, dict):
            raise RenderError(f"statement {stmt!r} is not an object")
        key, val = _one(stmt, "statement")
        handler = _STMTS.get(key)
        if handler is None:
            raise RenderError(f"unknown statement {key!r}")
        has_xt = has_xt or key == "xt"
        try:
            parts.append(handler(val, family))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            if isinstance(exc, RenderError):
                raise
            raise RenderError(f"statement {key!r} lacks or mistypes a field ({exc})") from None
    text = " ".join(parts)
    if comment is not None:
        text += f' comment "{comment}"'
    return text, has_xt
