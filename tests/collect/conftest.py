"""The lab generator lives in captures/lab (scripts, not a package): make its modules importable."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = REPO / "captures" / "lab"
if str(LAB_DIR) not in sys.path:
    sys.path.insert(0, str(LAB_DIR))
