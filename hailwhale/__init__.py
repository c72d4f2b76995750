"""hailwhale: real-time counting of rolled-up, multi-dimensional metrics."""

__version__ = "0.1.0"
