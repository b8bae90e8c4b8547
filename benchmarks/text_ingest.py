"""Benchmark (not a test): memory of `natlens analyze` on a large text input (issue 15).

    python benchmarks/text_ingest.py [--mb 1000] [--workdir /tmp/natlens-bench] [--keep]

Writes a `conntrack -L` dump of about --mb MB (TCP and UDP entries DNATed from Service VIPs to
pod addresses, some UNREPLIED, plus the summary line conntrack prints) into a one-node bundle,
then runs `natlens analyze` on it with default options in a child process and prints the time,
the throughput, the peak RSS of the process (wait4) and of its process tree at any moment,
against the bound a capture of the same size must meet (1 GiB, issue 10).
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from benchmarks.pcap_ingest import _analyze, _fresh

BOUND_MIB = 1024
_TCP = (
    "ipv4     2 tcp      6 {timeout} ESTABLISHED src={client} dst={vip} sport={sport} dport=80 "
    "packets=6 bytes=450 src={pod} dst={client} sport=8080 dport={sport} packets=4 bytes=900 "
    "[ASSURED] mark=0 use=1 id={id}\n"
)
_UDP = (
    "ipv4     2 udp      17 {timeout} src={client} dst={vip} sport={sport} dport=53 packets=1 "
    "bytes=60 [UNREPLIED] src={pod} dst={client} sport=53 dport={sport} packets=0 bytes=0 "
    "mark=0 use=1 id={id}\n"
)


def write_dump(path: Path, megabytes: int, seed: int = 15) -> int:
    """Write about `megabytes` MB of conntrack -L output; return the number of entries."""
    rng = random.Random(seed)
    vips = [f"10.96.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(50)]
    entries, size, target = 0, 0, megabytes * 1_000_000
    with path.open("w") as out:
        while size < target:
            line = (_TCP if rng.random() < 0.8 else _UDP).format(
                timeout=rng.randrange(1, 432000),
                client=f"10.244.{rng.randrange(4)}.{rng.randrange(2, 250)}",
                vip=rng.choice(vips),
                sport=rng.randrange(1024, 65536),
                pod=f"10.244.{rng.randrange(4)}.{rng.randrange(2, 250)}",
                id=rng.randrange(2**32),
            )
            out.write(line)
            size += len(line)
            entries += 1
        out.write(f"conntrack v1.4.7 (conntrack-tools): {entries} flow entries have been shown.\n")
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1000, help="size of the dump in MB")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/natlens-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    bundle = args.workdir / f"text-{args.mb}mb"
    node = bundle / "worker"
    node.mkdir(parents=True, exist_ok=True)
    dump = node / "conntrack.txt"
    entries = write_dump(dump, args.mb)
    db = args.workdir / "bench-text.duckdb"
    _fresh(db)
    run = _analyze("natlens analyze (text)", bundle, db, timeout=7200)
    size = dump.stat().st_size
    met = run.ok and max(run.max_rss_mib, run.tree_rss_mib) < BOUND_MIB
    print(f"natlens analyze of a {size / 1e6:.0f} MB conntrack dump ({entries:,} entries), "
          f"default options: {run.seconds:.1f} s ({size / 1e6 / run.seconds:.2f} MB/s), "
          f"peak RSS {run.max_rss_mib:.0f} MiB of one process, {run.tree_rss_mib:.0f} MiB of "
          f"the process tree at once (bound {BOUND_MIB} MiB: "
          f"{'met' if met else 'NOT met'})",
          run.note)  # fmt: skip
    if not args.keep:
        shutil.rmtree(bundle, ignore_errors=True)
        _fresh(db)


if __name__ == "__main__":
    main()
