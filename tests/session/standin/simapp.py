"""What the stand-in simulator's scripts share (runs INSIDE the stand-in image, with the host's Python).

Not the simulator: a few hundred lines that keep the real image's contract at the level our code touches —
environment variables, S3 objects, log lines, exit codes. Formats: ../../../../shared/FORMATS.md §4-5
(sections 4.3, 5.1-5.5), DRfC's flow: DRFC.md §3.3-3.7.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from typing import Any, Optional

# World name -> (waypoints, centre-line length m, median width m): a few real tracks (data/tracks/tracks.csv).
# The real image has one route file per world (127 of them); a name without one fails to load.
TRACKS = {
    "reinvent_base": (119, 17.709, 0.762),
    "reInvent2019_track": (154, 23.118, 1.067),
    "reInvent2019_track_cw": (79, 23.091, 1.06),
    "reInvent2019_wide": (111, 16.635, 1.067),
    "reInvent2019_wide_cw": (57, 16.598, 1.06),
    "Oval_track": (101, 19.55, 0.666),
    "Bowtie_track": (162, 17.428, 0.724),
    "Vegas_track": (150, 22.551, 1.067),
    "Spain_track": (258, 59.998, 0.914),
    "Straight_track": (22, 5.707, 0.61),
    "2022_summit_speedway": (126, 25.173, 1.067),
    "2022_reinvent_champ_cw": (113, 33.275, 0.95),
    "2022_reinvent_champ_ccw": (113, 33.275, 0.95),
    "2024_reinvent_champ_cw": (86, 25.107, 0.762),
    "2024_reinvent_champ_ccw": (86, 25.107, 0.762),
    "penbay_pro": (298, 89.241, 1.067),
    "Albert": (343, 51.389, 1.067),
}
ROUTES = "/opt/install/deepracer_simulation_environment/share/deepracer_simulation_environment/routes"
POLL_S = 0.1  # how often a waiting script looks at S3 again
STEP_S = 0.002  # wall-clock time one simulated step takes here (the real simulator: ~1/15 s)
NUM_MODELS_TO_KEEP = 4


def log(text: str = "", prefix: str = "") -> None:
    for line in str(text).split("\n"):
        sys.stdout.write(f"{prefix}{line}\n")
    sys.stdout.flush()


def simapp_exit(message: str, *, function: str, error_code: str = "400", event_type: str = "user_error",
                exception_type: str = "simulation_worker.exceptions", prefix: str = "") -> None:
    """The simulator's fatal-error line (FORMATS.md §5.5), then exit 1, as the real image's log_and_exit."""
    body = {"simapp_exception": {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "function": function,
                                 "message": message, "exceptionType": exception_type, "eventType": event_type,
                                 "errorCode": error_code}}
    log(json.dumps(body), prefix)
    sys.exit(1)


def exit_on_sigterm() -> None:
    """`docker stop` sends SIGTERM; as PID 1 (the SageMaker sibling has no init) Python would ignore it."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def s3_client(endpoint_url: Optional[str] = None, region: Optional[str] = None) -> Any:
    """boto3 as the image uses it: S3_ENDPOINT_URL for MinIO (empty or unset: AWS), keys from the environment."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url if endpoint_url is not None else os.environ.get("S3_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None,
                        region_name=region or os.environ.get("AWS_REGION") or os.environ.get("APP_REGION")
                        or "us-east-1",
                        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5,
                                      read_timeout=10))


def get_bytes(s3: Any, bucket: str, key: str) -> Optional[bytes]:
    """The object, or None when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise


def get_json(s3: Any, bucket: str, key: str) -> Optional[Any]:
    data = get_bytes(s3, bucket, key)
    return None if data is None else json.loads(data)


def put(s3: Any, bucket: str, key: str, body: Any) -> None:
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def wait_for(check: Any, what: str, timeout_s: float = 300.0) -> Any:
    """Polls `check()` until it returns something truthy (short sleeps: the S3 API has no notifications)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(POLL_S)


def checkpoint_number(name: str) -> int:
    """`12_Step-3456.ckpt` -> 12."""
    return int(name.split("_Step-", 1)[0])


def sensor_line(metadata: dict) -> str:
    """The header both trainer and workers print after reading model_metadata.json (FORMATS.md §5.5)."""
    return (f"Sensor list {metadata.get('sensor', ['FRONT_FACING_CAMERA'])}, network "
            f"{metadata.get('neural_network', 'DEEP_CONVOLUTIONAL_NETWORK_SHALLOW')}, simapp_version "
            f"{metadata.get('version', '6.0')}, training_algorithm {metadata.get('training_algorithm', 'clipped_ppo')}"
            f", action_space_type {metadata.get('action_space_type', 'discrete')} lidar_config "
            "{'num_sectors': 8, 'num_values_per_sector': 8, 'clipping_dist': 2.0}")


REDIS_PORT = 6379  # the trainer's experience server; the workers find it by ip/ip.json


def serve_redis(port: int = REDIS_PORT) -> None:
    """The trainer's Redis, as far as a worker's first contact goes: answers `PING` with `+PONG` (RESP), on every
    address of the container, in the background for the life of the process."""
    import threading

    server = socket.create_server(("0.0.0.0", port), reuse_port=True)

    def answer(client: socket.socket) -> None:
        with client:
            buffer = b""
            while True:
                data = client.recv(4096)
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip().upper() == b"PING":
                        client.sendall(b"+PONG\r\n")

    def accept() -> None:
        while True:
            client, _ = server.accept()
            threading.Thread(target=answer, args=(client,), daemon=True).start()

    threading.Thread(target=accept, name="redis", daemon=True).start()


def ping_redis(host: str, port: int = REDIS_PORT, timeout_s: float = 5.0) -> bool:
    """A worker's first contact with the trainer's Redis: True when it answered PING."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False
