#!/usr/bin/env python3
"""The host's two first-boot conversations with its bucket, before the session package exists.

    host-storage.py get s3://bucket/key DEST        download one object (the session package)
    host-storage.py report ready|failed STEP        write s3://<status url><instance-id>/bootstrap.json

The status object is what `pulumi up` waits for (infra/wait_ready.py reads it); `failed` carries the last
lines of the bootstrap log so the deployer sees why without opening a shell. Uses boto3 when this Python
has it (the bootstrap venv), else the AWS CLI that the Deep Learning AMI ships.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

BOOTSTRAP_ENV = os.environ.get("DR_BOOTSTRAP_ENV", "/etc/deepracer/bootstrap.env")
LOG = os.environ.get("DR_BOOTSTRAP_LOG", "/var/log/deepracer-bootstrap.log")
LOCAL_STATUS = os.environ.get("DR_BOOTSTRAP_STATUS", "/var/lib/deepracer/bootstrap.json")
IMDS = os.environ.get("DR_IMDS_ENDPOINT", "http://169.254.169.254")
TAIL_LINES = 40


def read_env(path: str) -> dict:
    values = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key] = value
    return values


def split_url(url: str) -> tuple:
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise SystemExit(f"host-storage: expected s3://bucket/key, got '{url}'")
    bucket, key = url[5:].split("/", 1)
    return bucket, key


def instance_id() -> str:
    """EC2 instance id through IMDSv2 (the instance requires session tokens)."""
    token_request = urllib.request.Request(
        f"{IMDS}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    with urllib.request.urlopen(token_request, timeout=5) as response:
        token = response.read().decode()
    id_request = urllib.request.Request(
        f"{IMDS}/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(id_request, timeout=5) as response:
        return response.read().decode().strip()


def log_tail(path: str, lines: int = TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


def _client(region: str):
    import boto3  # only in the bootstrap venv; callers fall back to the AWS CLI without it
    from botocore.config import Config

    return boto3.client("s3", region_name=region, config=Config(retries={"max_attempts": 8, "mode": "standard"}))


def _has_boto3() -> bool:
    try:
        import boto3  # noqa: F401
    except ImportError:
        return False
    return True


def get(url: str, dest: str, region: str) -> None:
    bucket, key = split_url(url)
    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=directory, prefix=".download-")
    os.close(handle)
    try:
        if _has_boto3():
            _client(region).download_file(bucket, key, partial)
        else:
            subprocess.run(["aws", "s3", "cp", "--only-show-errors", "--region", region, url, partial], check=True)
        os.replace(partial, dest)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def status_document(state: str, step: str, host_id: str, now: datetime.datetime, tail: str) -> dict:
    return {"state": state, "step": step, "instance_id": host_id, "time": now.isoformat(timespec="seconds"),
            "log_tail": tail if state == "failed" else "", "log": LOG}


def report(state: str, step: str, status_url: str, region: str) -> str:
    host_id = instance_id()
    document = status_document(state, step, host_id, datetime.datetime.now(datetime.timezone.utc), log_tail(LOG))
    body = json.dumps(document, indent=2).encode()
    os.makedirs(os.path.dirname(LOCAL_STATUS), exist_ok=True)
    with open(LOCAL_STATUS, "wb") as handle:
        handle.write(body)
    bucket, prefix = split_url(status_url)
    key = f"{prefix}{host_id}/bootstrap.json"
    if _has_boto3():
        _client(region).put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    elif shutil.which("aws"):
        subprocess.run(["aws", "s3", "cp", "--only-show-errors", "--region", region, "--content-type",
                        "application/json", LOCAL_STATUS, f"s3://{bucket}/{key}"], check=True)
    else:
        raise SystemExit("host-storage: neither boto3 nor the AWS CLI is available to report the host's state")
    return f"s3://{bucket}/{key}"


def main(argv: list) -> int:
    env = read_env(BOOTSTRAP_ENV)
    region = env.get("DR_AWS_APP_REGION", "us-east-1")
    if len(argv) == 3 and argv[0] == "get":
        get(argv[1], argv[2], region)
        return 0
    if len(argv) == 3 and argv[0] == "report" and argv[1] in ("ready", "failed"):
        print(f"host-storage: reported {argv[1]} to {report(argv[1], argv[2], env['DR_STATUS_URL'], region)}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
