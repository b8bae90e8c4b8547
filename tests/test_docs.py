"""Docs keep up with the code: every command documented, every view has its header."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.main import get_command

from pipeline.cli import app
from pipeline.db import read_view_files

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _commands() -> dict[str, object]:
    group = get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_has_help_and_is_in_readme(name: str) -> None:
    command = _commands()[name]
    assert (command.help or "").strip(), name  # type: ignore[attr-defined]
    assert f"`natlens {name}" in README, f"README does not document `natlens {name}`"


@pytest.mark.parametrize("view", read_view_files(), ids=lambda v: v.name)
def test_every_view_has_question_grain_and_inputs(view: object) -> None:
    assert view.question.endswith("?"), view.path  # type: ignore[attr-defined]
    assert view.grain.startswith("one row per"), view.path  # type: ignore[attr-defined]
    assert view.inputs, view.path  # type: ignore[attr-defined]


def test_answer_views_read_no_raw_tables() -> None:
    for view in read_view_files():
        if view.layer in ("30_answers", "20_intermediate"):
            assert "raw_" not in view.body, f"{view.path} reads a raw_ table"
