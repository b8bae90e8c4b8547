from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden/expected files from the current output (review the diff!)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


# the fresh_lab_bundles keys: "<mode>" on the seed's addressing plan, "<plan>/<mode>" on another
FRESH_LAB_KEYS = ("iptables", "ipvs", "kubeadm/iptables", "kubeadm/ipvs")
# kube-proxy nftables mode, both rule shapes on both plans: "[<plan>/]nftables[-dnat-map]"
# Both rule shapes and both addressing plans, each pairing once (four bundles cost the suite
# two more minutes and cover no other code path).
FRESH_NFT_KEYS = ("nftables", "kubeadm/nftables-dnat-map")


def _lab_unavailable() -> str | None:
    import os
    import shutil

    if os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in ("ip", "tcpdump", "conntrack", "iptables-restore", "iptables-legacy-restore"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


@pytest.fixture(scope="session")
def fresh_lab_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Freshly generated lab bundles from the real kernel, made once per session.

    Keys: ``iptables`` and ``ipvs`` (the seed's addressing plan), ``kubeadm/iptables`` and
    ``kubeadm/ipvs`` (other CIDRs, node network and ports: nothing may depend on the seed's).
    """
    reason = _lab_unavailable()
    if reason:
        pytest.skip(reason)
    return _generate_bundles(tmp_path_factory.mktemp("fresh-lab"), FRESH_LAB_KEYS)


@pytest.fixture(scope="session")
def fresh_nft_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Fresh kube-proxy nftables-mode lab bundles (keys: FRESH_NFT_KEYS), made once per session."""
    import shutil

    reason = _lab_unavailable() or (None if shutil.which("nft") else "needs nft")
    if reason:
        pytest.skip(reason)
    return _generate_bundles(tmp_path_factory.mktemp("fresh-nft-lab"), FRESH_NFT_KEYS)


def _generate_bundles(root: object, keys: tuple[str, ...]) -> dict[str, object]:
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    bundles: dict[str, object] = {}
    for key in keys:
        plan, _, mode = key.rpartition("/")
        mode, _, shape = mode.partition("-")
        out = Path(str(root)) / f"lab-{key.replace('/', '-')}"
        cmd = [sys.executable, str(repo / "captures" / "lab" / "make_bundle.py")]
        cmd += ["--mode", mode, "--out", str(out), "--requests", "20", "--plan", plan or "kind"]
        cmd += ["--nft-shape", shape or "vmap"] if mode == "nftables" else []
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        bundles[key] = out
    return bundles


@pytest.fixture(scope="session")
def analyzed(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - returns a callable
    """`analyzed(bundle_dir)` -> (db path, report text): each bundle analyzed once per session.

    Tests must open the database read-only; a test that changes data makes its own copy.
    """
    from pathlib import Path

    from typer.testing import CliRunner

    from pipeline.cli import app

    cache: dict[Path, tuple[Path, str]] = {}

    def run(bundle: Path) -> tuple[Path, str]:
        bundle = Path(bundle).resolve()
        if bundle not in cache:
            out = tmp_path_factory.mktemp("analyzed")
            db, report = out / "natlens.duckdb", out / "report.md"
            result = CliRunner().invoke(
                app, ["analyze", str(bundle), "--db", str(db), "-o", str(report), "--quiet"]
            )
            assert result.exit_code == 0, result.stderr
            cache[bundle] = (db, report.read_text())
        return cache[bundle]

    return run
