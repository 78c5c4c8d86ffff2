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
    assert "expected s3://bucket/key or https://<account>.blob.core.windows.net/<container>/<blob>, got 'https://example.com/x'" in result.stderr


# -- Azure: Azurite's Blob service over HTTPS with bearer tokens, a stand-in IMDS for the VM id and tokens --------

from tests.azure_fakes import VM_ID, RefusingBlobServer, host_env, refusing_blob_server  # noqa: E402 - with the Azure tests that use it


@pytest.fixture()
def azure_host(tmp_path: Path, azurite, azure_imds, azure_cert):
    """A container, a bootstrap.env with blob URLs into it (as infra/azure.py renders them), and the host's env."""
    container = azurite.new_container()
    base = f"{container.url}/"
    (tmp_path / "bootstrap.env").write_text(
        f"# test\nDR_SESSION_PACKAGE_URL={base}bootstrap/session.tar.gz\nDR_STATUS_URL={base}hosts/\n"
        "DR_HOST_USER=azureuser\n")
    log = tmp_path / "deepracer-bootstrap.log"
    env = host_env(azure_imds, azure_cert[0], DR_BOOTSTRAP_ENV=str(tmp_path / "bootstrap.env"),
                   DR_BOOTSTRAP_LOG=str(log), DR_BOOTSTRAP_STATUS=str(tmp_path / "state" / "bootstrap.json"))
    return {"container": container, "base": base, "env": env, "log": log, "dir": tmp_path, "imds": azure_imds}


def test_azure_get_downloads_the_package_with_the_managed_identity(azure_host: dict):
    payload = os.urandom(3_000_000)
    azure_host["container"].upload_blob("bootstrap/session.tar.gz", payload)
    dest = azure_host["dir"] / "opt" / "session.tar.gz"
    result = run(azure_host, "get", f"{azure_host['base']}bootstrap/session.tar.gz", str(dest))
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == ["session.tar.gz"]
    (token_request,) = azure_host["imds"].token_requests
    assert token_request == {"api-version": "2018-02-01", "resource": "https://storage.azure.com/"}


def test_azure_get_of_a_missing_blob_fails_at_once_and_leaves_nothing(azure_host: dict):
    dest = azure_host["dir"] / "opt" / "session.tar.gz"
    result = run(azure_host, "get", f"{azure_host['base']}bootstrap/missing.tar.gz", str(dest))
    assert result.returncode != 0
    assert "HTTP 404 BlobNotFound" in result.stderr and "retrying" not in result.stderr
    assert list(dest.parent.iterdir()) == []


def test_azure_token_is_retried_while_the_identity_warms_up(azure_host: dict):
    azure_host["container"].upload_blob("bootstrap/session.tar.gz", b"package")
    azure_host["imds"].warming_up = 2
    dest = azure_host["dir"] / "session.tar.gz"
    result = run(azure_host, "get", f"{azure_host['base']}bootstrap/session.tar.gz", str(dest))
    assert result.returncode == 0, result.stderr
    assert len(azure_host["imds"].token_requests) == 3
    assert result.stderr.count("the managed identity's token: HTTP 404") == 2


def test_azure_ready_report_is_what_pulumi_up_waits_for(azure_host: dict):
    from infra.wait_ready import BlobStore, wait

    azure_host["log"].write_text("step prepare\nhost ready\n")
    result = run(azure_host, "report", "ready", "ready")
    assert result.returncode == 0, result.stderr
    key = f"hosts/{VM_ID}/bootstrap.json"
    assert f"{azure_host['base']}{key}" in result.stdout

    outcome = wait(BlobStore(azure_host["container"]), key, timeout_s=0, interval_s=1, sleep=pytest.fail)
    assert outcome.outcome is Outcome.READY
    assert outcome.status.instance_id == VM_ID and outcome.status.log_tail == ""
    blob = azure_host["container"].get_blob_client(key).get_blob_properties()
    assert blob.content_settings.content_type == "application/json"


def test_azure_failed_report_carries_the_step_and_the_log_tail(azure_host: dict):
    from infra.wait_ready import BlobStore, wait

    azure_host["log"].write_text("".join(f"line {n}\n" for n in range(100)) + "nvidia-smi: no devices found\n")
    assert run(azure_host, "report", "failed", "gpu-runtime").returncode == 0
    outcome = wait(BlobStore(azure_host["container"]), f"hosts/{VM_ID}/bootstrap.json", timeout_s=0,
                   interval_s=1, sleep=pytest.fail)
    assert outcome.outcome is Outcome.FAILED and outcome.status.step == "gpu-runtime"
    tail = outcome.status.log_tail.splitlines()
    assert len(tail) == 40 and tail[-1] == "nvidia-smi: no devices found"


@pytest.fixture()
def refusing(azure_cert):
    yield from refusing_blob_server(*azure_cert, RefusingBlobServer(body=b"the package"))


def test_azure_get_waits_for_the_role_assignment_to_reach_storage(tmp_path: Path, azure_imds, azure_cert, refusing):
    refusing.refusals = 3
    dest = tmp_path / "session.tar.gz"
    env = host_env(azure_imds, azure_cert[0], DR_BOOTSTRAP_ENV=str(tmp_path / "none.env"))
    (tmp_path / "none.env").write_text("")
    result = subprocess.run([sys.executable, str(SCRIPT), "get", f"{refusing.url}/models/bootstrap/session.tar.gz",
                             str(dest)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == b"the package"
    assert result.stderr.count("HTTP 403 AuthorizationPermissionMismatch; retrying") == 3
    method, headers = refusing.requests[-1]
    assert method == "GET" and headers["authorization"].startswith("Bearer ey")
    assert headers["x-ms-version"] >= "2017-11-09"  # bearer tokens need this version or later


def test_azure_report_puts_a_block_blob(tmp_path: Path, azure_imds, azure_cert, refusing):
    refusing.refusals = 1
    (tmp_path / "bootstrap.env").write_text(f"DR_STATUS_URL={refusing.url}/models/hosts/\n")
    env = host_env(azure_imds, azure_cert[0], DR_BOOTSTRAP_ENV=str(tmp_path / "bootstrap.env"),
                   DR_BOOTSTRAP_LOG=str(tmp_path / "log"), DR_BOOTSTRAP_STATUS=str(tmp_path / "status.json"))
    result = subprocess.run([sys.executable, str(SCRIPT), "report", "ready", "ready"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    method, headers = refusing.requests[-1]
    assert method == "PUT" and headers["x-ms-blob-type"] == "BlockBlob"
    assert headers["content-type"] == "application/json"
    assert json.loads(refusing.received)["instance_id"] == VM_ID


@pytest.mark.parametrize("status, code", [(403, "AuthenticationFailed"), (403, "AuthorizationSourceIPMismatch"),
                                          (400, "InvalidHeaderValue")])
def test_azure_errors_that_waiting_cannot_fix_fail_at_once(tmp_path: Path, azure_imds, azure_cert, refusing,
                                                           status, code):
    refusing.refusals, refusing.status, refusing.code = 5, status, code
    env = host_env(azure_imds, azure_cert[0], DR_BOOTSTRAP_ENV=str(tmp_path / "none.env"))
    (tmp_path / "none.env").write_text("")
    result = subprocess.run([sys.executable, str(SCRIPT), "get", f"{refusing.url}/models/x", str(tmp_path / "x")],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"host-storage: GET {refusing.url}/models/x: HTTP {status} {code}")
    assert len(refusing.requests) == 1


def test_azure_credential_never_comes_from_an_sdk(tmp_path: Path):
    """The host runs this before any venv exists: the standard library only."""
    text = SCRIPT.read_text()
    assert "azure" not in " ".join(line for line in text.splitlines() if line.lstrip().startswith(("import", "from")))
