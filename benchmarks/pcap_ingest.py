"""Benchmark (not a test): natlens pcap ingestion against tshark and the I/O floor, side by side.

    python benchmarks/pcap_ingest.py [--packets 1000000] [--workdir /tmp/natlens-bench]
                                     [--no-analyze] [--skip-tshark] [--memory-gb 1] [--keep]

Generates a pcap of short TCP connections plus some UDP (benchmarks/pcap_gen.py), then runs,
each in its own child process so its peak RSS can be read (os.wait4):

- floor:    a plain read of the file in 8 MiB chunks (the I/O floor);
- decode:   natlens read_capture over the file (all chunks decoded into raw_packets frames);
- load:     natlens loading the file into a fresh DuckDB file (pipeline.db.connect +
            pipeline.loader.load_file: decode, insert, commit; the work time includes closing
            the database, which writes the rest of the write-ahead log into it);
- analyze:  `python -m pipeline analyze FILE --db ...`: load, then everything the CLI
            computes afterwards (flows and connections materialised, SNAT explanations, checks);
- tshark:   `tshark -r FILE -T fields -E separator=,` exporting the same per-packet columns to
            a CSV file.
- fixed costs of the design, each timed alone: importing the CLI; creating a new database
            (tables, views, empty materialised tables); DuckDB's append of the packets, decoded
            beforehand (load_file with the decode taken out, then closing the database). Their
            sum is printed against the 20x budget (tshark's time / 20).

- memory:   with --memory-gb N, a second capture of about N GB is generated and loaded
            (decode + DuckDB, as `load`) to read its peak RSS (target: under 1 GiB for 1 GB);
            with --memory-analyze-limit SIZE also a whole `natlens analyze --memory-limit SIZE`
            of it (minutes: off by default).

Prints wall seconds, packets per second, peak RSS and the ratios against tshark and the floor.
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
FIXED = ("import the CLI", "new database (DDL)", "DuckDB append only")
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
APPEND = """
import sys, time
from pathlib import Path
from pipeline import loader
from pipeline.bundle import discover
from pipeline.db import connect
from pipeline.ingest.pcap import read_capture
chunks = list(read_capture(Path(sys.argv[1])))
loader._chunks = lambda *args, **kwargs: iter(chunks)
con = connect(sys.argv[2])
[f] = discover([Path(sys.argv[1])], bundle_id="bench")
t = time.perf_counter()
outcome = loader.load_file(con, f)
con.close()  # writes what is still in the write-ahead log into the database file
print("WORK", time.perf_counter() - t)
assert outcome.status == "loaded", outcome
"""
LOAD = """
import sys, time
from pathlib import Path
from pipeline.bundle import discover
from pipeline.db import connect
from pipeline.loader import load_file
con = connect(sys.argv[2])
[f] = discover([Path(sys.argv[1])], bundle_id="bench")
t = time.perf_counter()
outcome = load_file(con, f)
con.close()  # writes what is still in the write-ahead log into the database file
print("WORK", time.perf_counter() - t)
assert outcome.status == "loaded", outcome
"""


@dataclass
class Run:
    name: str
    seconds: float  # wall time of the child process
    max_rss_mib: float
    ok: bool
    note: str = ""
    work: float | None = None  # the child's own timing of its work (no start-up, no imports)

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
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
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
    return Run(name, seconds, usage.ru_maxrss / 1024, ok, note, work)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/natlens-bench"))
    parser.add_argument("--no-analyze", action="store_true", help="skip `natlens analyze`")
    parser.add_argument("--memory-gb", type=float, default=0, help="also load an N GB capture")
    parser.add_argument(
        "--memory-analyze-limit",
        metavar="SIZE",
        help="also analyze the --memory-gb capture with `--memory-limit SIZE` (e.g. 500MB)",
    )
    parser.add_argument("--analyze-timeout", type=float, default=600)
    parser.add_argument("--skip-tshark", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    pcap = args.workdir / f"bench-{args.packets}.pcap"
    start = time.perf_counter()
    gen = (
        f"from benchmarks.pcap_gen import generate; print(generate({str(pcap)!r}, {args.packets}))"
    )
    made = subprocess.run([sys.executable, "-c", gen], cwd=REPO, env=_env(), check=True,
                          capture_output=True, text=True)  # fmt: skip
    packets = int(made.stdout.strip())
    size = pcap.stat().st_size
    print(f"generated {pcap}: {packets} packets, {size / 2**20:.1f} MiB "
          f"in {time.perf_counter() - start:.1f} s")  # fmt: skip
    py = sys.executable
    db = args.workdir / "bench.duckdb"
    runs = [measure("floor (read file)", [py, "-c", FLOOR, str(pcap)])]
    runs.append(measure("natlens decode", [py, "-c", DECODE, str(pcap)]))
    for suffix in ("", ".wal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    runs.append(measure("natlens load (decode+DuckDB)", [py, "-c", LOAD, str(pcap), str(db)]))
    runs.append(measure(FIXED[0], [py, "-c", IMPORT]))
    for suffix in ("", ".wal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    runs.append(measure(FIXED[1], [py, "-c", CONNECT, str(db)]))
    for suffix in ("", ".wal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    runs.append(measure(FIXED[2], [py, "-c", APPEND, str(pcap), str(db)]))
    if not args.no_analyze:
        for suffix in ("", ".wal"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        cmd = [py, "-m", "pipeline", "analyze", str(pcap), "--db", str(db), "--quiet"]
        runs.append(measure("natlens analyze", cmd, timeout=args.analyze_timeout))
    if not args.skip_tshark:
        cmd = ["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=,"]
        for field in TSHARK_FIELDS:
            cmd += ["-e", field]
        runs.append(measure("tshark -T fields to CSV", cmd, out=args.workdir / "tshark.csv"))
    _print(runs, packets, size)
    if not args.keep:
        for path in (pcap, db, Path(f"{db}.wal"), args.workdir / "tshark.csv"):
            path.unlink(missing_ok=True)
    if args.memory_gb:
        _memory_run(args, packets / size)


def _memory_run(args: argparse.Namespace, packets_per_byte: float) -> None:
    """Load a capture of about --memory-gb GB and print the peak RSS against the 1 GiB target."""
    want = int(args.memory_gb * 1e9 * packets_per_byte)
    big = args.workdir / f"bench-{want}.pcap"
    gen = f"from benchmarks.pcap_gen import generate; print(generate({str(big)!r}, {want}))"
    subprocess.run([sys.executable, "-c", gen], cwd=REPO, env=_env(), check=True,
                   capture_output=True)  # fmt: skip
    db = args.workdir / "bench-memory.duckdb"
    for suffix in ("", ".wal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    size = big.stat().st_size
    run = measure("natlens load (memory)", [sys.executable, "-c", LOAD, str(big), str(db)])
    print(f"\nnatlens load of a {size / 1e9:.2f} GB capture ({want:,} packets): "
          f"{run.best:.1f} s, peak RSS {run.max_rss_mib:.0f} MiB (target < 1024 MiB)",
          run.note)  # fmt: skip
    if args.memory_analyze_limit:
        for suffix in ("", ".wal"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "pipeline", "analyze", str(big), "--db", str(db), "--quiet",
               "--memory-limit", args.memory_analyze_limit]  # fmt: skip
        run = measure("natlens analyze (memory)", cmd)
        print(f"natlens analyze --memory-limit {args.memory_analyze_limit} of that capture: "
              f"{run.seconds:.1f} s, peak RSS {run.max_rss_mib:.0f} MiB (target < 1024 MiB)",
              run.note)  # fmt: skip
    if not args.keep:
        for path in (big, db, Path(f"{db}.wal")):
            path.unlink(missing_ok=True)


def _print(runs: list[Run], packets: int, size: int) -> None:
    by = {r.name: r for r in runs}
    head = f"{'run':30s} {'wall s':>8s} {'work s':>8s} {'packets/s':>12s} {'MiB/s':>8s}"
    print(f"\n{head} {'peak RSS':>10s}")
    for r in runs:
        work = f"{r.work:8.2f}" if r.work is not None else f"{'-':>8s}"
        per_packet = r.name not in FIXED[:2]  # importing and creating the views read no packet
        rate = f"{packets / r.best:12,.0f}" if per_packet else f"{'-':>12s}"
        mib = f"{size / 2**20 / r.best:8.1f}" if per_packet else f"{'-':>8s}"
        print(f"{r.name:30s} {r.seconds:8.2f} {work} {rate} {mib} "
              f"{r.max_rss_mib:7.0f} MiB {r.note}")  # fmt: skip
    print("(packets/s and MiB/s from the work time where the child reports one)")
    floor = by["floor (read file)"].best
    decode = by["natlens decode"].best
    load = by["natlens load (decode+DuckDB)"]
    print(f"\nnatlens decode / floor:        {decode / floor:7.1f}x  (target <= 3x)")
    print(f"natlens load / floor:          {load.best / floor:7.1f}x")
    tshark = by.get("tshark -T fields to CSV")
    if tshark:
        print(f"tshark / natlens load (wall):  {tshark.seconds / load.seconds:7.1f}x")
        print(
            f"tshark / natlens decode (wall):{tshark.seconds / by['natlens decode'].seconds:7.1f}x"
        )
        analyze = by.get("natlens analyze")
        if analyze and analyze.ok:
            print(
                f"tshark / natlens analyze:      {tshark.seconds / analyze.seconds:7.1f}x"
                "  (target >= 20x)"
            )
        fixed = [by[name].best for name in FIXED if name in by and by[name].ok]
        if len(fixed) == len(FIXED):
            print(
                f"\nfixed costs (import {fixed[0]:.2f} s + new database {fixed[1]:.2f} s + "
                f"append {fixed[2]:.2f} s) = {sum(fixed):.2f} s; the 20x budget is "
                f"tshark / 20 = {tshark.seconds / 20:.2f} s"
            )


if __name__ == "__main__":
    main()
