"""Generate a natlens capture bundle from a real kernel, inside network namespaces it creates.

    sudo python3 captures/lab/make_bundle.py --mode iptables --out captures/lab-iptables
    sudo python3 captures/lab/make_bundle.py --mode ipvs --out captures/lab-ipvs
    sudo python3 captures/lab/make_bundle.py --mode nftables --out captures/lab-nftables

Builds a kind-like cluster (4 nodes, 4 pods, an external client) out of network namespaces,
loads kube-proxy-shaped rules, starts whoami-style backends, records every node while the
scenarios run, dumps the node state, writes cluster/*.json, ground_truth.csv and README.md,
then deletes every namespace it made (also on failure; ``--keep`` leaves them for debugging).
Needs root, iproute2, iptables (nft and legacy), ipset, conntrack and tcpdump (nft for
--mode nftables).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import lab_ipvsadm
import lab_k8s
import lab_kproxy_iptables
import lab_kproxy_ipvs
import lab_kproxy_nftables
import lab_readme
import lab_truth
from lab_capture import NFT_DUMPS, Recorder, dump_state
from lab_model import PLANS, Cluster, build_cluster
from lab_netns import Topology
from lab_sh import LabError, in_ns, run, run_in

HERE = Path(__file__).resolve().parent
NEEDED = ["ip", "tcpdump", "conntrack", "iptables-restore", "iptables-save", "ipset"]
NEEDED_IPVS = ["iptables-legacy-restore", "iptables-legacy-save"]
NEEDED_NFT = ["nft"]
SCENARIO_PAUSE_S = 0.2
DRAIN_S = 0.5  # let the last FIN/ACKs reach every capture before stopping


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("iptables", "ipvs", "nftables"), required=True)
    parser.add_argument(
        "--nft-shape",
        choices=lab_kproxy_nftables.SHAPES,
        default="vmap",
        help="nftables mode: numgen vmap to endpoint chains (v1.33-1.35, default) or"
        " dnat-map (v1.36: dnat ip to numgen ... map, @hairpin-connections)",
    )
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to create")
    parser.add_argument("--requests", type=int, default=30, help="requests per scenario")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--keep", action="store_true", help="leave namespaces for debugging")
    parser.add_argument("--prefix", help="namespace name prefix (default nl<pid>)")
    parser.add_argument(
        "--plan",
        choices=sorted(PLANS),
        default="kind",
        help="addressing plan (default kind: the seed write-up's addresses)",
    )
    return parser.parse_args(argv)


def preflight(ipvs_like: bool, nftables: bool = False) -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, iptables, tcpdump)")
    extra = (NEEDED_IPVS if ipvs_like else []) + (NEEDED_NFT if nftables else [])
    missing = [t for t in NEEDED + extra if not shutil.which(t)]
    if missing:
        raise LabError("missing tools: " + ", ".join(missing))


def load_rules(topo: Topology, nft_shape: str | None = None) -> dict[str, str]:
    """Load every node's rules; returns node -> emulation rules (IPVS-like mode only).

    ``nft_shape`` set: kube-proxy nftables mode (kubelet/kindnet stay in iptables)."""
    emulation = {}
    for node in topo.cluster.nodes:
        ns = topo.node_ns(node)
        if nft_shape is not None:
            rules = lab_kproxy_nftables.iptables_restore_text(topo.cluster, node)
            nft_rules = lab_kproxy_nftables.nft_text(topo.cluster, node, nft_shape)
            run_in(ns, ["nft", "-f", "-"], input_text=nft_rules)
        elif topo.ipvs_like:
            # order matters: the legacy nat table must exist before the nft one (module doc)
            run_in(
                ns,
                ["iptables-legacy-restore"],
                input_text=lab_kproxy_ipvs.emulation_restore_text(topo.cluster, node),
            )
            run_in(
                ns,
                ["ipset", "restore"],
                input_text=lab_kproxy_ipvs.ipset_restore_text(topo.cluster, node),
            )
            rules = lab_kproxy_ipvs.restore_text(topo.cluster, node)
            emulation[node.name] = run_in(ns, ["iptables-legacy-save", "-t", "nat"])
        else:
            rules = lab_kproxy_iptables.restore_text(topo.cluster, node)
        run_in(ns, ["iptables-restore"], input_text=rules)
    return emulation


def start_servers(topo: Topology, procs: list[subprocess.Popen[str]]) -> None:
    """Start every backend; each process is added to ``procs`` at once, for the teardown."""
    for pod in topo.cluster.pods:
        if not pod.serves:
            continue
        cmd = [sys.executable, str(HERE / "lab_whoami.py"), "--hostname", pod.name]
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            in_ns(topo.ns(pod.key), cmd), stdout=subprocess.PIPE, stderr=log, text=True
        )
        procs.append(proc)
        assert proc.stdout is not None
        with log:  # the backend keeps its own copy of the descriptor
            if proc.stdout.readline().strip() != "ready":
                log.seek(0)
                raise LabError(f"backend {pod.name} did not start: {log.read().decode()}")


def stop_processes(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def run_scenarios(topo: Topology, requests: int) -> tuple[list[dict[str, str]], list[str]]:
    rows: list[dict[str, str]] = []
    problems: list[str] = []
    for sc in topo.cluster.scenarios:
        cmd = [sys.executable, str(HERE / "lab_client.py"), "--proto", sc.proto]
        cmd += ["--ip", sc.dialed_ip, "--port", str(sc.dialed_port), "--count", str(requests)]
        proc = subprocess.run(
            in_ns(topo.client_ns(sc.client), cmd), capture_output=True, text=True, timeout=120
        )
        got, bad = lab_truth.rows_for(topo.cluster, sc, proc.stdout, len(rows) + 1)
        if proc.returncode not in (0, 1) or len(got) + len(bad) != requests:
            bad.append(f"{sc.name}: client exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        rows += got
        problems += bad
        time.sleep(SCENARIO_PAUSE_S)
    return rows, problems


def tool_versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        text = (proc.stdout or proc.stderr).strip().splitlines()
        return text[0] if text else "?"

    return {
        "tcpdump": first_line(["tcpdump", "--version"]).removeprefix("tcpdump version "),
        "conntrack": first_line(["conntrack", "--version"]).split()[1],
        "iptables": first_line(["iptables", "--version"]).removeprefix("iptables "),
        "ipset": first_line(["ipset", "--version"]).split(",")[0].removeprefix("ipset "),
    } | ({"nft": first_line(["nft", "--version"])} if shutil.which("nft") else {})


def record_bundle(topo: Topology, stage: Path, args: argparse.Namespace) -> list[str]:
    """Everything between "namespaces exist" and "bundle written"; returns the problems."""
    cluster: Cluster = topo.cluster
    servers: list[subprocess.Popen[str]] = []
    recorder = Recorder(topo, stage)
    try:
        nft_shape = args.nft_shape if args.mode == "nftables" else None
        emulation = load_rules(topo, nft_shape)
        start_servers(topo, servers)
        recorder.start()
        rows, problems = run_scenarios(topo, args.requests)
        time.sleep(DRAIN_S)
        summary = recorder.stop()
    finally:
        recorder.kill()
        stop_processes(servers)
    for node in cluster.nodes:
        extra = NFT_DUMPS if args.mode == "nftables" else {}
        texts = dump_state(topo, node, stage / node.name, extra)
        if topo.ipvs_like:
            services = lab_kproxy_ipvs.virtual_services(cluster, node)
            text = lab_ipvsadm.render(services, texts["conntrack.txt"])
            (stage / node.name / "ipvsadm-Ln.txt").write_text(text)
    kernel = run(["uname", "-r"]).strip()
    lab_k8s.write_cluster(cluster, stage / "cluster", topo.ipvs_like, kernel, args.mode)
    lab_truth.write_csv(stage / "ground_truth.csv", rows)
    info = lab_readme.RunInfo(
        bundle=args.out.name,
        ipvs_like=topo.ipvs_like,
        command="sudo python3 captures/lab/make_bundle.py " + shlex.join(_cli_args(args)),
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        kernel=kernel,
        tools=tool_versions(),
        recorder_summary=summary,
        emulation_rules=emulation,
        mode=args.mode if args.mode != "nftables" else f"nftables ({args.nft_shape} shape)",
    )
    (stage / "README.md").write_text(lab_readme.render(cluster, info, rows))
    return problems


def _cli_args(args: argparse.Namespace) -> list[str]:
    out = ["--mode", args.mode, "--out", str(args.out)]
    out += ["--plan", args.plan] if args.plan != "kind" else []
    out += ["--nft-shape", args.nft_shape] if args.mode == "nftables" else []
    return out + (["--requests", str(args.requests)] if args.requests != 30 else [])


def _raise_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"interrupted by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ipvs_like = args.mode == "ipvs"
    out: Path = args.out
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"error: {out} exists and is not empty (use --force to replace it)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_on_signal)
    cluster = build_cluster(PLANS[args.plan])
    topo = Topology(cluster, ipvs_like, **({"prefix": args.prefix} if args.prefix else {}))
    stage = out.parent / f".{out.name}.staging"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    started = time.monotonic()
    try:
        preflight(ipvs_like, args.mode == "nftables")
        topo.create()
        problems = record_bundle(topo, stage, args)
        if problems:
            raise LabError("requests did not behave as expected:\n  " + "\n  ".join(problems))
        shutil.rmtree(out, ignore_errors=True)
        stage.rename(out)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept namespaces: {' '.join(topo.created)}", file=sys.stderr)
        else:
            failed = topo.destroy()
            if failed:
                print(f"error: could not delete namespaces {failed}", file=sys.stderr)
            shutil.rmtree(stage, ignore_errors=True)
    print(f"wrote {out} in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
