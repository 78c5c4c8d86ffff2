"""Reading a log stream from the Docker Engine: its bytes as lines, and closing it from any thread."""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Text lines (without their line end) out of byte chunks cut anywhere; the last line may lack a newline."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            yield raw.rstrip(b"\r").decode("utf-8", "replace")
    if pending:
        yield pending.rstrip(b"\r").decode("utf-8", "replace")


def close_quietly(stream: Any) -> None:
    """Closes a stream that may already be closed or broken (a reader blocked on it then fails and stops)."""
    with contextlib.suppress(Exception):
        stream.close()
