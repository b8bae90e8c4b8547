"""Running commands, inside a network namespace or not, with errors that say what failed."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


class LabError(RuntimeError):
    """A lab step failed; the message names the command and its stderr."""


def run(args: Sequence[str], *, input_text: str | None = None, check: bool = True) -> str:
    """Run a command and return its stdout; raise LabError with stderr when it fails."""
    proc = subprocess.run(
        list(args), input=input_text, capture_output=True, text=True, check=False, timeout=60
    )
    if check and proc.returncode != 0:
        raise LabError(
            f"command failed (exit {proc.returncode}): {' '.join(args)}\n{proc.stderr.strip()}"
        )
    return proc.stdout


def in_ns(ns: str, args: Sequence[str]) -> list[str]:
    """The argv that runs ``args`` inside network namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *args]


def run_in(ns: str, args: Sequence[str], *, input_text: str | None = None) -> str:
    return run(in_ns(ns, args), input_text=input_text)


def ip_batch(ns: str, commands: Sequence[str]) -> None:
    """Run many ``ip`` commands in one process (``ip -n NS -batch -``)."""
    if commands:
        run(["ip", "-n", ns, "-batch", "-"], input_text="\n".join(commands) + "\n")


def sysctl(ns: str, settings: dict[str, str]) -> None:
    if settings:
        run_in(ns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items())])
