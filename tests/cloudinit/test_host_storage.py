"""cloudinit/scripts/host-storage.py: the host's package download and its status report, run as the host
runs it (a subprocess) against moto's S3 server over HTTP; the status it writes is read back by the
deployer's waiter (infra.wait_ready), so both ends of the contract are checked together.

EC2's instance metadata service cannot exist here: a local HTTP server plays IMDSv2 (token, then
instance-id with the token) and refuses requests without the token, as IMDSv2-only instances do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import boto3
import pytest

from infra.bootstrap import CLOUDINIT_DIR
from infra.wait_ready import Outcome, wait_for_status

SCRIPT = CLOUDINIT_DIR / "scripts" / "host-storage.py"
INSTANCE_ID = "i-0fedcba9876543210"
TOKEN = "imds-token-for-tests"


class _Imds(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self._reply(200, TOKEN)
        else:
            self._reply(400, "")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self._reply(401, "")
        elif self.path == "/latest/meta-data/instance-id":
            self._reply(200, INSTANCE_ID)
        else:
            self._reply(404, "")

    def _reply(self, status: int, body: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def imds() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture()
def host(tmp_path: Path, s3_server: str, imds: str):
    """A bucket, a bootstrap.env naming it, and the environment the script runs with on the 'host'."""
    bucket = f"deepracer-aws-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    (tmp_path / "bootstrap.env").write_text(
        f"# test\nDR_AWS_APP_REGION=us-east-1\nDR_SESSION_PACKAGE_URL=s3://{bucket}/bootstrap/session.tar.gz\n"
        f"DR_STATUS_URL=s3://{bucket}/hosts/\nDR_HOST_USER=ubuntu\n")
    log = tmp_path / "deepracer-bootstrap.log"
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_server, "DR_IMDS_ENDPOINT": imds,
           "DR_BOOTSTRAP_ENV": str(tmp_path / "bootstrap.env"), "DR_BOOTSTRAP_LOG": str(log),
           "DR_BOOTSTRAP_STATUS": str(tmp_path / "state" / "bootstrap.json")}
    return {"bucket": bucket, "s3": s3, "env": env, "log": log, "dir": tmp_path}


def run(host: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=host["env"], capture_output=True, text=True,
                          timeout=60)


def test_get_downloads_the_package_atomically(host: dict):
    payload = os.urandom(300_000)
    host["s3"].put_object(Bucket=host["bucket"], Key="bootstrap/session.tar.gz", Body=payload)
    dest = host["dir"] / "opt" / "session.tar.gz"
    result = run(host, "get", f"s3://{host['bucket']}/bootstrap/session.tar.gz", str(dest))
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == ["session.tar.gz"]  # no partial file left behind


def test_get_of_a_missing_package_fails_and_leaves_nothing(host: dict):
    dest = host["dir"] / "opt" / "session.tar.gz"
    result = run(host, "get", f"s3://{host['bucket']}/bootstrap/missing.tar.gz", str(dest))
    assert result.returncode != 0
    assert list(dest.parent.iterdir()) == []


def test_ready_report_is_what_pulumi_up_waits_for(host: dict):
    host["log"].write_text("step prepare\nstep session-package\nhost ready\n")
    result = run(host, "report", "ready", "ready")
    assert result.returncode == 0, result.stderr
    key = f"hosts/{INSTANCE_ID}/bootstrap.json"
    assert f"s3://{host['bucket']}/{key}" in result.stdout

    outcome = wait_for_status(host["s3"], host["bucket"], key, timeout_s=0, interval_s=1, sleep=pytest.fail)
    assert outcome.outcome is Outcome.READY
    assert outcome.status.instance_id == INSTANCE_ID
    assert outcome.status.log_tail == ""  # a ready host sends no log
    local = json.loads((host["dir"] / "state" / "bootstrap.json").read_text())
    assert local["state"] == "ready" and local["instance_id"] == INSTANCE_ID


def test_failed_report_carries_the_step_and_the_last_40_log_lines(host: dict):
    host["log"].write_text("".join(f"line {n}\n" for n in range(100)) + "docker: manifest unknown\n")
    assert run(host, "report", "failed", "simapp-image").returncode == 0
    key = f"hosts/{INSTANCE_ID}/bootstrap.json"

    outcome = wait_for_status(host["s3"], host["bucket"], key, timeout_s=0, interval_s=1, sleep=pytest.fail)
    assert outcome.outcome is Outcome.FAILED
    assert outcome.status.step == "simapp-image"
    tail = outcome.status.log_tail.splitlines()
    assert len(tail) == 40 and tail[-1] == "docker: manifest unknown" and tail[0] == "line 61"
    assert outcome.status.log == str(host["log"])


@pytest.mark.parametrize("args", [["report", "maybe", "x"], ["get", "s3://b/k"], ["fetch", "a", "b"]])
def test_wrong_usage_exits_2(host: dict, args: list):
    result = run(host, *args)
    assert result.returncode == 2 and "host-storage.py get" in result.stderr


def test_a_url_that_is_not_s3_is_named(host: dict):
    result = run(host, "get", "https://example.com/x", str(host["dir"] / "x"))
    assert result.returncode != 0
    assert "expected s3://bucket/key, got 'https://example.com/x'" in result.stderr
