#!/usr/bin/env python3
"""The host's two first-boot conversations with its bucket or blob container, before the session package exists.

    host-storage.py get URL DEST                    download one object (the session package)
    host-storage.py report ready|failed STEP        write <status url><instance-id>/bootstrap.json

URL is s3://bucket/key on AWS and https://<account>.blob.core.windows.net/<container>/<blob> on Azure; the
status URL in bootstrap.env has the same form, and its scheme says which cloud this is.

The status object is what `pulumi up` waits for (infra/wait_ready.py reads it); `failed` carries the last
lines of the bootstrap log so the deployer sees why without opening a shell, and as `cause` the one-line
`summary` a failed step left in <state dir>/<step>.json (the doctor's). AWS: boto3 when this Python has
it (the bootstrap venv), else the DLAMI's AWS CLI. Azure: the standard library only; instance id and managed
identity token from IMDS, then the Blob REST API. A 403 for want of the data role is retried for a while: the
stack assigns the role after it creates the VM, and Azure takes minutes to apply it.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

BOOTSTRAP_ENV = os.environ.get("DR_BOOTSTRAP_ENV", "/etc/deepracer/bootstrap.env")
LOG = os.environ.get("DR_BOOTSTRAP_LOG", "/var/log/deepracer-bootstrap.log")
LOCAL_STATUS = os.environ.get("DR_BOOTSTRAP_STATUS", "/var/lib/deepracer/bootstrap.json")
STATE_DIR = os.environ.get("DR_STATE_DIR", "/var/lib/deepracer")
IMDS = os.environ.get("DR_IMDS_ENDPOINT", "http://169.254.169.254")
TAIL_LINES = 40
# Azure: the Blob REST version (bearer tokens need 2017-11-09 or later) and how long to wait for the role.
BLOB_API_VERSION = "2021-08-06"
STORAGE_RESOURCE = "https://storage.azure.com/"
RETRY_SECONDS = float(os.environ.get("DR_STORAGE_RETRY_SECONDS", "1200"))
RETRY_INTERVAL = float(os.environ.get("DR_STORAGE_RETRY_INTERVAL", "15"))
_NOT_AUTHORIZED_YET = ("AuthorizationPermissionMismatch", "AuthorizationFailure")


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
        raise SystemExit(f"host-storage: expected s3://bucket/key or https://<account>.blob.core.windows.net/"
                         f"<container>/<blob>, got '{url}'")
    bucket, key = url[5:].split("/", 1)
    return bucket, key


def is_blob_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" and bool(parts.netloc) and parts.path.count("/") >= 2


def instance_id(azure: bool = False) -> str:
    return azure_vm_id() if azure else ec2_instance_id()


def ec2_instance_id() -> str:
    """EC2 instance id through IMDSv2 (the instance requires session tokens)."""
    token_request = urllib.request.Request(
        f"{IMDS}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    with urllib.request.urlopen(token_request, timeout=5) as response:
        token = response.read().decode()
    id_request = urllib.request.Request(
        f"{IMDS}/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(id_request, timeout=5) as response:
        return response.read().decode().strip()


def _imds_get(path: str) -> bytes:
    """Azure's instance metadata service: no token, but the Metadata header (and no proxy)."""
    request = urllib.request.Request(f"{IMDS}{path}", headers={"Metadata": "true"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return response.read()


def azure_vm_id() -> str:
    """The VM's unique id (the vmId that `pulumi up` knows), from Azure's instance metadata service."""
    return _imds_get("/metadata/instance/compute/vmId?api-version=2021-02-01&format=text").decode().strip()


def azure_token() -> str:
    """A token for Azure Storage, as the VM's system-assigned managed identity."""
    query = urllib.parse.urlencode({"api-version": "2018-02-01", "resource": STORAGE_RESOURCE})
    # IMDS answers 404 or 410 while the identity is still being set up on a new VM.
    body = _with_retries("the managed identity's token", lambda: _imds_get(f"/metadata/identity/oauth2/token?{query}"),
                         also=(404, 410))
    return json.loads(body)["access_token"]


def _error_code(error: urllib.error.HTTPError) -> str:
    """Azure Storage names its error in a header (and in the XML body, which HEAD responses lack)."""
    return error.headers.get("x-ms-error-code", "") if error.headers else ""


def _with_retries(what: str, call, also: tuple = ()):
    """Runs call() until it succeeds, retrying what heals by waiting: throttling, server errors, the network,
    a data role that has not reached storage yet (403), and the HTTP statuses in `also`."""
    deadline = time.monotonic() + RETRY_SECONDS
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except urllib.error.HTTPError as error:
            code = _error_code(error)
            retry = (error.code >= 500 or error.code in (429, *also)
                     or (error.code == 403 and code in _NOT_AUTHORIZED_YET))
            reason = f"HTTP {error.code} {code or error.reason}"
            if not retry or time.monotonic() >= deadline:
                raise SystemExit(f"host-storage: {what}: {reason}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = str(getattr(error, "reason", error))
            if time.monotonic() >= deadline:
                raise SystemExit(f"host-storage: {what}: {reason}") from None
        print(f"host-storage: {what}: {reason}; retrying (attempt {attempt})", file=sys.stderr, flush=True)
        time.sleep(min(RETRY_INTERVAL, max(0.0, deadline - time.monotonic())))


def _blob_request(method: str, url: str, token: str, data: bytes = None,
                  content_type: str = "") -> urllib.request.Request:
    headers = {"Authorization": f"Bearer {token}", "x-ms-version": BLOB_API_VERSION,
               "x-ms-date": datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")}
    if method == "PUT":
        headers.update({"x-ms-blob-type": "BlockBlob", "Content-Type": content_type or "application/octet-stream",
                        "Content-Length": str(len(data or b""))})
    return urllib.request.Request(url, data=data, method=method, headers=headers)


def blob_get(url: str, dest: str) -> None:
    token = azure_token()

    def download() -> None:
        with urllib.request.urlopen(_blob_request("GET", url, token), timeout=60) as response, \
                open(dest, "wb") as out:
            shutil.copyfileobj(response, out, 1024 * 1024)

    _with_retries(f"GET {url}", download)


def blob_put(url: str, body: bytes, content_type: str) -> None:
    token = azure_token()

    def upload() -> None:
        with urllib.request.urlopen(_blob_request("PUT", url, token, body, content_type), timeout=60):
            pass

    _with_retries(f"PUT {url}", upload)


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
        import boto3  # noqa: F401 - only whether it is installed
    except ImportError:
        return False
    return True


def get(url: str, dest: str, region: str) -> None:
    if url.startswith("file://"):  # your own machine (infra/local_prepare.py): the package is on its disk already
        source = url[len("file://"):]
        if os.path.abspath(source) != os.path.abspath(dest):
            shutil.copyfile(source, dest)
        return
    azure = is_blob_url(url)
    if not azure:
        bucket, key = split_url(url)
    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=directory, prefix=".download-")
    os.close(handle)
    try:
        if azure:
            blob_get(url, partial)
        elif _has_boto3():
            _client(region).download_file(bucket, key, partial)
        else:
            subprocess.run(["aws", "s3", "cp", "--only-show-errors", "--region", region, url, partial], check=True)
        os.replace(partial, dest)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def step_cause(step: str) -> str:
    try:
        with open(f"{STATE_DIR}/{step}.json", encoding="utf-8") as handle:
            return " ".join(str(json.load(handle)["summary"]).split())
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def status_document(state: str, step: str, host_id: str, now: datetime.datetime, tail: str, cause: str = "") -> dict:
    return {"state": state, "step": step, "instance_id": host_id, "time": now.isoformat(timespec="seconds"),
            "log_tail": tail if state == "failed" else "", "log": LOG, "cause": cause}


def report(state: str, step: str, status_url: str, region: str) -> str:
    azure = is_blob_url(status_url)
    # Your own machine has no metadata service and no bucket to report to: its name, and the local file only.
    host_id = instance_id(azure) if status_url else os.uname().nodename
    document = status_document(state, step, host_id, datetime.datetime.now(datetime.timezone.utc), log_tail(LOG),
                               step_cause(step) if state == "failed" else "")
    body = json.dumps(document, indent=2).encode()
    os.makedirs(os.path.dirname(LOCAL_STATUS), exist_ok=True)
    with open(LOCAL_STATUS, "wb") as handle:
        handle.write(body)
    if not status_url:  # your own machine: nobody waits in a bucket, the prepare command reads the log itself
        return LOCAL_STATUS
    if azure:
        url = f"{status_url}{host_id}/bootstrap.json"
        blob_put(url, body, "application/json")
        return url
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
