"""Benchmark (not a test): natlens analyze against tshark, and the ingest-once targets.

    python benchmarks/pcap_ingest.py [--packets 1000000] [--fleet 8] [--memory-gb 1]
                                     [--workdir /tmp/natlens-bench] [--skip-tshark] [--keep]

Generates captures of short TCP connections plus some UDP (benchmarks/pcap_gen.py), then runs,
each in its own child process so its peak RSS can be read (os.wait4), all in the same run:

- floor:     a plain read of the file in 8 MiB chunks (the I/O floor);
- decode:    natlens read_capture over the file (all chunks decoded into frames);
- stage:     the per-capture stage alone (pipeline.capture.stage.run_capture: decode, Parquet
             files, the flows summary), as a worker runs it;
- import / new database: two fixed costs of the design, each alone;
- analyze:   `python -m pipeline analyze FILE --db NEW`: the whole process;
- tshark:    `tshark -r FILE -T fields -E separator=,` exporting the same per-packet columns.

With --fleet N (default 8; 0 skips it), N captures of --packets packets each (different
generator seeds, two per node folder) are analyzed into fresh databases with `--jobs 1` and
`--jobs 2`, and then one more capture is added to the second database (the incremental run).
With --memory-gb G, a capture of about G GB is analyzed with default options to read the peak RSS.

Prints the issue-10 ratios: tshark / analyze (>= 20x), incremental add / fresh analyze of that
capture (<= 1.5x), jobs 1 / jobs 2 (>= 1.6x), and the 1 GB capture's peak RSS (< 1 GiB).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXED = ("import the CLI", "new database (DDL)")
"""The runs that time one fixed cost of the design each (their work, without the others)."""

TSHARK_FIELDS = (
    "frame.number frame.time_epoch frame.len frame.cap_len sll.pkttype sll.ifindex vlan.id "
    "ip.src ip.dst ipv6.src ipv6.dst ip.proto tcp.srcport tcp.dstport udp.srcport udp.dstport "
    "tcp.flags tcp.seq_raw tcp.ack_raw tcp.window_size_value tcp.options.timestamp.tsval "
    "tcp.options.timestamp.tsecr ip.id ip.ttl ip.len tcp.len icmp.type icmp.code"
).split()

# Each child prints "WORK <seconds>": the time of the work itself, without interpreter start-up
# and imports (which the wall time includes).
FLOOR = """
import sys, time
t = time.perf_counter()
with open(sys.argv[1], "rb", buffering=0) as f:
    while f.read(8 << 20):
        pass
print("WORK", time.perf_counter() - t)
"""
DECODE = """
import sys, time
from pathlib import Path
from pipeline.ingest.pcap import read_capture
t = time.perf_counter()
rows = sum(c.frames["raw_packets"].height for c in read_capture(Path(sys.argv[1])))
print("WORK", time.perf_counter() - t)
"""
# The fixed costs of the design, each without the others: importing the CLI, creating a new
# database (tables and views), and DuckDB's append of the already decoded packets.
IMPORT = """
import time
t = time.perf_counter()
import pipeline.cli
print("WORK", time.perf_counter() - t)
"""
CONNECT = """
import sys, time
from pipeline.db import connect
t = time.perf_counter()
connect(sys.argv[1]).close()
print("WORK", time.perf_counter() - t)
"""
STAGE = """
import sys, time
from pathlib import Path
from pipeline.capture.stage import CaptureJob, run_capture
job = CaptureJob(path=sys.argv[1], bundle_id="bench", node="-", source_file="bench.pcap",
                 content_sha256="bench", engine="fast", data_root=sys.argv[2])
t = time.perf_counter()
result = run_capture(job)
print("WORK", time.perf_counter() - t)
"""


@dataclass
class Run:
    name: str
    seconds: float  # wall time of the child process
    max_rss_mib: float
    ok: bool
    note: str = ""
    work: float | None = None  # the child's own timing of its work (no start-up, no imports)
    tree_rss_mib: float = 0.0  # the most the child and its workers held at one moment (sampled)

    @property
    def best(self) -> float:
        return self.work if self.work is not None else self.seconds


def measure(
    name: str, cmd: list[str], timeout: float | None = None, out: Path | None = None
) -> Run:
    """Run `cmd` as a child process; wall time and its own peak RSS (from wait4)."""
    stdout = out.open("wb") if out else subprocess.PIPE
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, cwd=REPO, env=_env())
    deadline = None if timeout is None else start + timeout
    tree_peak = 0
    polls = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        polls += 1
        if polls % 10 == 0:  # every 0.1 s: the whole process tree at once (workers included)
            tree_peak = max(tree_peak, tree_rss(proc.pid))
        if deadline is not None and time.perf_counter() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            return Run(name, time.perf_counter() - start, usage.ru_maxrss / 1024, False,
                       f"killed after {timeout:.0f} s")  # fmt: skip
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    work = None
    if out:
        stdout.close()  # type: ignore[union-attr]
    elif proc.stdout:
        for line in proc.stdout.read().decode().splitlines():
            if line.startswith("WORK "):
                work = float(line.split()[1])
    ok = proc.returncode == 0
    note = "" if ok else f"exit {proc.returncode}: {err.strip().splitlines()[-1:]}"
    return Run(name, seconds, usage.ru_maxrss / 1024, ok, note, work, tree_peak / 2**20)


def tree_rss(root: int) -> int:
    """Bytes resident in `root` and all its descendants now (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            statm = (entry / "statm").read_text().split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        rss[int(entry.name)] = int(statm[1]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _fresh(db: Path) -> None:
    import shutil

    for suffix in ("", ".wal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(f"{db}.d", ignore_errors=True)


def _generate(path: Path, packets: int, seed: int = 0) -> int:
    gen = (
        "from benchmarks.pcap_gen import generate; "
        f"print(generate({str(path)!r}, {packets}, request={100 + seed}))"
    )
    made = subprocess.run([sys.executable, "-c", gen], cwd=REPO, env=_env(), check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(made.stdout.strip())


def _analyze(name: str, target: Path, db: Path, *extra: str, timeout: float = 3600) -> Run:
    cmd = [sys.executable, "-m", "pipeline", "analyze", str(target), "--db", str(db), "--quiet"]
    return measure(name, [*cmd, *extra], timeout=timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--fleet", type=int, default=8, help="captures for jobs/incremental")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/natlens-bench"))
    parser.add_argument("--memory-gb", type=float, default=0, help="also analyze an N GB capture")
    parser.add_argument("--skip-tshark", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    pcap = args.workdir / f"bench-{args.packets}.pcap"
    start = time.perf_counter()
    packets = _generate(pcap, args.packets)
    size = pcap.stat().st_size
    print(f"generated {pcap}: {packets} packets, {size / 2**20:.1f} MiB "
          f"in {time.perf_counter() - start:.1f} s on {os.cpu_count()} cores")  # fmt: skip
    py = sys.executable
    db = args.workdir / "bench.duckdb"
    runs = [measure("floor (read file)", [py, "-c", FLOOR, str(pcap)])]
    runs.append(measure("natlens decode", [py, "-c", DECODE, str(pcap)]))
    _fresh(db)
    runs.append(measure("capture stage (one worker)", [py, "-c", STAGE, str(pcap), f"{db}.d"]))
    runs.append(measure(FIXED[0], [py, "-c", IMPORT]))
    _fresh(db)
    runs.append(measure(FIXED[1], [py, "-c", CONNECT, str(db)]))
    _fresh(db)
    runs.append(_analyze("natlens analyze", pcap, db))
    if not args.skip_tshark:
        cmd = ["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=,"]
        for field in TSHARK_FIELDS:
            cmd += ["-e", field]
        runs.append(measure("tshark -T fields to CSV", cmd, out=args.workdir / "tshark.csv"))
    if args.fleet:
        runs += _fleet(args, db)
    _print(runs, packets, size, args.fleet)
    if not args.keep:
        for path in (pcap, args.workdir / "tshark.csv"):
            path.unlink(missing_ok=True)
        _fresh(db)
    if args.memory_gb:
        _memory_run(args, packets / size)


def _fleet(args: argparse.Namespace, db: Path) -> list[Run]:
    """--fleet captures with --jobs 1 and --jobs 2, then one more added incrementally."""
    import shutil

    bundle = args.workdir / "fleet"
    shutil.rmtree(bundle, ignore_errors=True)
    for i in range(args.fleet + 1):
        node = bundle / f"node{i // 2}"
        node.mkdir(parents=True, exist_ok=True)
        _generate(node / f"cap{i}.pcap", args.packets, seed=i)
    extra = bundle / f"node{args.fleet // 2}" / f"cap{args.fleet}.pcap"
    held = args.workdir / "held.pcap"
    shutil.move(extra, held)
    runs = []
    for jobs in ("1", "2"):
        _fresh(db)
        runs.append(_analyze(f"fleet of {args.fleet}, --jobs {jobs}", bundle, db, "--jobs", jobs))
    shutil.move(held, extra)
    runs.append(_analyze(f"add 1 capture to {args.fleet}", bundle, db))
    alone = args.workdir / "alone.duckdb"
    _fresh(alone)
    runs.append(_analyze("that capture, fresh database", extra, alone))
    _fresh(alone)
    if not args.keep:
        shutil.rmtree(bundle, ignore_errors=True)
    return runs


def _memory_run(args: argparse.Namespace, packets_per_byte: float) -> None:
    """Analyze a capture of about --memory-gb GB with default options: peak RSS < 1 GiB?"""
    want = int(args.memory_gb * 1e9 * packets_per_byte)
    big = args.workdir / f"bench-{want}.pcap"
    _generate(big, want)
    db = args.workdir / "bench-memory.duckdb"
    _fresh(db)
    size = big.stat().st_size
    run = _analyze("natlens analyze (memory)", big, db)
    print(f"\nnatlens analyze of a {size / 1e9:.2f} GB capture ({want:,} packets), default "
          f"options: {run.seconds:.1f} s, peak RSS {run.max_rss_mib:.0f} MiB of one process, "
          f"{run.tree_rss_mib:.0f} MiB of the process tree at once (target < 1024 MiB)",
          run.note)  # fmt: skip
    if not args.keep:
        big.unlink(missing_ok=True)
        _fresh(db)


def _print(runs: list[Run], packets: int, size: int, fleet: int) -> None:
    by = {r.name: r for r in runs}
    head = f"{'run':32s} {'wall s':>8s} {'work s':>8s} {'packets/s':>12s}"
    print(f"\n{head} {'peak RSS':>10s} {'tree RSS':>10s}")
    for r in runs:
        work = f"{r.work:8.2f}" if r.work is not None else f"{'-':>8s}"
        per_packet = r.name not in FIXED and not r.name.startswith(("fleet", "add"))
        rate = f"{packets / r.best:12,.0f}" if per_packet else f"{'-':>12s}"
        print(f"{r.name:32s} {r.seconds:8.2f} {work} {rate} {r.max_rss_mib:7.0f} MiB "
              f"{r.tree_rss_mib:7.0f} MiB {r.note}")  # fmt: skip
    print("(packets/s from the work time where the child reports one; peak RSS: the most one "
          "process of the run held (wait4); tree RSS: the most the run's processes held at one "
          "moment, sampled every 0.1 s)")  # fmt: skip
    floor = by["floor (read file)"].best
    print(f"\nnatlens decode / floor:          {by['natlens decode'].best / floor:7.1f}x")
    analyze = by["natlens analyze"]
    tshark = by.get("tshark -T fields to CSV")
    if tshark and analyze.ok:
        print(f"tshark / natlens analyze:        {tshark.seconds / analyze.seconds:7.2f}x"
              "  (target >= 20x)")  # fmt: skip
        print(f"tshark / natlens decode (wall):  "
              f"{tshark.seconds / by['natlens decode'].seconds:7.2f}x")  # fmt: skip
        print(f"the 20x budget: tshark / 20 = {tshark.seconds / 20:.2f} s; fixed costs: import "
              f"{by[FIXED[0]].best:.2f} s, new database {by[FIXED[1]].best:.2f} s")  # fmt: skip
    if fleet:
        one, two = by[f"fleet of {fleet}, --jobs 1"], by[f"fleet of {fleet}, --jobs 2"]
        add, alone = by[f"add 1 capture to {fleet}"], by["that capture, fresh database"]
        print(f"{fleet} captures, --jobs 1 / --jobs 2:  {one.seconds / two.seconds:7.2f}x"
              "  (target >= 1.6x)")  # fmt: skip
        print(f"add 1 to {fleet} / that one fresh:   {add.seconds / alone.seconds:7.2f}x"
              "  (target <= 1.5x)")  # fmt: skip


if __name__ == "__main__":
    main()
