"""Text from captures cannot break the Markdown report."""

from __future__ import annotations

from pipeline.output import markdown_table, md_escape
from pipeline.report import code_line


def test_md_escape_neutralises_markup_but_keeps_intraword_underscores() -> None:
    assert md_escape("TIME_WAIT") == "TIME_WAIT"
    assert md_escape("_em_") == "\\_em\\_"
    assert md_escape("a|b") == "a\\|b"
    assert md_escape("<script>") == "\\<script\\>"
    assert md_escape("[x](http://e)") == "\\[x\\](http://e)"
    assert md_escape("line\nbreak") == "line break"
    assert md_escape(None) == ""


def test_markdown_table_cells_cannot_add_columns_or_rows() -> None:
    table = markdown_table(["a"], [("x | y\n| z |",)])
    lines = table.splitlines()
    assert len(lines) == 3
    assert lines[2] == "| x \\| y \\| z \\| |"


def test_code_line_cannot_close_the_fence() -> None:
    assert "```" not in code_line("-m comment --comment ```evil```\nnext")
    assert "\n" not in code_line("a\nb")
