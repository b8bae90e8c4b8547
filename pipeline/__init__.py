"""natlens: explain what the Linux kernel did to a connection on its way through a Service."""

__version__ = "0.1.0"
