"""natlens: explain what the Linux kernel did to a connection on its way through a Service.

Python API (see README, "Python API"): `analyze(paths, db=...)` loads captures into a DuckDB file,
`connect(db, read_only=True)` opens it with its views (results to Polars with `.pl()`), and
`report(db)` returns the Markdown report. Installed, this package is `natlens`.
"""

__version__ = "0.1.0"

# why: imported here, after the submodules `analyze` and `report` are loaded by api, so the
# package's attributes `analyze` and `report` are these functions, not those modules
from .api import analyze, connect, report  # noqa: E402

__all__ = ["__version__", "analyze", "connect", "report"]
