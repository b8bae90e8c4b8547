"""Where the SQL files and report templates live: inside the installed wheel, or in the repo."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_DIR = _PACKAGE_DIR.parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"none of {', '.join(map(str, candidates))} exists")


def queries_dir() -> Path:
    """queries/ (wheel: natlens/queries; source checkout or editable install: ./queries)."""
    return _first_existing(_PACKAGE_DIR / "queries", _REPO_DIR / "queries")


def templates_dir() -> Path:
    """reports/templates/ (wheel: natlens/templates)."""
    return _first_existing(_PACKAGE_DIR / "templates", _REPO_DIR / "reports" / "templates")
