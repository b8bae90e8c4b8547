"""``nft -j list ruleset`` (libnftables-json(5)): one record per element of the nftables array.

Records: each table, chain, set/map (and each of its elements), rule and other named object.
``metainfo`` is structural; a ``json_schema_version`` other than 1 is a warning (the objects are
still read, and those whose shape differs are rejected one by one). A rule whose expressions
cannot be printed as nft would (an unknown expression or statement) is rejected with the
expression's name. A cut-off array keeps its complete objects and rejects the rest as one
record. Locations: the line of the object and, for errors, its byte offset (nft prints the
whole ruleset on one line).
"""

from __future__ import annotations

from typing import Any

from ..json_located import JsonElement, iter_json
from ..records import ParsedChunk, RecordError
from .render import RenderError, element, rule_text, type_ctx
from .rows import BadRecordError, NftRows, Row, split_element

SCHEMA_VERSION = 1
_OBJECTS = (
    "counter", "quota", "limit", "flowtable", "ct helper", "ct timeout", "ct expectation",
    "secmark", "synproxy", "tunnel",
)  # fmt: skip


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise BadRecordError(f"'{key}' is missing or not a string")
    return value


def _opt_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRecordError(f"'{key}' is not an integer")
    return value


def _flags(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _type_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " . ".join(value)
    if isinstance(value, dict) and "typeof" in value:
        return "typeof " + element(value["typeof"])
    raise BadRecordError(f"set type {value!r} is neither a name nor a list of names")


class _JsonParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.out = NftRows("json")
        self.types: dict[tuple[str, str, str], tuple[str | None, str | None]] = {}

    def byte_offset(self, item: JsonElement) -> int | None:
        if item.offset is None:
            return None
        return len(self.text[: item.offset].encode())

    def run(self) -> ParsedChunk:
        for item in iter_json(self.text, items_key="nftables"):
            if isinstance(item, RecordError):
                self.out.reject(item.reason, item.raw, item.line)
                continue
            try:
                if not isinstance(item.value, dict) or len(item.value) != 1:
                    raise BadRecordError("element is not an object with one key")
                kind, body = next(iter(item.value.items()))
                if not isinstance(body, dict):
                    raise BadRecordError(f"'{kind}' does not hold an object")
                self.dispatch(kind, body, item)
            except (BadRecordError, RenderError) as exc:
                self.out.reject(str(exc), item.raw, item.line, self.byte_offset(item))
        return self.out.finish()

    def dispatch(self, kind: str, body: dict[str, Any], item: JsonElement) -> None:
        base: Row = {"source_line": item.line}
        if kind == "metainfo":
            version = body.get("json_schema_version")
            if version != SCHEMA_VERSION:
                self.out.warn(
                    f"JSON schema version {version!r} (this reader knows {SCHEMA_VERSION}, nft"
                    f" {body.get('version')!r}): objects of another shape are rejected",
                    item.raw,
                    item.line,
                )
            return
        base["family"] = _str(body, "family")
        if kind == "table":
            row = {**base, "table_name": _str(body, "name"), "handle": _opt_int(body, "handle")}
            row.update(flags=_flags(body.get("flags")), comment=body.get("comment"))
            self.out.add(self.out.tables, row)
            return
        base["table_name"] = _str(body, "table")
        if kind == "chain":
            self.chain(base, body)
        elif kind in ("set", "map"):
            self.set(kind, base, body, item)
        elif kind == "element":
            self.elements(base, _str(body, "name"), body.get("elem"), item, 0)
        elif kind == "rule":
            self.rule(base, body, item)
        elif kind in _OBJECTS:
            row = {**base, "kind": kind, "name": _str(body, "name")}
            self.out.add(self.out.objects, {**row, "handle": _opt_int(body, "handle")})
        else:
            raise BadRecordError(f"unknown nftables object {kind!r}")

    def chain(self, base: Row, body: dict[str, Any]) -> None:
        row = {**base, "chain": _str(body, "name"), "handle": _opt_int(body, "handle")}
        row.update(chain_type=body.get("type"), hook=body.get("hook"), policy=body.get("policy"))
        row.update(priority=_opt_int(body, "prio"), comment=body.get("comment"))
        dev = body.get("dev")
        row["device"] = dev if isinstance(dev, str) or dev is None else ",".join(dev)
        self.out.add(self.out.chains, row)

    def set(self, kind: str, base: Row, body: dict[str, Any], item: JsonElement) -> None:
        name = _str(body, "name")
        row = {**base, "name": name, "kind": kind, "handle": _opt_int(body, "handle")}
        row.update(key_type=_type_text(body.get("type")), data_type=_type_text(body.get("map")))
        row.update(flags=_flags(body.get("flags")), size=_opt_int(body, "size"))
        row.update(policy=body.get("policy"), comment=body.get("comment"))
        timeout = body.get("timeout")
        row["timeout_s"] = None if timeout is None else int(timeout)
        self.out.add(self.out.sets, row)
        self.types[(base["family"], base["table_name"], name)] = (row["key_type"], row["data_type"])
        self.elements(base, name, body.get("elem"), item, 0)

    def elements(self, base: Row, name: str, elems: Any, item: JsonElement, start: int) -> None:
        if elems is None:
            return
        if not isinstance(elems, list):
            elems = [elems]
        key_type, data_type = self.types.get(
            (base["family"], base["table_name"], name), (None, None)
        )
        for i, elem in enumerate(elems, start=start + 1):
            try:
                text = element(elem, type_ctx(key_type), type_ctx(data_type))
                row = {**base, "set_name": name, "position": i, **split_element(text)}
            except (RenderError, BadRecordError) as exc:
                raw = str(elem)
                self.out.reject(f"set {name}: {exc}", raw, item.line, self.byte_offset(item))
                continue
            self.out.add(self.out.elements, row)

    def rule(self, base: Row, body: dict[str, Any], item: JsonElement) -> None:
        chain = _str(body, "chain")
        position = self.out.next_position(base["family"], base["table_name"], chain)
        try:
            comment = body.get("comment")
            text, has_xt = rule_text(body.get("expr", []), base["family"], comment)
        except RenderError as exc:
            reason = f"chain {chain} rule {position}: {exc}"
            self.out.reject(reason, item.raw, item.line, self.byte_offset(item))
            return
        row = {**base, "chain": chain, "position": position, "handle": _opt_int(body, "handle")}
        row["has_xt"] = True if has_xt else None
        self.out.add_rule(row, text)


def parse_json(text: str) -> ParsedChunk:
    return _JsonParser(text).run()
