"""Fixtures for the session tool's tests: buckets on the shared S3 server (tests/conftest.py `s3_server`)."""

from __future__ import annotations

import contextlib
import json
import urllib.request
import uuid
from typing import Callable, Iterable, Iterator

import pytest


@pytest.fixture
def s3_client(s3_server):
    """A plain boto3 client for setting up and inspecting what the code under test did."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")


@pytest.fixture
def make_bucket(s3_client) -> Iterator[Callable[[str], str]]:
    """Creates uniquely named buckets; `make_bucket("models")` -> "models-<12 hex>"."""

    def make(stem: str = "session") -> str:
        name = f"{stem}-{uuid.uuid4().hex[:12]}"
        s3_client.create_bucket(Bucket=name)
        return name

    yield make


@pytest.fixture
def bucket(make_bucket) -> str:
    return make_bucket()


@pytest.fixture
def storage(s3_server, bucket):
    """A Storage on a new, empty bucket of the S3 server, the way a MinIO host gets one (endpoint + keys)."""
    from session.storage.s3 import Storage

    with Storage(bucket, endpoint_url=s3_server, access_key="testing", secret_key="testing") as store:
        yield store


@pytest.fixture
def fill_bucket() -> Callable[[str, Iterable[str]], None]:
    """Puts many empty objects straight into moto's in-process backend: HTTP PUTs of a thousand keys take
    seconds, and the behaviour under test (listing, deleting) still goes over HTTP."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    def fill(bucket_name: str, keys: Iterable[str]) -> None:
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key in keys:
            backend.put_object(bucket_name, key, b"")

    return fill


@pytest.fixture
def s3_auth(s3_server) -> Callable[[], "contextlib.AbstractContextManager[None]"]:
    """`with s3_auth(): ...` makes the server check signatures and IAM policies (moto's auth switch), and turns
    that off again afterwards. Create IAM users and buckets before entering: inside, only known keys work."""

    def post(count: str) -> str:
        request = urllib.request.Request(f"{s3_server}/moto-api/reset-auth", data=count.encode(), method="POST",
                                         headers={"Content-Type": "text/plain"})  # not a form: moto reads the body
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]

    @contextlib.contextmanager
    def enabled() -> Iterator[None]:
        previous = post("0")
        try:
            yield
        finally:
            post(previous)

    return enabled


@pytest.fixture
def iam_user_keys(s3_server) -> Callable[[dict], tuple[str, str]]:
    """Creates an IAM user with the given inline policy; returns its (access key, secret key)."""
    import boto3

    iam = boto3.client("iam", endpoint_url=s3_server, region_name="us-east-1")

    def create(policy: dict) -> tuple[str, str]:
        name = f"user-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    return create
