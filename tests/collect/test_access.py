"""Node access: the exact argv each access would run (docker, ssh and kubectl are not executed)."""

from __future__ import annotations

import shlex

import pytest

from pipeline.collect.access import AccessError, NodeAccess, nodes_for, split_target
from pipeline.collect.commands import STATE, tcpdump

IPTABLES = ["iptables-save"]
BPF = "tcp port 80 and (host 10.96.0.1 or host 10.0.0.2)"


def test_local_runs_the_command_itself() -> None:
    (node,) = nodes_for("local", [])
    assert node.argv(IPTABLES) == ["iptables-save"]


def test_netns_runs_through_ip_netns_exec() -> None:
    (node,) = nodes_for("netns", ["nl1-w1=worker1"])
    assert node.node == "worker1"
    assert node.argv(IPTABLES) == ["ip", "netns", "exec", "nl1-w1", "iptables-save"]


def test_docker_exec_into_a_kind_node() -> None:
    (node,) = nodes_for("docker", ["kind-worker"])
    assert node.node == "kind-worker"
    assert node.argv(["conntrack", "-L", "-o", "extended"]) == [
        "docker",
        "exec",
        "kind-worker",
        "conntrack",
        "-L",
        "-o",
        "extended",
    ]


def test_ssh_quotes_the_command_once_for_the_remote_shell() -> None:
    (node,) = nodes_for("ssh", ["root@10.0.0.5"])
    assert node.node == "10.0.0.5"  # the host part of user@host
    cmd = list(tcpdump("any", 5, BPF).argv)
    argv = node.argv(cmd)
    assert argv == [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "root@10.0.0.5",
        "--",
        shlex.join(cmd),
    ]
    # the remote shell splits it back into exactly the command, the filter one word
    assert shlex.split(argv[-1]) == cmd
    assert shlex.split(argv[-1])[-1] == BPF


def test_kubectl_debug_node_chroots_to_the_host() -> None:
    (node,) = nodes_for("kubectl-node", ["kind-control-plane=cp"])
    assert node.node == "cp"
    assert node.argv(IPTABLES) == [
        "kubectl",
        "debug",
        "node/kind-control-plane",
        "--image=nicolaka/netshoot",
        "--profile=sysadmin",
        "--quiet",
        "--attach=true",
        "--",
        "chroot",
        "/host",
        "iptables-save",
    ]
    # tcpdump is the tool image's (node images often lack it); same network namespace
    assert node.argv(["tcpdump", "-i", "any"], host_tools=False)[-4:] == [
        "--",
        "tcpdump",
        "-i",
        "any",
    ]


def test_every_state_command_has_one_file_and_the_ssh_form_round_trips() -> None:
    assert len({c.file for c in STATE}) == len(STATE)
    node = NodeAccess("ssh", "h", "h")
    for cmd in STATE:
        assert shlex.split(node.argv(list(cmd.argv))[-1]) == list(cmd.argv)


@pytest.mark.parametrize(
    ("text", "method", "expected"),
    [
        ("ns1", "netns", ("ns1", "ns1")),
        ("ns1=node-a", "netns", ("ns1", "node-a")),
        ("admin@host.example", "ssh", ("admin@host.example", "host.example")),
    ],
)
def test_split_target(text: str, method: str, expected: tuple[str, str]) -> None:
    assert split_target(text, method) == expected


@pytest.mark.parametrize("text", ["=x", "ns=", "ns=../etc", "ns=.hidden", "ns=a/b", "ns=-x"])
def test_bad_targets_are_refused(text: str) -> None:
    with pytest.raises(AccessError):
        split_target(text, "netns")


def test_a_node_named_twice_is_refused() -> None:
    with pytest.raises(AccessError, match="named twice"):
        nodes_for("netns", ["a=n", "b=n"])
