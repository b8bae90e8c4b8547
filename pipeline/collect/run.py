"""`natlens collect`: gather one timestamped bundle from the nodes.

Order: each node's facts (clock, kernel, tools, versions); then the recorders (tcpdump per
interface, conntrack -E) started on every node at once, each stopped on its node after the same
duration; then the state dumps; the node clocks again; the cluster objects once. The bundle is
written under ``<out>/.<stamp>.partial`` and renamed to ``<out>/<stamp>`` when complete, so a
scheduled analyze of ``<out>`` never reads half a bundle. A tool missing on a node, a command
that fails, a node that cannot be reached: each is recorded in the manifest, never fatal.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from ..bundle import CLUSTER_FOLDER, sniff
from .access import NodeAccess
from .commands import CLOCK_CMD, CLUSTER, STATE, Command, recorders, tools_needed
from .facts import facts_argv, parse_facts
from .manifest import CommandRecord, NodeManifest, cap_stderr

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
UNREAD_FOLDER = ".unread"
READY_TIMEOUT_S = 30.0  # a recorder's start (a kubectl debug pod can take a while)
STOP_GRACE_S = 30.0  # after the duration, before a recorder is killed here
RECORDER_OK = (0, 124, 130)  # exit, timeout's own status when it fired, SIGINT


class CollectError(Exception):
    """The bundle could not be made at all (output folder, missing access program)."""


@dataclass(frozen=True)
class CollectOptions:
    out: Path
    duration_s: float = 10.0
    bpf: str | None = None
    interfaces: tuple[str, ...] = ("any",)
    cluster: bool = True
    command_timeout_s: float = 120.0


@dataclass
class CollectResult:
    bundle: Path
    nodes: list[NodeManifest]
    cluster: NodeManifest | None = None

    @property
    def unreachable(self) -> list[NodeManifest]:
        return [m for m in self.nodes if not m.reachable]


Say = Callable[[str], None]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def collect(nodes: list[NodeAccess], options: CollectOptions, say: Say) -> CollectResult:
    """Collect one bundle from `nodes`; `say` gets one-line progress messages (stderr)."""
    _check_local_programs(nodes, options)
    stamp = datetime.now(UTC).strftime(STAMP_FORMAT)
    final = options.out / stamp
    stage = options.out / f".{stamp}.partial"
    if final.exists():
        raise CollectError(f"{final}: a bundle of this second exists already")
    try:
        stage.mkdir(parents=True)
    except OSError as exc:
        raise CollectError(f"{stage}: cannot create: {exc.strerror or exc}") from exc
    try:
        result = _collect_into(stage, stamp, nodes, options, say)
        stage.rename(final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    result.bundle = final
    return result


def _collect_into(
    stage: Path, stamp: str, nodes: list[NodeAccess], options: CollectOptions, say: Say
) -> CollectResult:
    capture = {
        "duration_s": options.duration_s,
        "filter": options.bpf,
        "interfaces": list(options.interfaces),
    }
    manifests = [NodeManifest(stamp, n.node, n.describe(), capture) for n in nodes]
    planned = recorders(list(options.interfaces), options.duration_s, options.bpf)
    needed = tools_needed([*planned, *STATE])
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        list(pool.map(lambda p: _facts(p[0], p[1], needed), zip(nodes, manifests, strict=True)))
        for m in manifests:
            (stage / m.node).mkdir()
        live = [(n, m) for n, m in zip(nodes, manifests, strict=True) if m.reachable]
        for m in manifests:
            if not m.reachable:
                say(f"{m.node}: unreachable: {m.error}")
        _record(live, planned, stage, options, say)
        list(pool.map(lambda p: _dump_state(p[0], p[1], stage, options), live))
        list(pool.map(lambda p: _clock_end(p[0], p[1], options), live))
    for m in manifests:
        _place_outputs(stage / m.node, m)
        m.write(stage / m.node)
    cluster = _cluster(stage, stamp, options, say) if options.cluster else None
    return CollectResult(stage, manifests, cluster)


def _check_local_programs(nodes: list[NodeAccess], options: CollectOptions) -> None:
    for node in nodes:
        program = node.argv(["true"])[0]
        if shutil.which(program) is None:
            raise CollectError(f"--{node.method} needs {program!r}, which is not on this machine")


def _facts(node: NodeAccess, m: NodeManifest, needed: list[str]) -> None:
    m.collector_clock_start = utc_now()
    argv = node.argv(facts_argv(needed))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        m.reachable, m.error = False, str(exc)
        return
    facts = parse_facts(proc.stdout)
    if proc.returncode != 0 or facts.clock is None:
        m.reachable = False
        m.error = cap_stderr(proc.stderr) or f"exit status {proc.returncode}"
        return
    m.clock_start, m.kernel, m.tools = facts.clock, facts.kernel, facts.versions
    m.missing_tools = sorted(set(needed) - facts.tools)


def _missing(cmd: Command, node: NodeAccess, m: NodeManifest) -> CommandRecord | None:
    absent = [t for t in cmd.needs if t in m.missing_tools]
    if not absent:
        return None
    return CommandRecord(
        cmd.name,
        list(cmd.argv),
        node.argv(list(cmd.argv)),
        "missing",
        stderr=f"not on this node: {', '.join(absent)}",
    )


@dataclass
class _Running:
    """A recorder running on a node, its stdout going to the file."""

    node: NodeAccess
    manifest: NodeManifest
    cmd: Command
    record: CommandRecord
    proc: subprocess.Popen[bytes]
    sink: IO[bytes]
    stderr: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None

    def read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.stderr.append(line)
            if "listening on" in line:
                self.ready.set()
        self.ready.set()  # ended before listening: not waited for any longer


def _record(
    live: list[tuple[NodeAccess, NodeManifest]],
    planned: list[Command],
    stage: Path,
    options: CollectOptions,
    say: Say,
) -> None:
    """Start every recorder on every node at once; wait until all ended."""
    running: list[_Running] = []
    try:
        for node, m in live:
            for cmd in planned:
                missing = _missing(cmd, node, m)
                if missing is not None:
                    m.commands.append(missing)
                    continue
                running.append(_start(node, m, cmd, stage))
        deadline = time.monotonic() + READY_TIMEOUT_S
        for r in running:
            if r.cmd.tool == "tcpdump":
                r.ready.wait(max(0.0, deadline - time.monotonic()))
        say(
            f"capturing on {len(live)} node(s), {len(running)} recorder(s), "
            f"for {options.duration_s:g} s"
        )
        stop_by = time.monotonic() + options.duration_s + STOP_GRACE_S
        for r in running:
            _finish(r, max(0.1, stop_by - time.monotonic()))
    finally:
        for r in running:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
            r.sink.close()


def _start(node: NodeAccess, m: NodeManifest, cmd: Command, stage: Path) -> _Running:
    host_tools = cmd.tool != "tcpdump"  # kubectl-node: the debug image's tcpdump
    argv_here = node.argv(list(cmd.argv), host_tools=host_tools)
    record = CommandRecord(cmd.name, list(cmd.argv), argv_here, "ok", file=cmd.file)
    m.commands.append(record)
    sink = (stage / m.node / cmd.file).open("wb")
    record.started = utc_now()
    proc = subprocess.Popen(argv_here, stdout=sink, stderr=subprocess.PIPE)
    r = _Running(node, m, cmd, record, proc, sink)
    r.reader = threading.Thread(target=r.read_stderr, daemon=True)
    r.reader.start()
    return r


def _finish(r: _Running, timeout_s: float) -> None:
    try:
        r.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        r.proc.kill()
        r.proc.wait()
        r.record.status = "timeout"
    if r.reader is not None:
        r.reader.join(timeout=10)
    r.record.ended = utc_now()
    r.record.exit_status = r.proc.returncode
    r.record.stderr = cap_stderr("\n".join(r.stderr))
    if r.record.status == "ok" and r.proc.returncode not in RECORDER_OK:
        r.record.status = "failed"


def _dump_state(node: NodeAccess, m: NodeManifest, stage: Path, options: CollectOptions) -> None:
    for cmd in STATE:
        missing = _missing(cmd, node, m)
        if missing is not None:
            m.commands.append(missing)
            continue
        m.commands.append(_run_to_file(node.argv(list(cmd.argv)), cmd, stage / m.node, options))


def _run_to_file(
    argv_here: list[str], cmd: Command, folder: Path, options: CollectOptions
) -> CommandRecord:
    record = CommandRecord(cmd.name, list(cmd.argv), argv_here, "ok", file=cmd.file)
    record.started = utc_now()
    with (folder / cmd.file).open("wb") as sink:
        try:
            proc = subprocess.run(
                argv_here,
                stdout=sink,
                stderr=subprocess.PIPE,
                timeout=options.command_timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            record.status = "timeout"
            record.stderr = cap_stderr((exc.stderr or b"").decode(errors="replace"))
        except OSError as exc:
            record.status, record.stderr = "error", str(exc)
        else:
            record.exit_status = proc.returncode
            record.stderr = cap_stderr(proc.stderr.decode(errors="replace"))
            record.status = "ok" if proc.returncode == 0 else "failed"
    record.ended = utc_now()
    return record


def _clock_end(node: NodeAccess, m: NodeManifest, options: CollectOptions) -> None:
    try:
        proc = subprocess.run(
            node.argv(CLOCK_CMD), capture_output=True, text=True, timeout=60, check=False
        )
        m.clock_end = proc.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        m.clock_end = None
    m.collector_clock_end = utc_now()


def _place_outputs(folder: Path, m: NodeManifest) -> None:
    """Keep in the node folder what analyze reads; move the rest under ``.unread/``."""
    for record in m.commands:
        if record.file is None:
            continue
        path = folder / record.file
        if not path.exists():
            record.file = None
            continue
        data = path.read_bytes()
        record.bytes = len(data)
        found = sniff(path, data)
        if found.kind is not None:
            record.read_by_analyze, record.kind = True, found.kind
            continue
        record.not_read_because = found.reason
        unread = folder / UNREAD_FOLDER
        unread.mkdir(exist_ok=True)
        path.rename(unread / path.name)
        record.file = f"{UNREAD_FOLDER}/{path.name}"


def _cluster(stage: Path, stamp: str, options: CollectOptions, say: Say) -> NodeManifest | None:
    """kubectl get ... -o json, once per bundle, from this machine; skipped without kubectl."""
    if shutil.which("kubectl") is None:
        say("cluster: kubectl is not on this machine: no cluster objects collected")
        return None
    folder = stage / CLUSTER_FOLDER
    folder.mkdir()
    m = NodeManifest(stamp, CLUSTER_FOLDER, {"method": "local", "target": ""}, {})
    m.collector_clock_start = utc_now()
    record = _run_to_file(list(CLUSTER.argv), CLUSTER, folder, options)
    m.commands.append(record)
    m.collector_clock_end = utc_now()
    if record.status != "ok":
        say(f"cluster: kubectl get failed: {record.stderr.splitlines()[-1:]}")
    _place_outputs(folder, m)
    m.write(folder)
    return m
