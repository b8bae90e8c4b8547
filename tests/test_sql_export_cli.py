"""`natlens sql`, `views` and `export` as a user runs them: real processes on real databases.

The lab database is the committed lab-iptables bundle loaded by `natlens analyze`; the Zeek
traces are Zeek's own test pcaps with the conn.log Zeek wrote for them (tests/fixtures/zeek).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline.errors import ExitCode
from tests.test_flows_zeek import BASELINE, ZEEK, capture
from tests.zeek_log import read_zeek_log

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "captures" / "lab-iptables"
VETH = REPO / "tests" / "fixtures" / "pcap" / "veth_eth.pcap"
TRACES = sorted(p.name for p in ZEEK.iterdir() if p.is_dir())
COMPARED = (
    "proto", "duration", "orig_bytes", "resp_bytes", "conn_state", "missed_bytes", "history",
    "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "ip_proto",
)  # fmt: skip


def natlens(
    *args: str | Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=600,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lab_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("lab") / "lab.duckdb"
    result = natlens("analyze", LAB, "--db", db, "-q")
    assert result.returncode == 0, result.stderr
    return db


@pytest.fixture(scope="module")
def traces_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("zeek") / "traces.duckdb"
    result = natlens("analyze", *(capture(case) for case in TRACES), "--db", db, "-q")
    assert result.returncode == 0, result.stderr
    return db


# --- sql ---------------------------------------------------------------------------------------


def test_sql_runs_beside_a_read_only_connection_and_changes_nothing(lab_db: Path) -> None:
    before = digest(lab_db)
    with duckdb.connect(str(lab_db), read_only=True) as notebook:
        result = natlens("sql", "--db", lab_db, "--format", "csv", "select count(*) n from flows")
        [(n,)] = notebook.execute("select count(*) from flows").fetchall()
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"n\n{n}\n" and n > 100
    assert digest(lab_db) == before


def test_sql_refuses_a_duckdb_file_natlens_did_not_make(tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("create table customers as select 1 as id")
    before = digest(other)
    for args in (["sql", "select 1"], ["views"], ["export", "customers", "-o", "-"]):
        result = natlens(*args, "--db", other)
        assert result.returncode == ExitCode.DATABASE, result.stderr
        assert "not a natlens database" in result.stderr
        assert "Traceback" not in result.stderr
    assert digest(other) == before
    with duckdb.connect(str(other), read_only=True) as con:
        assert con.execute("select table_name from duckdb_tables()").fetchall() == [("customers",)]


def test_sql_from_argument_file_and_stdin_with_params(lab_db: Path, tmp_path: Path) -> None:
    script = tmp_path / "q.sql"
    script.write_text(
        "set variable wanted = 'http';\n"
        "select count(*) as n from flows where service = getvariable('wanted');\n"
        "-- a second result\nselect $node as node, count(*) as n from flows where node = $node;\n"
    )
    with duckdb.connect(str(lab_db), read_only=True) as con:
        [(http,)] = con.execute("select count(*) from flows where service = 'http'").fetchall()
        [(worker,)] = con.execute(
            "select count(*) from flows where node = 'myk8s-worker'"
        ).fetchall()
    by_file = natlens(
        "sql", "--db", lab_db, "-f", script, "--format", "jsonl", "--param", "node=myk8s-worker"
    )
    assert by_file.returncode == 0, by_file.stderr
    assert [json.loads(line) for line in by_file.stdout.splitlines()] == [
        {"n": http},
        {"node": "myk8s-worker", "n": worker},
    ]
    by_stdin = natlens("sql", "--db", lab_db, "-", "--format", "csv", stdin="select 6 * 7 as x")
    assert by_stdin.stdout == "x\n42\n"
    with duckdb.connect(str(lab_db), read_only=True) as con:
        [(to_80,)] = con.execute("select count(*) from flows where resp_p = 80").fetchall()
    sql = "select count(*) as n from flows where resp_p = $port; select $port::int + 1 as y"
    cast = natlens("sql", "--db", lab_db, "-p", "port=80", "--format", "csv", sql)
    assert cast.stdout == f"n\n{to_80}\ny\n81\n", cast.stderr
    unused = natlens("sql", "--db", lab_db, "-p", "p=1", "select 1")
    assert unused.returncode == ExitCode.USAGE and "not used by the SQL: p" in unused.stderr


def test_sql_formats(lab_db: Path) -> None:
    query = "select 1 as a, null as b, ['x', 'y'] as l, 'tab\there' as t"

    def run(*args: str) -> str:
        result = natlens("sql", "--db", lab_db, *args, query)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert run("--format", "csv") == 'a,b,l,t\n1,,"[x, y]",tab\there\n'
    assert run("--format", "tsv") == "a\tb\tl\tt\n1\t\t[x, y]\ttab\\there\n"
    assert run("--format", "tsv", "--no-header") == "1\t\t[x, y]\ttab\\there\n"
    assert json.loads(run("--format", "json")) == [
        {"a": 1, "b": None, "l": ["x", "y"], "t": "tab\there"}
    ]
    assert json.loads(run("--format", "jsonl")) == {
        "a": 1,
        "b": None,
        "l": ["x", "y"],
        "t": "tab\there",
    }
    assert run("--format", "markdown").splitlines() == [
        "| a | b | l | t |", "|---|---|---|---|", "| 1 |  | \\[x, y\\] | tab\there |"
    ]  # fmt: skip
    table = run().splitlines()
    assert table[0].split() == ["a", "b", "l", "t"]
    assert table[2].split() == ["1", "NULL", "[x,", "y]", "tab\\there"]
    assert table[-1] == "(1 row)"


def test_table_fits_the_terminal(lab_db: Path) -> None:
    for width in (60, 100):
        sql = "select * from flows order by uid limit 20"
        result = natlens("sql", "--db", lab_db, sql, env={"COLUMNS": str(width)})
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert all(len(line) <= width for line in lines[:-1]), lines
        assert "…" in result.stdout  # long cells are cut, left-out columns named
        assert "columns not shown" in lines[-1] and lines[-1].startswith("(20 rows")
    wide = natlens("sql", "--db", lab_db, "--max-width", "0", "select * from flows limit 3")
    assert "…" not in wide.stdout and "community_id" in wide.stdout.splitlines()[0]


def test_sql_error_is_duckdbs_whole_message(lab_db: Path) -> None:
    result = natlens("sql", "--db", lab_db, "select 1 as ok; select orig_hh from flows")
    assert result.returncode == ExitCode.DATABASE
    assert result.stdout.splitlines()[0].split() == ["ok"]  # the statement before it ran
    err = result.stderr
    assert err.startswith("query: statement 2: error: Binder Error:")
    assert 'Candidate bindings: "orig_h"' in err
    assert "LINE 1: select orig_hh from flows\n" in err
    assert "^^^^^^^" in err
    assert "Traceback" not in err
    typo = natlens("sql", "--db", lab_db, "select * from flowz")
    assert 'Did you mean "flows"' in typo.stderr and typo.returncode == ExitCode.DATABASE


@pytest.mark.parametrize(
    "statement",
    [
        "SET autoinstall_known_extensions = true",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "INSTALL httpfs",
        "LOAD httpfs",
        "select * from read_csv('/etc/passwd')",
        "copy (select 1) to '/tmp/natlens-sqlcli-should-not-exist.csv'",
        "attach '/tmp/natlens-sqlcli-should-not-exist.duckdb'",
    ],
)
def test_sql_cannot_reach_the_network_or_files(lab_db: Path, statement: str) -> None:
    result = natlens("sql", "--db", lab_db, statement)
    assert result.returncode == ExitCode.DATABASE, result.stdout
    assert "configuration has been locked" in result.stderr or "disabled" in result.stderr
    assert not Path("/tmp/natlens-sqlcli-should-not-exist.csv").exists()


def test_stale_tables_are_rebuilt_or_the_lock_is_named(lab_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "stale.duckdb"
    db.write_bytes(lab_db.read_bytes())
    with duckdb.connect(str(db)) as con:  # as a run stopped before its end leaves it
        con.execute("update natlens_materialized set data_fingerprint = 'stale'")
    with duckdb.connect(str(db), read_only=True):
        held = natlens("sql", "--db", db, "select count(*) from connections")
    assert held.returncode == ExitCode.DATABASE
    assert "out of date" in held.stderr and "another process has it open" in held.stderr
    fresh = natlens("sql", "--db", db, "--format", "csv", "select count(*) as n from connections")
    assert fresh.returncode == 0, fresh.stderr
    assert "note: rebuilt" in fresh.stderr
    again = natlens("sql", "--db", db, "--format", "csv", "select count(*) as n from connections")
    assert again.stdout == fresh.stdout and again.stderr == ""


def test_views_with_a_database_and_formats(lab_db: Path) -> None:
    result = natlens("views", "--db", lab_db, "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "name,layer,kind,question"
    rows = {line.split(",")[0]: line for line in lines[1:]}
    assert rows["flows"].startswith("flows,30_answers,view,")
    assert rows["connections"].startswith("connections,30_answers,table,")
    plain = natlens("views", "--format", "tsv").stdout.splitlines()
    assert plain[0] == "name\tlayer\tkind\tquestion" and any(r.startswith("flows\t") for r in plain)


# --- export ------------------------------------------------------------------------------------


def test_export_parquet_csv_jsonl_and_stdout(lab_db: Path, tmp_path: Path) -> None:
    with duckdb.connect(str(lab_db), read_only=True) as con:
        expected = con.execute(
            "select uid, service, tunnel_parents from flows order by uid"
        ).fetchall()
    sql = "select uid, service, tunnel_parents from flows order by uid"
    parquet = tmp_path / "f.parquet"
    assert (
        natlens("export", sql, "--db", lab_db, "--format", "parquet", "-o", parquet).returncode == 0
    )
    table = pq.read_table(parquet)
    assert [tuple(r.values()) for r in table.to_pylist()] == expected
    jsonl = natlens("export", sql, "--db", lab_db, "--format", "jsonl", "-o", "-")
    assert [tuple(json.loads(line).values()) for line in jsonl.stdout.splitlines()] == expected
    csv_file = tmp_path / "f.csv"
    assert natlens("export", sql, "--db", lab_db, "--format", "csv", "-o", csv_file).returncode == 0
    with duckdb.connect() as con:
        back = con.execute(f"select uid from read_csv('{csv_file}') order by uid").fetchall()
    assert back == [(r[0],) for r in expected]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_export_leaves_the_previous_file(lab_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "conn.log"
    out.write_text("previous\n")
    result = natlens(
        "export", "select nope from flows", "--db", lab_db, "--format", "csv", "-o", out
    )
    assert result.returncode == ExitCode.DATABASE and "Binder Error" in result.stderr
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["conn.log"]
    missing = natlens("export", "flows", "--db", lab_db, "-o", tmp_path / "no" / "x.parquet")
    assert missing.returncode == ExitCode.DATABASE
    assert "cannot write export: No such file or directory" in missing.stderr


def _zeek_export(db: Path, where: str, out: Path) -> None:
    sql = f"select * from flows where {where}"
    result = natlens("export", sql, "--db", db, "--format", "zeek", "-o", out)
    assert result.returncode == 0, result.stderr


def _read_csv_rows(path: Path, fields: list[str]) -> list[tuple[str | None, ...]]:
    names = ", ".join(f"'{f}'" for f in fields)
    with duckdb.connect() as con:
        return con.execute(
            f"select * from read_csv('{path}', delim='\\t', comment='#', header=false, "
            f"names=[{names}], nullstr='-', all_varchar=true, quote='', escape='')"
        ).fetchall()


@pytest.mark.parametrize("case", TRACES)
def test_zeek_reader_and_duckdb_read_zeeks_own_conn_log_alike(case: str) -> None:
    path = ZEEK / case / BASELINE.get(case, "conn.log")
    log = read_zeek_log(path)
    assert log.meta["path"] == "conn" and log.fields[:3] == ["ts", "uid", "id.orig_h"]
    raw = [tuple(None if c == "-" else c for c in row) for row in log.raw]
    assert _read_csv_rows(path, log.fields) == raw


@pytest.mark.parametrize("case", TRACES)
def test_zeek_export_of_a_trace_is_zeeks_conn_log(
    case: str, traces_db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "conn.log"
    _zeek_export(traces_db, f"source_file = '{capture(case).name}'", out)
    ours = read_zeek_log(out)
    zeek = read_zeek_log(ZEEK / case / BASELINE.get(case, "conn.log"))
    for key in ("separator", "set_separator", "empty_field", "unset_field", "path"):
        assert ours.meta[key] == zeek.meta[key], key
    assert ours.fields[: len(zeek.fields)] == zeek.fields and ours.fields[-1] == "community_id"
    assert ours.types[: len(zeek.types)] == zeek.types
    # the same connections, and the compared columns written as Zeek wrote them
    index = {f: i for i, f in enumerate(ours.fields)}
    key = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")

    def cells(log_rows: list[list[str]], names: list[str]) -> list[tuple[str, ...]]:
        where = {f: i for i, f in enumerate(names)}
        return sorted(tuple(r[where[f]] for f in (*key, *COMPARED)) for r in log_rows)

    assert cells(ours.raw, ours.fields) == cells(zeek.raw, zeek.fields)
    # parsed back by our reader and by DuckDB: the rows of the flows view
    with duckdb.connect(str(traces_db), read_only=True) as con:
        flows = con.execute(
            "select epoch_us(ts::timestamp), uid, orig_h, orig_p, service, orig_pkts, "
            "tunnel_parents from flows where source_file = ? order by uid",
            [capture(case).name],
        ).fetchall()
    back = sorted(
        (
            int(r["ts"].replace(".", "")), r["uid"], r["id.orig_h"], r["id.orig_p"],
            r["service"], r["orig_pkts"], r["tunnel_parents"],
        )
        for r in ours.rows()
    )  # fmt: skip
    assert back == sorted(flows)
    by_duckdb = _read_csv_rows(out, ours.fields)
    assert by_duckdb == [tuple(None if c == "-" else c for c in row) for row in ours.raw]
    assert len(by_duckdb) == len(flows) > 0
    assert all(row[index["tunnel_parents"]] == "(empty)" for row in ours.raw)


def test_zeek_export_has_services_local_ends_and_tunnel_parents(
    lab_db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lab.log"
    _zeek_export(lab_db, "true", out)
    rows = read_zeek_log(out).rows()
    with duckdb.connect(str(lab_db), read_only=True) as con:
        http = {
            u
            for (u,) in con.execute(
                "select uid from app_messages where kind like 'http%'"
            ).fetchall()
        }
        addrs = set(con.execute("select node, local from stg_host__addrs").fetchall())
        nodes = dict(con.execute("select uid || source_file, node from flows").fetchall())
    assert http and {r["uid"] for r in rows if r["service"] == "http"} >= http
    for r in rows:
        assert r["local_orig"] is not None  # every lab node has its `ip addr`
    local = [r for r in rows if r["local_orig"]]
    assert local
    # a tunnelled connection names the outer VXLAN/Geneve connections it came out of
    bundle = tmp_path / "b" / "vtep"
    bundle.mkdir(parents=True)
    (bundle / VETH.name).write_bytes(VETH.read_bytes())
    db = tmp_path / "t.duckdb"
    assert natlens("analyze", tmp_path / "b", "--db", db, "-q").returncode == 0
    tunnel_log = tmp_path / "t.log"
    _zeek_export(db, "true", tunnel_log)
    by_uid = {r["uid"]: r for r in read_zeek_log(tunnel_log).rows()}
    inner = [r for r in by_uid.values() if r["tunnel_parents"]]
    assert len(inner) >= 5
    for r in inner:
        for parent in r["tunnel_parents"]:
            assert by_uid[parent]["proto"] == "udp"
            assert by_uid[parent]["id.resp_p"] in (4789, 6081, 8472)
    assert addrs and nodes  # the lab tables the checks above read were there


# --- CLI conventions ---------------------------------------------------------------------------

COMMANDS = ("analyze", "report", "sql", "views", "export", "version")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_examples_and_no_type_artefacts(command: str) -> None:
    short = natlens(command, "-h")
    assert short.returncode == 0 and short.stdout == natlens(command, "--help").stdout
    for artefact in ("<bool>", "<list[", "<str>", "<path>", "<int"):
        assert artefact not in short.stdout, (command, artefact)
    if command != "version":
        assert "Examples:" in short.stdout
    assert "natlens[ray]" in natlens("analyze", "-h").stdout


def test_version_option() -> None:
    result = natlens("--version")
    assert result.returncode == 0 and result.stdout.startswith("natlens ")
    assert result.stdout.split()[1] == natlens("version").stdout.strip()


def test_an_unexpected_error_is_one_line_and_a_trace_file(tmp_path: Path) -> None:
    """A bug (here: a view file reader that raises) never shows a traceback to the user."""
    code = (
        "import sys, pipeline.cli as cli, pipeline.cli_query as q\n"
        "def broken():\n    raise RuntimeError('simulated bug')\n"
        "q.view_rows = lambda con: broken()\n"
        "sys.argv = ['natlens', 'views']\n"
        "cli.main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
        timeout=120,
    )
    assert result.returncode == ExitCode.INTERNAL != ExitCode.RECORD_ERRORS
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("natlens: internal error: RuntimeError: simulated bug")
    [trace] = (tmp_path / "natlens").iterdir()
    assert str(trace) in line
    assert "Traceback" in trace.read_text() and "simulated bug" in trace.read_text()


def test_bad_paths_and_options_before_any_work(tmp_path: Path) -> None:
    db = tmp_path / "n.duckdb"
    empty = tmp_path / "empty"
    empty.mkdir()
    result = natlens("analyze", empty, "--db", db)
    assert result.returncode == ExitCode.INPUT
    assert f"{empty}: error: no capture files found" in result.stderr
    assert not db.exists()
    result = natlens("analyze", tmp_path / "missing", "--db", db)
    assert result.returncode == ExitCode.INPUT and "no such file or directory" in result.stderr
    assert not db.exists()
    result = natlens("analyze", LAB, "--db", db, "-o", tmp_path / "nope" / "report.md")
    assert result.returncode == ExitCode.DATABASE  # as when the report cannot be written
    assert "cannot write report: No such file or directory" in result.stderr
    assert not db.exists()
    result = natlens("analyze", LAB, "--db", db, "--jobs", "0")
    assert result.returncode == ExitCode.USAGE and "Traceback" not in result.stderr
    assert not db.exists()


def test_a_node_directory_is_that_node_of_its_bundle(lab_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "n.duckdb"
    result = natlens("analyze", LAB / "myk8s-worker", "--db", db, "-q", "-o", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("#")  # `-o -`: the report on stdout
    query = (
        "select distinct bundle_id, node, source_file from ingest_files "
        "where node = 'myk8s-worker' order by source_file"
    )
    with duckdb.connect(str(db), read_only=True) as con:
        alone = con.execute(query).fetchall()
        nodes = con.execute("select distinct node from ingest_files").fetchall()
    with duckdb.connect(str(lab_db), read_only=True) as con:
        whole = con.execute(query).fetchall()
    assert nodes == [("myk8s-worker",)]
    assert alone == whole and alone[0][0] == "lab-iptables"
    renamed = natlens(
        "analyze", LAB / "myk8s-worker", "--node", "w1", "--db", tmp_path / "m.duckdb", "-q"
    )
    assert renamed.returncode == 0, renamed.stderr
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        assert con.execute("select distinct node from ingest_files").fetchall() == [("w1",)]


@pytest.fixture(autouse=True)
def _no_stray_files() -> Iterator[None]:
    yield
    assert not Path("/tmp/natlens-sqlcli-should-not-exist.csv").exists()
