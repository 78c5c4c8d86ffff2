"""The on-VM training tool: `python -m session <command>` (also installed as `deepracer`)."""

__version__ = "0.1.0"
