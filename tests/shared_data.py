"""Where the real DeepRacer data for tests lives: `../shared/data` beside the checkout (tracks, logs; see
its SOURCES.md). One place for the lookup, so a checkout elsewhere sets DR_SHARED_DATA instead of every test
guessing."""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    os.environ.get("DR_SHARED_DATA", ""),
    str(Path(__file__).resolve().parents[2] / "shared" / "data"),  # <workspace>/main/tests -> <workspace>/shared
    "/work/shared/data",
]


def _find() -> Path:
    for candidate in _CANDIDATES:
        if candidate and (Path(candidate) / "tracks").is_dir():
            return Path(candidate)
    raise RuntimeError("the shared test data (tracks/, logs/) was not found; set DR_SHARED_DATA to its folder "
                       f"(looked in: {', '.join(c for c in _CANDIDATES if c)})")


SHARED_DATA = _find()
TRACKS = SHARED_DATA / "tracks"
LOGS = SHARED_DATA / "logs"
