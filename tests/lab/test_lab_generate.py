"""Generate fresh lab bundles on the real kernel (root and network namespaces needed) and check
them; check that the generator leaves nothing behind, also when it is killed mid-run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.bundle_checks import check_bundle
from tests.lab.conftest import LAB_DIR

REQUESTS = 12  # per scenario; a multiple of 3 so IPVS round robin splits evenly
TOOLS = ["ip", "tcpdump", "conntrack", "iptables-restore", "iptables-legacy-restore", "ipset"]


def _lab_available() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return f"missing {missing}"
    probe = f"nlprobe{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "cannot create network namespaces"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


SKIP = _lab_available()
pytestmark = [pytest.mark.root, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    return {line.split(":")[1].strip() for line in out.stdout.splitlines()}


def _generate(
    out: Path, mode: str, prefix: str, plan: str = "kind", nft_shape: str | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(LAB_DIR / "make_bundle.py"), "--mode", mode, "--out", str(out)]
    cmd += ["--requests", str(REQUESTS), "--prefix", prefix, "--plan", plan]
    cmd += ["--nft-shape", nft_shape] if nft_shape else []
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize(
    ("plan", "mode"), [("kind", "iptables"), ("kind", "ipvs"), ("kubeadm", "iptables")]
)
def test_fresh_bundle_is_complete_and_matches_the_kernel(
    tmp_path: Path, plan: str, mode: str
) -> None:
    prefix = f"nlt{os.getpid()}{plan[:2]}{mode[:3]}"
    links_before = _root_links()
    started = time.monotonic()
    proc = _generate(tmp_path / f"lab-{mode}", mode, prefix, plan)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 120, f"generator took {elapsed:.0f}s"
    assert not {n for n in _namespaces() if n.startswith(prefix)}, "namespaces left behind"
    assert _root_links() == links_before, "the generator touched the root namespace's links"
    check_bundle(tmp_path / f"lab-{mode}", mode == "ipvs", REQUESTS, tshark=True, plan=plan)


@pytest.mark.parametrize(("key", "plan", "shape"), [
    ("nftables", "kind", "vmap"), ("kubeadm/nftables-dnat-map", "kubeadm", "dnat-map")
])  # fmt: skip
def test_fresh_nftables_bundle_is_complete_and_matches_the_kernel(
    fresh_nft_bundles: dict[str, Path], key: str, plan: str, shape: str
) -> None:
    """The session's fresh nftables bundles (tests/conftest.py), made like the others here."""
    check_bundle(fresh_nft_bundles[key], False, 20, plan=plan, nft_shape=shape)


def test_generator_tears_down_when_killed(tmp_path: Path) -> None:
    prefix = f"nlk{os.getpid()}"
    cmd = [sys.executable, str(LAB_DIR / "make_bundle.py"), "--mode", "ipvs"]
    cmd += ["--out", str(tmp_path / "killed"), "--requests", "200", "--prefix", prefix]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(n.startswith(prefix) for n in _namespaces()):
        time.sleep(0.1)
    time.sleep(2.0)  # well into the setup or the traffic
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, err
    assert not {n for n in _namespaces() if n.startswith(prefix)}, err
    assert not (tmp_path / "killed").exists()
    assert not list(tmp_path.glob(".killed*")), "staging directory left behind"
