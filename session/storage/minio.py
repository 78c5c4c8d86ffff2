"""MinIO on this host, for clouds without S3 (azure, local): the simulator only speaks the S3 API.

One container per host, named `minio` on the training network (the containers' endpoint is DRfC's
http://minio:9000), published on 127.0.0.1:9000 only (the host's endpoint), data under the scratch disk.
Credentials come from system.env (cloud-init writes random ones); nothing here invents or stores keys.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Callable, Optional

from session.core import console
from session.core.config import SystemConfig
from session.core.console import Say
from session.core.errors import DeepracerError
from session.core.paths import MINIO_DATA_DIR
from session.engine.containers import LABEL_ROLE, LABEL_RUN, ContainerSpec, Engine, Mount, Port
from session.engine.specs import NETWORK
from session.storage.s3 import StorageError

if TYPE_CHECKING:
    from session.storage.s3 import Storage

NAME = "minio"
DATA_DIR = MINIO_DATA_DIR
HOST_RUN_LABEL = "host"  # MinIO serves every run on the host
READY_TIMEOUT_S = 60.0


class MinioError(DeepracerError):
    """`str()` is one line for the user."""


def needs_minio(system: SystemConfig) -> bool:
    # `remote` points at someone else's S3 server; `aws` has S3 itself.
    return system.cloud in ("azure", "local")


def minio_spec(system: SystemConfig, data_dir: str = DATA_DIR) -> ContainerSpec:
    if not (system.local_access_key_id and system.local_secret_access_key):
        raise MinioError(f"DR_LOCAL_ACCESS_KEY_ID and DR_LOCAL_SECRET_ACCESS_KEY: expected MinIO's credentials in "
                         f"system.env for DR_CLOUD={system.cloud}, got none")
    return ContainerSpec(
        name=NAME,
        image=f"minio/minio:{system.minio_image}",
        command=("server", "/data", "--console-address", ":9001"),
        environment={"MINIO_ROOT_USER": system.local_access_key_id,
                     "MINIO_ROOT_PASSWORD": system.local_secret_access_key},
        labels={LABEL_RUN: HOST_RUN_LABEL, LABEL_ROLE: "minio"},
        mounts=(Mount(data_dir, "/data"),),
        network=NETWORK,
        # Loopback only: reach the console through an SSH or Session Manager tunnel, never the internet.
        ports=(Port(9000, 9000), Port(9001, 9001)),
    )


def _live(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/minio/health/live", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def ensure_minio(engine: Engine, system: SystemConfig, *, say: Say = console.say,
                 live: Callable[[str], bool] = _live, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, data_dir: str = DATA_DIR,
                 storage: Optional["Storage"] = None) -> Optional[str]:
    """Starts MinIO if this cloud needs it and it isn't running, and creates the working bucket in it when
    `storage` is given and the bucket is missing; returns the host-side endpoint (None on aws)."""
    if not needs_minio(system):
        return None
    endpoint = system.local_s3_endpoint_url or "http://localhost:9000"
    running = [c for c in engine.list(run=HOST_RUN_LABEL, role="minio") if c.running]
    if not running:
        engine.ensure_network(NETWORK)
        engine.start(minio_spec(system, data_dir))
        say(f"started MinIO (data in {data_dir}, {endpoint} on this host only)")
    deadline = clock() + READY_TIMEOUT_S
    while not live(endpoint):  # MinIO has no readiness event; its health endpoint is the documented check
        if clock() > deadline:
            raise MinioError(f"MinIO did not answer at {endpoint} within {READY_TIMEOUT_S:.0f} s; "
                             f"see `docker logs {NAME}`")
        sleep(0.5)
    if storage is not None:
        _ensure_bucket(storage, say)
    return endpoint


def _ensure_bucket(storage: "Storage", say: Callable[[str], None]) -> None:
    try:
        storage.check_bucket()
    except StorageError as error:
        if error.code != "NoSuchBucket":
            raise
        storage.client.create_bucket(Bucket=storage.bucket)
        say(f"created bucket {storage.bucket} in MinIO")
