"""The wheel installs as the package `natlens` (no top-level `pipeline`), ships queries/ and
reports/templates/, and its CLI and the README's Python API example run from another directory
in a fresh venv."""

from __future__ import annotations

import re
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PCAPS = [
    REPO / "tests" / "fixtures" / "zeek" / "ftp-ipv4" / "ipv4.pcap",
    REPO / "tests" / "fixtures" / "zeek" / "pop3-basic" / "pop3.pcap",
]


def readme_api_example() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"^### Python API\n.*?^```python\n(.*?)^```", text, re.S | re.M)
    assert match, "README has no Python API example"
    return match.group(1)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)


def _fresh_venv(root: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed; the dependencies come from this test's environment
    through a plain path entry (no .pth of that environment is run, so no editable install)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   root).stdout.strip()  # fmt: skip
    deps = {sysconfig.get_path("purelib"), *site.getsitepackages()}
    (Path(purelib) / "zz_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel)],
        check=True,
    )  # fmt: skip
    return Path(purelib)


def test_wheel_installs_natlens_and_runs_elsewhere(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(REPO)],
        check=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("natlens-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "natlens/queries/30_answers/nat_translations.sql" in names
    assert "natlens/templates/report.md.j2" in names
    assert {n.split("/")[0] for n in names} == {"natlens", "natlens-0.1.0.dist-info"}

    venv = tmp_path / "venv"
    purelib = _fresh_venv(venv, wheel)
    assert (purelib / "natlens" / "__init__.py").is_file()
    assert not (purelib / "pipeline").exists()
    assert not list(purelib.glob("pipeline*"))
    python = str(venv / "bin" / "python")

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "captures").mkdir(parents=True)
    shutil.copytree(REPO / "captures" / "seed-kind-ipvs", elsewhere / "captures" / "seed-kind-ipvs")
    probe = _run(
        [python, "-c", "import natlens.resources as r, importlib.util as u; "
         "s = u.find_spec('pipeline'); print(r.queries_dir()); "
         "print(s and (s.origin, list(s.submodule_search_locations or [])))"],
        elsewhere,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    where, pipeline_spec = probe.stdout.splitlines()
    assert where == str(purelib / "natlens" / "queries")
    # nothing named `pipeline` comes from this install (or from the repo)
    assert str(venv) not in pipeline_spec and str(REPO / "pipeline") not in pipeline_spec

    # the console script; two captures with -j 2 run in worker processes (`-m natlens.capture`)
    cli = _run(
        [str(venv / "bin" / "natlens"), "analyze", *map(str, PCAPS), "--node", "n1",
         "--db", "cli.duckdb", "-j", "2", "-o", "report.md", "--quiet"],
        elsewhere,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert cli.stderr == ""
    assert (elsewhere / "report.md").read_text().startswith("# natlens report")
    flows = _run(
        [str(venv / "bin" / "natlens"), "sql", "--db", "cli.duckdb", "--format", "csv",
         "--no-header", "select count(*) from flows"],
        elsewhere,
    )  # fmt: skip
    assert flows.returncode == 0, flows.stderr
    assert int(flows.stdout) > 0

    # the README's Python API example, as a user would run it
    (elsewhere / "example.py").write_text(readme_api_example())
    example = _run([python, "example.py"], elsewhere)
    assert example.returncode == 0, example.stderr
    assert example.stderr == ""
    loaded, shape = example.stdout.splitlines()
    assert int(loaded.split()[0]) > 0
    rows, columns = (int(x) for x in shape.strip("()").split(", "))
    assert rows > 0 and columns > 0
    assert (elsewhere / "seed.duckdb").is_file()
