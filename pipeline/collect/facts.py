"""What a node is, in one round trip: its clock, kernel, which tools it has, and their versions.

One ``sh -c`` script per node (one ssh connection, one debug pod) prints ``key value`` lines:
``clock``, ``kernel``, ``tool NAME`` per tool found, ``version NAME FIRST-LINE`` per tool with
a version command. The node's clock is read again, alone, after the last command.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from .commands import CLOCK_CMD, KERNEL_CMD, VERSIONS

_VERSION_FN = (
    'v() { n=$1; shift; command -v "$1" >/dev/null 2>&1 || return 0; '
    'printf \'version %s %s\\n\' "$n" "$("$@" 2>&1 </dev/null | head -n 1)"; }'
)


@dataclass
class Facts:
    clock: str | None = None
    kernel: str | None = None
    tools: set[str] = field(default_factory=set)
    versions: dict[str, str] = field(default_factory=dict)


def facts_argv(tools: list[str]) -> list[str]:
    """``sh -c SCRIPT sh TOOL...``: the argv run on the node."""
    lines = [
        f'echo "clock $({shlex.join(CLOCK_CMD)})"',
        f'echo "kernel $({shlex.join(KERNEL_CMD)})"',
        'for t in "$@"; do command -v "$t" >/dev/null 2>&1 && echo "tool $t"; done',
        _VERSION_FN,
        *(f"v {shlex.quote(name)} {shlex.join(argv)}" for name, argv in VERSIONS.items()),
        "exit 0",
    ]
    return ["sh", "-c", "\n".join(lines), "sh", *tools]


def parse_facts(text: str) -> Facts:
    facts = Facts()
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        rest = rest.strip()
        if key == "clock" and rest:
            facts.clock = rest
        elif key == "kernel" and rest:
            facts.kernel = rest
        elif key == "tool" and rest:
            facts.tools.add(rest)
        elif key == "version" and rest:
            name, _, value = rest.partition(" ")
            facts.versions[name] = value.strip()
    return facts
