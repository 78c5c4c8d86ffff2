"""Formatting that every layer's output shares: times and sizes as the tool prints them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

# -- formatting shared by every layer's output --------------------------------------------------------------------

def iso(moment: Optional[datetime]) -> Optional[str]:
    """A UTC time as ISO 8601 with a Z (what the JSON outputs carry), or None."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if moment else None


def human_size(count: float) -> str:
    """Bytes for a reader: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.1 GiB` (binary units, as `du -h`)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
