"""What every `natlens` command shares: plain help, the entry point's error net, path checks.

- Help is plain text (no Rich markup that would eat `[ray]`, no `<bool>` or `<list[Path]>`): an
  argument shows its metavar, an option its metavar, a flag nothing.
- `main` runs the Typer app so that no Python traceback reaches a user: an unexpected error
  prints one line naming the file the full trace was written to and exits with
  ExitCode.INTERNAL; Ctrl-C outside `analyze` (which handles it itself) exits 130.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

import typer

# why: Typer vendors its own copy of click; its commands use these classes, not click's
from typer._click import ClickException, Context, HelpFormatter
from typer.core import TyperArgument, TyperCommand

from .errors import ExitCode, InputError, QueryError
from .signals import interrupted


class HelpCommand(TyperCommand):
    """A command whose help lists arguments by their metavar, never by their Python type."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        params = self.get_params(ctx)
        pieces = ["[OPTIONS]"] if any(not isinstance(p, TyperArgument) for p in params) else []
        for param in params:
            if isinstance(param, TyperArgument):
                pieces.append(_argument_usage(param))
        return pieces

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        arguments = []
        options = []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                if not param.hidden:
                    arguments.append((_argument_usage(param), _argument_help(param)))
            else:
                record = param.get_help_record(ctx)
                if record is not None:
                    options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


def _argument_usage(param: TyperArgument) -> str:
    name = param.metavar or (param.name or "ARG").upper()
    if param.nargs != 1:
        name += "..."
    return name if param.required else f"[{name}]"


def _argument_help(param: TyperArgument) -> str:
    extra = "  [required]" if param.required else ""
    return (param.help or "") + extra


def crash_dir() -> Path:
    """Where traces of unexpected errors go: $XDG_STATE_HOME/natlens (~/.local/state/natlens)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(state) / "natlens"


def write_trace(exc: BaseException) -> Path:
    """Write the full traceback of `exc` to a new file and return its path (a temporary
    directory when the state directory cannot be written)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = f"natlens {_version()} {' '.join(sys.argv)}\n" + "".join(traceback.format_exception(exc))
    for folder in (crash_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"natlens-crash-{stamp}-{os.getpid()}.txt"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return Path("(nowhere: the trace could not be written)")


def _version() -> str:
    from . import __version__

    return __version__


def run_app(app: typer.Typer) -> None:
    """Run `app` as the `natlens` command and exit with its documented code."""
    try:
        code = app(prog_name="natlens", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except ClickException as exc:  # a usage error: Typer's message, exit 2
        exc.show()
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):  # Typer turns Ctrl-C into exit 130 itself
        print("interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:  # the net for bugs: one line to the user, the trace to a file
        path = write_trace(exc)
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"natlens: internal error: {type(exc).__name__}: {first} (full trace written to "
            f"{path}; please report it)",
            file=sys.stderr,
        )
        code = int(ExitCode.INTERNAL)
    sys.exit(code if isinstance(code, int) else 0)


def check_output_path(path: Path | None, what: str) -> None:
    """Refuse, before any work, an output path that cannot be written: its folder is missing or
    not writable, or it is a folder. The message is the one a failed write would give."""
    if path is None or str(path) == "-":
        return
    folder = path.absolute().parent
    reason = None
    if path.is_dir():
        reason = "Is a directory"
    elif not folder.is_dir():
        reason = "No such file or directory"
    elif not os.access(folder, os.W_OK):
        reason = "Permission denied"
    if reason is not None:
        raise InputError(str(path), f"cannot write {what}: {reason}")


def note(text: str) -> None:
    """A diagnostic line on stderr."""
    print(text, file=sys.stderr, flush=True)


def fail(exc: InputError | QueryError, code: ExitCode) -> typer.Exit:
    """Print `exc` (one located message) and return the Exit to raise."""
    if interrupted():  # DuckDB's `Query interrupted`: the signal is what is reported
        raise KeyboardInterrupt from exc
    note(str(exc))
    return typer.Exit(int(code))
