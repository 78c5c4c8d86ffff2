"""The dashboard's app served as `deepracer dashboard` serves it (session.dashboard.server.make_server: uvicorn on
127.0.0.1), in a thread of the test: one helper for the tests that talk to it over HTTP or through a browser."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Iterator, Optional

from session.dashboard.server import make_server


def free_port() -> int:
    """A port nothing listens on now; uvicorn binds it again at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(app: Any, port: Optional[int] = None) -> Iterator[str]:
    """Yields the base URL once uvicorn has started; stops it (the app's shutdown included) on the way out."""
    port = port or free_port()
    server = make_server(app, port)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    try:
        while not server.started:  # uvicorn offers no event to wait on
            assert thread.is_alive() and time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
