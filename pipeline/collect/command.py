"""The `natlens collect` command line (registered on the app in pipeline/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from ..errors import ExitCode
from .access import DEBUG_IMAGE, METHODS, AccessError, NodeAccess, nodes_for
from .commands import ANY, check_interface
from .run import CollectError, CollectOptions, collect

err = Console(stderr=True, highlight=False, soft_wrap=True)


def collect_command(
    out: Annotated[Path, typer.Option("--out", help="Folder of bundles: writes OUT/<UTC time>/.")],
    more: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[TARGET[=NODE]]...", help="More targets for the node access option given."
        ),
    ] = None,
    duration: Annotated[
        float, typer.Option("--duration", min=0.1, help="Seconds of packet capture per node.")
    ] = 10.0,
    bpf: Annotated[
        str | None, typer.Option("--filter", help="BPF filter for tcpdump, e.g. 'tcp port 80'.")
    ] = None,
    interface: Annotated[
        list[str] | None,
        typer.Option("--interface", "-i", help="Interface to capture on (repeat; default: any)."),
    ] = None,
    local: Annotated[bool, typer.Option("--local", help="Collect from this machine.")] = False,
    netns: Annotated[
        list[str] | None,
        typer.Option("--netns", metavar="NAME[=NODE]", help="Network namespaces (ip netns exec)."),
    ] = None,
    docker: Annotated[
        list[str] | None,
        typer.Option(
            "--docker", metavar="NAME[=NODE]", help="Containers, e.g. kind nodes (docker exec)."
        ),
    ] = None,
    ssh: Annotated[
        list[str] | None,
        typer.Option("--ssh", metavar="HOST[=NODE]", help="Hosts reached with ssh (BatchMode)."),
    ] = None,
    kubectl_node: Annotated[
        list[str] | None,
        typer.Option(
            "--kubectl-node",
            metavar="NAME[=NODE]",
            help="Kubernetes nodes, through `kubectl debug node/NAME` chrooted to /host.",
        ),
    ] = None,
    image: Annotated[
        str, typer.Option("--image", help="Tool image of the kubectl debug pod.")
    ] = DEBUG_IMAGE,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster/--no-cluster",
            help="Also save `kubectl get services,endpointslices,pods,nodes -A -o json` once "
            "(when kubectl is on this machine).",
        ),
    ] = True,
) -> None:
    """Collect a timestamped bundle from nodes: captures, conntrack, rules, routes, manifest.

    Exactly one node access: --local, --netns, --docker, --ssh or --kubectl-node.
    Prints the bundle's path on stdout.
    """
    chosen = {
        "local": [] if local else None,
        "netns": netns,
        "docker": docker,
        "ssh": ssh,
        "kubectl-node": kubectl_node,
    }
    given = [m for m in METHODS if chosen[m] is not None]
    if len(given) != 1:
        _usage("give exactly one of --local, --netns, --docker, --ssh, --kubectl-node")
    method = given[0]
    targets = list(chosen[method] or []) + list(more or [])
    if method == "local" and targets:
        _usage(f"--local takes no targets (got {' '.join(targets)})")
    try:
        nodes: list[NodeAccess] = nodes_for(method, targets, image)
        interfaces = tuple(check_interface(i) for i in interface or [ANY])
    except (AccessError, ValueError) as exc:
        _usage(str(exc))
    options = CollectOptions(out, duration, bpf, interfaces, cluster)
    try:
        result = collect(nodes, options, lambda line: err.print(line, markup=False))
    except CollectError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(int(ExitCode.INPUT)) from exc
    for m in result.nodes:
        if not m.reachable:
            continue
        if m.missing_tools:
            err.print(f"{m.node}: not on this node: {', '.join(m.missing_tools)}", markup=False)
        for c in m.commands:
            if c.status not in ("ok", "missing"):
                first = (c.stderr.splitlines() or [""])[0]
                err.print(f"{m.node}: {c.name}: {c.status}: {first}", markup=False)
    err.print(f"wrote {result.bundle}", markup=False)
    typer.echo(str(result.bundle))
    raise typer.Exit(int(ExitCode.INPUT if result.unreachable else ExitCode.OK))


def _usage(msg: str) -> NoReturn:
    err.print(f"error: {msg}", markup=False)
    raise typer.Exit(int(ExitCode.USAGE))
