"""Fixtures shared by the test packages."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

# Dummy credentials for the S3 server; the deployer's real ones (a profile, an endpoint override) must not leak
# into tests, nor a request from a test reach AWS with them.
_TEST_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_CLEARED_AWS_ENV = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 API over HTTP (moto's server, in this process) for the whole session: yields its endpoint URL.

    Tests create their own uniquely named buckets, so they share the server without sharing state.
    """
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in (*_TEST_AWS_ENV, *_CLEARED_AWS_ENV)}
    os.environ.update(_TEST_AWS_ENV)
    for name in _CLEARED_AWS_ENV:
        os.environ.pop(name, None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
