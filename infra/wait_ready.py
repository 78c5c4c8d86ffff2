"""Waits on the deployer's machine until a new host reports its first-boot state in the bucket.

cloud-init on the host writes `hosts/<instance-id>/bootstrap.json` once it is ready or has failed; `pulumi up`
runs this module (through a pulumi-command local command) so that the stack finishes only with a usable host.
The host has no inbound port, so the bucket (AWS) or the blob container (Azure) is the only channel: polling
it with the deployer's credentials.

A `pulumi up` whose wait failed keeps no record of it (pulumi-command returns no partial state), so the next
`pulumi up` waits again. By then the status object may hold the failure that ended the last wait: a `failed`
report written before this wait began (by the storage service's clock) is the previous attempt's, and the wait
goes on until the host writes a newer one, which a rerun of the bootstrap on the host does (README: "If the
first boot fails"). A report written during the wait, ready or failed, ends it at once.

    python -m infra.wait_ready --bucket B --key hosts/i-0abc/bootstrap.json --region R --timeout-minutes 25
    python -m infra.wait_ready --account-url https://A.blob.core.windows.net --container models \
        --key hosts/<vm-id>/bootstrap.json --resource-group G --vm-name V --timeout-minutes 25
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any, Callable, Optional, Protocol, Sequence

from infra.bootstrap import HOST_BIN

BOOTSTRAP_LOG = "/var/log/deepracer-bootstrap.log"
RERUN_BOOTSTRAP = f"sudo {HOST_BIN}/bootstrap.sh"  # every step again; only a full run reports its outcome
PROGRESS_EVERY_S = 60.0
# A `failed` report older than this when the wait began is the previous attempt's. The margin covers a host that
# fails while the wait is starting (its report can precede the first read by seconds), not clock skew: both
# times come from the storage service.
STALE_AFTER_S = 120.0
# Azure: a role assignment made by this `pulumi up` may take minutes to reach the storage service; a 403 for
# want of a data role is waited out this long before it counts as final.
ROLE_PROPAGATION_S = 15 * 60.0

# S3 error codes that a later poll may not see again.
_TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "SlowDown", "RequestLimitExceeded", "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable", "PriorRequestNotComplete",
})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException", "InvalidToken",
    "TokenRefreshRequired", "InvalidClientTokenId", "UnrecognizedClientException",
})


class Outcome(Enum):
    READY = "ready"
    FAILED = "failed"  # the host reported a failed first boot
    TIMEOUT = "timeout"
    ERROR = "error"  # waiting cannot succeed: no access, no bucket, an unreadable status object


@dataclass(frozen=True)
class HostStatus:
    """The status object cloud-init writes (see cloudinit/)."""

    state: str
    instance_id: str
    step: str = ""
    time: str = ""
    log_tail: str = ""
    log: str = BOOTSTRAP_LOG
    cause: str = ""  # the failed step's own one line (the doctor's first failed check), when it left one


@dataclass(frozen=True)
class Report:
    """The status object as read: its bytes, and how old it was then by the storage service's own clock."""

    body: bytes
    age_s: Optional[float] = None  # the response's Date minus the object's Last-Modified; None if either is missing


@dataclass(frozen=True)
class WaitResult:
    outcome: Outcome
    elapsed_s: float
    status: Optional[HostStatus] = None  # TIMEOUT: the previous attempt's failure, if that was all there was
    error: str = ""  # ERROR: the one line to show; TIMEOUT: the last transient error seen, if any


class _Fatal(Exception):
    pass


class _Transient(Exception):
    pass


class _NotAuthorizedYet(_Transient):
    pass


def instance_id_from_key(key: str) -> str:
    """`hosts/<instance-id>/bootstrap.json` -> `<instance-id>`; the key itself if it has another shape."""
    parts = key.strip("/").split("/")
    return parts[-2] if len(parts) >= 2 else key


def parse_status(body: bytes, bucket: str, key: str) -> HostStatus:
    return _parse(body, f"s3://{bucket}/{key}", key)


def _parse(body: bytes, where: str, key: str) -> HostStatus:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _Fatal(f"status object {where} is not valid JSON ({error}); expected "
                     '{"state": "ready"|"failed", ...}') from None
    if not isinstance(data, dict):
        raise _Fatal(f"status object {where} is not a JSON object; expected "
                     '{"state": "ready"|"failed", ...}')
    state = data.get("state")
    if state not in (Outcome.READY.value, Outcome.FAILED.value):
        raise _Fatal(f"status object {where} has state {state!r}; expected 'ready' or 'failed'")

    def text(name: str, default: str = "") -> str:
        value = data.get(name)
        return default if value is None else str(value)

    return HostStatus(
        state=state,
        instance_id=text("instance_id") or instance_id_from_key(key),
        step=text("step"),
        time=text("time"),
        log_tail=text("log_tail"),
        log=text("log") or BOOTSTRAP_LOG,
        cause=" ".join(text("cause").split()),
    )


def _classify(error: Exception, bucket: str) -> Exception:
    """A boto3 error as LookupError (no object yet), _Transient (poll again) or _Fatal (stop now)."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        IncompleteReadError,
        SSLError,
    )

    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = err.get("Message") or code
        if code in _NOT_FOUND_CODES:
            return LookupError(code)
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return _Transient(f"{code or status}: {message}")
        if code == "NoSuchBucket":
            return _Fatal(f"bucket {bucket} does not exist (NoSuchBucket); check --bucket and --region")
        if code in _CREDENTIAL_CODES:
            return _Fatal(f"AWS rejected the deployer's credentials ({code}: {message}); "
                          "check AWS_PROFILE / `aws sts get-caller-identity`")
        if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
            return _Fatal(f"access denied reading s3://{bucket} ({code or status}): the deployer's credentials "
                          "need s3:GetObject and s3:ListBucket on the bucket; check AWS_PROFILE")
        return _Fatal(f"reading s3://{bucket} failed: {code or status}: {message}")
    if isinstance(error, SSLError):  # a certificate problem does not heal by waiting
        return _Fatal(f"TLS error talking to S3: {error}")
    if isinstance(error, (ConnectionError, HTTPClientError, IncompleteReadError)):
        return _Transient(str(error))
    if isinstance(error, BotoCoreError):  # no credentials, unknown profile, expired SSO token ...
        return _Fatal(f"cannot use the deployer's AWS credentials: {error}")
    return error


def age_s(last_modified: Optional[datetime], date_header: Optional[str]) -> Optional[float]:
    """Seconds between an object's Last-Modified and the response's Date header: both the service's clock."""
    if last_modified is None or not date_header:
        return None
    try:
        now = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    if now.tzinfo is None or last_modified.tzinfo is None:
        return None
    return max(0.0, (now - last_modified).total_seconds())


def _read(client: Any, bucket: str, key: str) -> Optional[Report]:
    """The object as read, or None while it does not exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.get_object(Bucket=bucket, Key=key)
        body = response["Body"].read()
    except (ClientError, BotoCoreError) as error:
        mapped = _classify(error, bucket)
        if isinstance(mapped, LookupError):
            return None
        raise mapped from None
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return Report(body, age_s(response.get("LastModified"), headers.get("date")))


def _minutes(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _print(line: str) -> None:
    print(line, flush=True)


class Store(Protocol):
    """Where the status object lives, read with the deployer's credentials."""

    service: str  # for messages: "S3", "Blob storage"

    def url(self, key: str) -> str: ...

    def read(self, key: str) -> Optional[Report]:
        """The object as read, None while it does not exist; raises _Fatal, _Transient or _NotAuthorizedYet."""

    def shell(self, instance_id: str) -> str:
        """The command that reaches the host's log without SSH."""


class S3Store:
    service = "S3"

    def __init__(self, client: Any, bucket: str, region: str = "") -> None:
        self.client, self.bucket, self.region = client, bucket, region

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def read(self, key: str) -> Optional[Report]:
        return _read(self.client, self.bucket, key)

    def shell(self, instance_id: str) -> str:
        return f"aws ssm start-session --target {instance_id} --region {self.region}"


class BlobStore:
    """A blob container through azure-storage-blob (a ContainerClient on the deployer's Azure login)."""

    service = "Blob storage"

    def __init__(self, container: Any, resource_group: str = "", vm_name: str = "") -> None:
        self.container, self.resource_group, self.vm_name = container, resource_group, vm_name

    def url(self, key: str) -> str:
        return f"{self.container.url.rstrip('/')}/{key}"

    def read(self, key: str) -> Optional[Report]:
        from infra import azure_blob

        dates: list[str] = []
        try:
            download = self.container.download_blob(
                key, raw_response_hook=lambda response: dates.append(response.http_response.headers.get("Date", "")))
            body = download.readall()
            return Report(body, age_s(download.properties.last_modified, dates[0] if dates else None))
        except Exception as error:  # the SDK's errors have no common base but Exception; classify sorts them
            mapped = azure_blob.classify(error, self.container.url)
            if isinstance(mapped, LookupError):
                return None
            if isinstance(mapped, azure_blob.NotAuthorizedYet):
                raise _NotAuthorizedYet(str(mapped)) from None
            if isinstance(mapped, azure_blob.Transient):
                raise _Transient(str(mapped)) from None
            if isinstance(mapped, azure_blob.Fatal):
                raise _Fatal(str(mapped)) from None
            raise

    def shell(self, instance_id: str) -> str:
        return (f"az vm run-command invoke -g {self.resource_group or '<resource group>'} -n "
                f"{self.vm_name or '<vm>'} --command-id RunShellScript --scripts 'tail -n 100 {BOOTSTRAP_LOG}'")


def wait_for_status(client: Any, bucket: str, key: str, timeout_s: float, interval_s: float,
                    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                    say: Callable[[str], None] = _print) -> WaitResult:
    """Polls s3://bucket/key until it holds a ready/failed status, or until timeout_s has passed."""
    return wait(S3Store(client, bucket), key, timeout_s, interval_s, clock=clock, sleep=sleep, say=say)


def wait(store: Store, key: str, timeout_s: float, interval_s: float,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
         say: Callable[[str], None] = _print, role_propagation_s: float = ROLE_PROPAGATION_S) -> WaitResult:
    """Polls the store's key until it holds a ready/failed status, or until timeout_s has passed.

    Always polls once more at the deadline, so a host that reports just in time is not missed. A `failed` report
    already there when the wait began is a previous attempt's: the wait goes on until a newer report.
    """
    start = clock()
    next_progress = start + PROGRESS_EVERY_S
    last_note: Optional[float] = None
    last_transient = ""
    first_report = True
    previous: Optional[Report] = None  # the previous attempt's failure, while it is all the store holds
    previous_status: Optional[HostStatus] = None
    while True:
        try:
            report = store.read(key)
            if report is not None and (previous is None or report.body != previous.body):
                status = _parse(report.body, store.url(key), key)
                if first_report and status.state == Outcome.FAILED.value and _before_wait(report, clock() - start):
                    previous, previous_status = report, status
                    say(_previous_failure(status, store))
                else:
                    return WaitResult(Outcome(status.state), clock() - start, status=status)
            first_report = first_report and report is None
        except _Fatal as error:
            return WaitResult(Outcome.ERROR, clock() - start, error=str(error))
        except _Transient as error:
            now = clock()
            if isinstance(error, _NotAuthorizedYet) and now - start >= role_propagation_s:
                return WaitResult(Outcome.ERROR, now - start, error=(
                    f"{error} after {_minutes(now - start)}; the deployer needs the role Storage Blob Data "
                    f"Reader (or Contributor) on the container, which `pulumi up` assigns: check `az account show` "
                    f"is the account that ran it"))
            last_transient = str(error)
            if last_note is None or now - last_note >= PROGRESS_EVERY_S:
                say(f"{store.service} not answering yet ({last_transient}); still waiting")
                last_note = now
        now = clock()
        elapsed = now - start
        if elapsed >= timeout_s:
            return WaitResult(Outcome.TIMEOUT, elapsed, status=previous_status, error=last_transient)
        if now >= next_progress:
            say(f"waiting for the host to report in {store.url(key)}: "
                f"{_minutes(elapsed)} of {_minutes(timeout_s)}")
            while next_progress <= now:
                next_progress += PROGRESS_EVERY_S
        sleep(max(0.0, min(interval_s, timeout_s - elapsed)))


def _before_wait(report: Report, elapsed_s: float) -> bool:
    """Whether the object was written more than STALE_AFTER_S before the wait began."""
    return report.age_s is not None and report.age_s - elapsed_s > STALE_AFTER_S


def _previous_failure(status: HostStatus, store: Store) -> str:
    when = f" at {status.time}" if status.time else ""
    return (f"host {status.instance_id} reported a failed first boot{when} (step {status.step or '(unknown)'}), "
            f"before this wait began; waiting for a newer report. Fix the cause, then rerun the whole bootstrap on "
            f"the host: {RERUN_BOOTSTRAP} ({store.shell(status.instance_id)})")


def render(result: WaitResult, bucket: str, key: str, region: str, timeout_s: float) -> tuple[int, str, str]:
    """(exit code, stdout text, stderr text) for a result on S3; pure, so every message is testable."""
    return render_result(result, S3Store(None, bucket, region), key, timeout_s)


def render_result(result: WaitResult, store: Store, key: str, timeout_s: float) -> tuple[int, str, str]:
    """(exit code, stdout text, stderr text) for a result; pure, so every message is testable."""
    if result.outcome is Outcome.READY:
        status = result.status
        assert status is not None
        when = status.time or "time not reported"
        return 0, f"host {status.instance_id} is ready ({when})\n", ""
    if result.outcome is Outcome.FAILED:
        status = result.status
        assert status is not None
        where = f"see {status.log} on the host ({store.shell(status.instance_id)})\n"
        step = status.step or "(unknown)"
        head = (f"host {status.instance_id} failed at step {step}: {status.cause}\n{where}" if status.cause
                else f"host {status.instance_id} failed at step {step}; {where}")
        tail = status.log_tail.rstrip("\n")
        return 1, "", head + (f"--- last lines of {status.log} ---\n{tail}\n" if tail else "")
    if result.outcome is Outcome.TIMEOUT and result.status is not None:
        status = result.status
        tail = status.log_tail.rstrip("\n")
        head = (f"timed out after {_minutes(timeout_s)} waiting for a newer report than host {status.instance_id}'s "
                f"failed first boot (step {status.step or '(unknown)'}{', ' + status.time if status.time else ''}); "
                f"fix the cause, then rerun the whole bootstrap on the host: {RERUN_BOOTSTRAP} "
                f"({store.shell(status.instance_id)}), and `pulumi up` again\n")
        return 1, "", head + (f"--- last lines of {status.log} ---\n{tail}\n" if tail else "")
    if result.outcome is Outcome.TIMEOUT:
        instance_id = instance_id_from_key(key)
        last = f"; last {store.service} error: {result.error}" if result.error else ""
        return 1, "", (f"timed out after {_minutes(timeout_s)} waiting for the host to report in {store.url(key)}; "
                       f"read {BOOTSTRAP_LOG} on the host ({store.shell(instance_id)}){last}\n")
    return 1, "", f"cannot wait for the host: {result.error}\n"


def make_client(region: str, endpoint_url: Optional[str] = None) -> Any:
    """An S3 client on the standard credential chain (AWS_PROFILE included).

    Retries are ours (the poll loop), so botocore's are off: a refused connection should cost one attempt,
    not a hidden back-off inside a poll.
    """
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=20)
    return boto3.session.Session().client("s3", region_name=region, endpoint_url=endpoint_url, config=config)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra.wait_ready",
        description="Wait until a new host reports ready (or failed) in the bucket or blob container.")
    parser.add_argument("--key", required=True, help="hosts/<instance-id>/bootstrap.json")
    parser.add_argument("--timeout-minutes", type=float, required=True)
    parser.add_argument("--interval-seconds", type=float, default=10.0)
    aws = parser.add_argument_group("AWS: the status object in an S3 bucket")
    aws.add_argument("--bucket")
    aws.add_argument("--region")
    aws.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint (tests)")
    azure = parser.add_argument_group("Azure: the status blob in a container")
    azure.add_argument("--account-url", help="https://<account>.blob.core.windows.net")
    azure.add_argument("--container")
    azure.add_argument("--resource-group", default="", help="the VM's resource group (for the hint on failure)")
    azure.add_argument("--vm-name", default="", help="the VM's name (for the hint on failure)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.bucket is None) == (args.account_url is None):
        parser.error("give either --bucket and --region (AWS) or --account-url and --container (Azure)")
    if args.bucket is not None and not args.region:
        parser.error("--bucket needs --region")
    if args.account_url is not None and not args.container:
        parser.error("--account-url needs --container")
    if args.timeout_minutes <= 0 or args.interval_seconds <= 0:
        print("--timeout-minutes and --interval-seconds must be positive", file=sys.stderr)
        return 2
    timeout_s = args.timeout_minutes * 60
    if args.bucket is not None:
        from botocore.exceptions import BotoCoreError

        try:
            client = make_client(args.region, args.endpoint_url)
        except BotoCoreError as error:  # e.g. ProfileNotFound: one line, no traceback
            print(f"cannot use the deployer's AWS credentials: {error}", file=sys.stderr)
            return 1
        store: Store = S3Store(client, args.bucket, args.region)
    else:
        from infra.azure_blob import container_client

        store = BlobStore(container_client(args.account_url, args.container), args.resource_group, args.vm_name)
    result = wait(store, args.key, timeout_s, args.interval_seconds)
    code, out, err = render_result(result, store, args.key, timeout_s)
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main())
