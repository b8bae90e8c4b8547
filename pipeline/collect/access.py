"""How to run a command on a node: locally, in a network namespace, in a container, over ssh, or
in a `kubectl debug node/...` pod chrooted to the host.

Each access turns a command (an argv list run on the node) into the argv run here. Nothing is
run by this module, so the argv lists are what the tests check for docker, ssh and kubectl.
A target may carry a node name: ``TARGET=NODE`` (``--ssh root@10.0.0.5=worker1``); without one
the node is the target itself (for ssh, the host part of ``user@host``).
"""

from __future__ import annotations

import re
import shlex
import socket
from dataclasses import dataclass

METHODS = ("local", "netns", "docker", "ssh", "kubectl-node")
DEBUG_IMAGE = "nicolaka/netshoot"
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")
# a node folder name: no path separators, no leading dot (a dot folder is not read by analyze)
_NODE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]*$")


class AccessError(ValueError):
    """A node target that cannot be used (bad name, duplicate node)."""


@dataclass(frozen=True)
class NodeAccess:
    """One node and the way to reach it."""

    method: str  # one of METHODS
    target: str  # namespace, container, ssh destination, Kubernetes node; "" for local
    node: str  # the node's name: its folder in the bundle
    image: str = DEBUG_IMAGE  # kubectl-node only: the tool image of the debug pod

    def argv(self, cmd: list[str], *, host_tools: bool = True) -> list[str]:
        """The argv that runs `cmd` on the node.

        `host_tools` (kubectl-node only): run the node's own binary (chroot /host); False runs
        the debug image's, e.g. tcpdump, which node images often lack (the pod shares the
        node's network namespace either way).
        """
        if self.method == "local":
            return list(cmd)
        if self.method == "netns":
            return ["ip", "netns", "exec", self.target, *cmd]
        if self.method == "docker":
            return ["docker", "exec", self.target, *cmd]
        if self.method == "ssh":
            # why: ssh joins its arguments into one string for the remote shell, so the
            # command is quoted here, once (a BPF filter keeps its spaces and parentheses)
            return ["ssh", *SSH_OPTIONS, self.target, "--", shlex.join(cmd)]
        if self.method == "kubectl-node":
            debug = [
                "kubectl",
                "debug",
                f"node/{self.target}",
                f"--image={self.image}",
                "--profile=sysadmin",
                "--quiet",
                "--attach=true",
                "--",
            ]
            return debug + (["chroot", "/host", *cmd] if host_tools else list(cmd))
        raise AccessError(f"unknown node access {self.method!r}")

    def describe(self) -> dict[str, str]:
        """For the manifest: how this node was reached."""
        example = self.argv(["CMD"])
        return {"method": self.method, "target": self.target, "argv_prefix": shlex.join(example)}


def split_target(text: str, method: str) -> tuple[str, str]:
    """``TARGET[=NODE]`` -> (target, node); the node defaults to the target (ssh: its host)."""
    target, sep, node = text.partition("=")
    if not target or (sep and not node):
        raise AccessError(f"--{method} {text!r}: expected TARGET or TARGET=NODE")
    if not sep:
        node = target.rpartition("@")[2] if method == "ssh" else target
    if not _NODE_NAME.match(node):
        raise AccessError(
            f"--{method} {text!r}: node name {node!r} cannot be a folder name "
            "(letters, digits, '_', '.', ':', '@', '-'; not starting with '.' or '-')"
        )
    return target, node


def nodes_for(method: str, targets: list[str], image: str = DEBUG_IMAGE) -> list[NodeAccess]:
    """The nodes named on the command line for one access method, each node once."""
    if method not in METHODS:
        raise AccessError(f"unknown node access {method!r} (one of {', '.join(METHODS)})")
    if method == "local":
        return [NodeAccess("local", "", local_node_name())]
    if not targets:
        raise AccessError(f"--{method} needs at least one target")
    nodes = []
    seen: set[str] = set()
    for text in targets:
        target, node = split_target(text, method)
        if node in seen:
            raise AccessError(f"--{method}: node {node!r} is named twice")
        seen.add(node)
        nodes.append(NodeAccess(method, target, node, image))
    return nodes


def local_node_name() -> str:
    name = socket.gethostname().split(".")[0] or "localhost"
    return name if _NODE_NAME.match(name) else "localhost"
