"""The readiness waiter against a real S3 API over HTTP (moto's server), with a fake clock: no real waiting."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable, Optional

import pytest
from botocore.exceptions import NoCredentialsError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from infra import wait_ready
from infra.wait_ready import Outcome, main, make_client, render, wait, wait_for_status

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
INSTANCE_ID = "i-0abc123def4567890"
KEY = f"hosts/{INSTANCE_ID}/bootstrap.json"
READY = {"state": "ready", "step": "done", "instance_id": INSTANCE_ID, "time": "2026-11-25T01:02:03Z",
         "log_tail": "", "log": "/var/log/deepracer-bootstrap.log"}
FAILED = {"state": "failed", "step": "pull-image", "instance_id": INSTANCE_ID, "time": "2026-11-25T01:02:03Z",
          "log_tail": "docker: Error response from daemon: manifest unknown\nstep pull-image failed (exit 1)\n",
          "log": "/var/log/deepracer-bootstrap.log"}


class FakeTime:
    """clock/sleep pair: sleeping advances the clock at once; `on_sleep` runs after each sleep."""

    def __init__(self, on_sleep: Optional[Callable[["FakeTime"], None]] = None) -> None:
        self.now = 5000.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self)


class CountingClient:
    """Delegates to a real client and counts the polls."""

    def __init__(self, client) -> None:
        self.client = client
        self.polls = 0

    def get_object(self, **kwargs):
        self.polls += 1
        return self.client.get_object(**kwargs)


@pytest.fixture
def s3(s3_server):
    return make_client(REGION, s3_server)


@pytest.fixture
def bucket(s3) -> str:
    name = f"wait-ready-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def put(s3, bucket: str, body) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    s3.put_object(Bucket=bucket, Key=KEY, Body=data)


def cli_args(bucket: str, endpoint: str, timeout_minutes: str = "1") -> list[str]:
    return ["--bucket", bucket, "--key", KEY, "--region", REGION, "--timeout-minutes", timeout_minutes,
            "--interval-seconds", "5", "--endpoint-url", endpoint]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- ready and failed ---------------------------------------------------------------------------------------

def test_ready_object_exits_zero_with_one_line(s3, s3_server, bucket, capsys):
    put(s3, bucket, READY)
    assert main(cli_args(bucket, s3_server)) == 0
    out, err = capsys.readouterr()
    assert out == f"host {INSTANCE_ID} is ready (2026-11-25T01:02:03Z)\n"
    assert err == ""


def test_ready_result_carries_the_status(s3, bucket):
    put(s3, bucket, READY)
    fake = FakeTime()
    result = wait_for_status(s3, bucket, KEY, 600, 10, clock=fake.clock, sleep=fake.sleep)
    assert result.outcome is Outcome.READY
    assert result.status.instance_id == INSTANCE_ID and result.status.time == "2026-11-25T01:02:03Z"
    assert fake.sleeps == []


def test_failed_object_names_the_step_and_prints_the_log_tail(s3, s3_server, bucket, capsys):
    put(s3, bucket, FAILED)
    assert main(cli_args(bucket, s3_server)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == (f"host {INSTANCE_ID} failed at step pull-image; see /var/log/deepracer-bootstrap.log on the "
                        f"host (aws ssm start-session --target {INSTANCE_ID} --region {REGION})")
    assert "docker: Error response from daemon: manifest unknown" in lines
    assert lines[-1] == "step pull-image failed (exit 1)"


def test_failed_is_final_even_with_time_left(s3, bucket):
    put(s3, bucket, FAILED)
    fake = FakeTime()
    result = wait_for_status(s3, bucket, KEY, 600, 10, clock=fake.clock, sleep=fake.sleep)
    assert result.outcome is Outcome.FAILED and result.status.step == "pull-image"
    assert fake.sleeps == []


# -- waiting ------------------------------------------------------------------------------------------------

def test_missing_object_is_polled_until_the_timeout(s3, bucket):
    fake = FakeTime()
    client = CountingClient(s3)
    said: list[str] = []
    result = wait_for_status(client, bucket, KEY, 300, 10, clock=fake.clock, sleep=fake.sleep, say=said.append)
    assert result.outcome is Outcome.TIMEOUT
    assert result.elapsed_s == 300
    assert sum(fake.sleeps) == 300 and max(fake.sleeps) == 10
    assert client.polls == 31  # t = 0, 10, ..., 300: one last look at the deadline
    # Progress about once a minute, as lines (pulumi shows stdout line by line).
    assert said == [f"waiting for the host to report in s3://{bucket}/{KEY}: {m}m00s of 5m00s" for m in (1, 2, 3, 4)]


def test_last_sleep_is_cut_to_the_deadline(s3, bucket):
    fake = FakeTime()
    result = wait_for_status(s3, bucket, KEY, 25, 10, clock=fake.clock, sleep=fake.sleep, say=lambda _: None)
    assert result.outcome is Outcome.TIMEOUT
    assert fake.sleeps == [10, 10, 5]


def test_timeout_message_names_the_timeout_object_and_log(s3, bucket):
    fake = FakeTime()
    result = wait_for_status(s3, bucket, KEY, 1200, 15, clock=fake.clock, sleep=fake.sleep, say=lambda _: None)
    code, out, err = render(result, bucket, KEY, REGION, 1200)
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert "timed out after 20m00s" in err
    assert f"s3://{bucket}/{KEY}" in err
    assert "/var/log/deepracer-bootstrap.log" in err
    assert f"aws ssm start-session --target {INSTANCE_ID} --region {REGION}" in err


def test_object_written_mid_wait_is_picked_up_by_the_next_poll(s3, bucket):
    def host_reports_after_three_sleeps(fake: FakeTime) -> None:
        if len(fake.sleeps) == 3:
            put(s3, bucket, READY)

    fake = FakeTime(on_sleep=host_reports_after_three_sleeps)
    client = CountingClient(s3)
    result = wait_for_status(client, bucket, KEY, 600, 20, clock=fake.clock, sleep=fake.sleep, say=lambda _: None)
    assert result.outcome is Outcome.READY
    assert result.elapsed_s == 60
    assert client.polls == 4


# -- errors that end the wait at once ------------------------------------------------------------------------

def test_missing_bucket_fails_at_once_with_one_clear_line(s3, s3_server, capsys):
    name = f"no-such-{uuid.uuid4().hex[:12]}"
    fake = FakeTime()
    result = wait_for_status(s3, name, KEY, 600, 10, clock=fake.clock, sleep=fake.sleep)
    assert result.outcome is Outcome.ERROR
    assert fake.sleeps == []
    assert name in result.error and "NoSuchBucket" in result.error

    assert main(cli_args(name, s3_server)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"bucket {name} does not exist" in err


@pytest.mark.parametrize("body, expected", [
    (b'{"state": "ready", ', "is not valid JSON"),
    (b"\xff\xfe not utf-8", "is not valid JSON"),
    (b'["ready"]', "is not a JSON object"),
    (b'{"state": "booting"}', "has state 'booting'; expected 'ready' or 'failed'"),
    (b'{"step": "done"}', "has state None"),
])
def test_unreadable_status_fails_naming_the_key(s3, s3_server, bucket, capsys, body, expected):
    put(s3, bucket, body)
    fake = FakeTime()
    result = wait_for_status(s3, bucket, KEY, 600, 10, clock=fake.clock, sleep=fake.sleep)
    assert result.outcome is Outcome.ERROR and fake.sleeps == []
    assert f"s3://{bucket}/{KEY}" in result.error and expected in result.error

    assert main(cli_args(bucket, s3_server)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and KEY in err and "Traceback" not in err


def stubbed(code: str, status: int, times: int = 1):
    client = make_client(REGION, "http://127.0.0.1:9")  # never contacted: the stubber answers
    stubber = Stubber(client)
    for _ in range(times):
        stubber.add_client_error("get_object", service_error_code=code, service_message=f"{code} from S3",
                                 http_status_code=status)
    stubber.activate()
    return client, stubber


@pytest.mark.parametrize("code, status, expected", [
    ("AccessDenied", 403, "access denied reading s3://b"),
    ("InvalidAccessKeyId", 403, "AWS rejected the deployer's credentials (InvalidAccessKeyId"),
    ("SignatureDoesNotMatch", 403, "AWS rejected the deployer's credentials (SignatureDoesNotMatch"),
    ("ExpiredToken", 400, "AWS rejected the deployer's credentials (ExpiredToken"),
    ("NoSuchBucket", 404, "bucket b does not exist"),
])
def test_access_and_credential_errors_fail_at_once(code, status, expected):
    client, _ = stubbed(code, status)
    fake = FakeTime()
    result = wait_for_status(client, "b", KEY, 600, 10, clock=fake.clock, sleep=fake.sleep)
    assert result.outcome is Outcome.ERROR and fake.sleeps == []
    assert expected in result.error
    code_, out, err = render(result, "b", KEY, REGION, 600)
    assert code_ == 1 and err.count("\n") == 1


def test_no_credentials_at_all_fails_at_once():
    class NoCredentials:
        def get_object(self, **kwargs):
            raise NoCredentialsError()

    fake = FakeTime()
    result = wait_for_status(NoCredentials(), "b", KEY, 600, 10, clock=fake.clock, sleep=fake.sleep)
    assert result.outcome is Outcome.ERROR and fake.sleeps == []
    assert "credentials" in result.error


# -- transient errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("code, status", [("SlowDown", 503), ("InternalError", 500), ("Throttling", 400)])
def test_throttling_and_server_errors_are_waited_out(code, status):
    client, stubber = stubbed(code, status, times=3)
    body = json.dumps(READY).encode()
    stubber.add_response("get_object", {"Body": StreamingBody(io.BytesIO(body), len(body))},
                         {"Bucket": "b", "Key": KEY})
    fake = FakeTime()
    said: list[str] = []
    result = wait_for_status(client, "b", KEY, 600, 10, clock=fake.clock, sleep=fake.sleep, say=said.append)
    assert result.outcome is Outcome.READY
    assert fake.sleeps == [10, 10, 10]
    assert said == [f"S3 not answering yet ({code}: {code} from S3); still waiting"]  # once, not per poll
    stubber.assert_no_pending_responses()


def test_unreachable_endpoint_is_transient_until_the_timeout():
    client = make_client(REGION, f"http://127.0.0.1:{closed_port()}")
    fake = FakeTime()
    said: list[str] = []
    result = wait_for_status(client, "b", KEY, 300, 10, clock=fake.clock, sleep=fake.sleep, say=said.append)
    assert result.outcome is Outcome.TIMEOUT
    assert sum(fake.sleeps) == 300
    notes = [line for line in said if line.startswith("S3 not answering yet")]
    assert len(notes) == 6  # t = 0, 60, ..., 300: at most once a minute, though polled every 10 s
    assert "Could not connect to the endpoint URL" in notes[0]
    code, _, err = render(result, "b", KEY, REGION, 300)
    assert code == 1 and err.count("\n") == 1
    assert "timed out after 5m00s" in err and "last S3 error: Could not connect" in err


# -- a later `pulumi up` after a failed first boot ---------------------------------------------------------------

RERUN = "sudo /opt/deepracer/bin/bootstrap.sh"
SSM = f"aws ssm start-session --target {INSTANCE_ID} --region {REGION}"
FAILED_AGAIN = {**FAILED, "step": "simapp-image", "time": "2026-11-25T02:10:00Z", "log_tail": "pull access denied\n"}
READY_LATER = {**READY, "time": "2026-11-25T02:20:00Z"}


class WrittenEarlier(CountingClient):
    """Real S3 answers, with every object's Last-Modified moved back: as if written `minutes` before it was."""

    def __init__(self, client, minutes: float) -> None:
        super().__init__(client)
        self.minutes = minutes

    def get_object(self, **kwargs):
        import datetime

        response = super().get_object(**kwargs)
        response["LastModified"] -= datetime.timedelta(minutes=self.minutes)
        return response


def test_a_failure_from_before_the_wait_waits_for_the_rerun_bootstrap_to_report_ready(s3, bucket):
    put(s3, bucket, FAILED)

    def rerun_reports_after_three_sleeps(fake: FakeTime) -> None:
        if len(fake.sleeps) == 3:
            put(s3, bucket, READY_LATER)

    fake = FakeTime(on_sleep=rerun_reports_after_three_sleeps)
    said: list[str] = []
    store = wait_ready.S3Store(WrittenEarlier(s3, 30), bucket, REGION)
    result = wait(store, KEY, 2700, 10, clock=fake.clock, sleep=fake.sleep, say=said.append)
    assert result.outcome is Outcome.READY and result.status.time == "2026-11-25T02:20:00Z"
    assert result.elapsed_s == 30
    assert said == [f"host {INSTANCE_ID} reported a failed first boot at 2026-11-25T01:02:03Z (step pull-image), "
                    f"before this wait began; waiting for a newer report. Fix the cause, then rerun the whole "
                    f"bootstrap on the host: {RERUN} ({SSM})"]


def test_a_rerun_that_fails_again_ends_the_wait_with_its_own_failure(s3, bucket):
    put(s3, bucket, FAILED)

    def rerun_fails_after_two_sleeps(fake: FakeTime) -> None:
        if len(fake.sleeps) == 2:
            put(s3, bucket, FAILED_AGAIN)

    fake = FakeTime(on_sleep=rerun_fails_after_two_sleeps)
    client = WrittenEarlier(s3, 30)
    result = wait_for_status(client, bucket, KEY, 2700, 10, clock=fake.clock, sleep=fake.sleep, say=lambda _: None)
    assert result.outcome is Outcome.FAILED and result.status.step == "simapp-image"
    assert client.polls == 3
    code, _, err = render(result, bucket, KEY, REGION, 2700)
    assert code == 1 and err.splitlines()[0].startswith(f"host {INSTANCE_ID} failed at step simapp-image; ")


def test_only_the_old_failure_times_out_saying_how_to_retry(s3, bucket):
    put(s3, bucket, FAILED)
    fake = FakeTime()
    client = WrittenEarlier(s3, 30)
    said: list[str] = []
    result = wait_for_status(client, bucket, KEY, 300, 10, clock=fake.clock, sleep=fake.sleep, say=said.append)
    assert result.outcome is Outcome.TIMEOUT and client.polls == 31
    assert result.status.step == "pull-image"
    assert len([line for line in said if line.startswith(f"host {INSTANCE_ID} reported a failed")]) == 1
    code, out, err = render(result, bucket, KEY, REGION, 300)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"timed out after 5m00s waiting for a newer report than host {INSTANCE_ID}'s failed first boot "
        f"(step pull-image, 2026-11-25T01:02:03Z); fix the cause, then rerun the whole bootstrap on the host: "
        f"{RERUN} ({SSM}), and `pulumi up` again",
        "--- last lines of /var/log/deepracer-bootstrap.log ---",
        "docker: Error response from daemon: manifest unknown",
        "step pull-image failed (exit 1)"]


@pytest.mark.parametrize("minutes", [0, 1.5])
def test_a_failure_written_as_the_wait_starts_is_this_hosts_and_ends_it(s3, bucket, minutes):
    """The first `pulumi up`: a host that fails while the wait is starting reports just before the first read."""
    put(s3, bucket, FAILED)
    result = wait_for_status(WrittenEarlier(s3, minutes), bucket, KEY, 2700, 10, sleep=pytest.fail)
    assert result.outcome is Outcome.FAILED


def test_a_failure_during_the_wait_ends_it_however_long_it_took(s3, bucket):
    def fails_after_four_sleeps(fake: FakeTime) -> None:
        if len(fake.sleeps) == 4:
            put(s3, bucket, FAILED)

    fake = FakeTime(on_sleep=fails_after_four_sleeps)
    result = wait_for_status(s3, bucket, KEY, 2700, 300, clock=fake.clock, sleep=fake.sleep, say=lambda _: None)
    assert result.outcome is Outcome.FAILED and result.elapsed_s == 1200


def test_a_host_that_became_ready_before_the_wait_is_ready(s3, bucket):
    put(s3, bucket, READY)
    result = wait_for_status(WrittenEarlier(s3, 600), bucket, KEY, 2700, 10, sleep=pytest.fail)
    assert result.outcome is Outcome.READY


def test_the_age_is_the_storage_services_own():
    import datetime

    written = datetime.datetime(2026, 11, 25, 1, 0, 0, tzinfo=datetime.timezone.utc)
    assert wait_ready.age_s(written, "Wed, 25 Nov 2026 01:30:00 GMT") == 1800
    assert wait_ready.age_s(written, None) is None and wait_ready.age_s(None, "Wed, 25 Nov 2026 01:30:00 GMT") is None
    assert wait_ready.age_s(written, "not a date") is None


# -- the command line ---------------------------------------------------------------------------------------

def test_bad_arguments_exit_two(capsys):
    assert main(["--bucket", "b", "--key", KEY, "--region", REGION, "--timeout-minutes", "0"]) == 2
    with pytest.raises(SystemExit) as exit_:
        main(["--bucket", "b"])
    assert exit_.value.code == 2


def test_python_dash_m_entry_point(s3, s3_server, bucket):
    put(s3, bucket, READY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    proc = subprocess.run([sys.executable, "-m", "infra.wait_ready", *cli_args(bucket, s3_server)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"host {INSTANCE_ID} is ready (2026-11-25T01:02:03Z)\n"


def test_boto3_is_imported_lazily():
    proc = subprocess.run([sys.executable, "-c", "import sys, infra.wait_ready; print('boto3' in sys.modules)"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


def test_status_without_instance_id_falls_back_to_the_key():
    status = wait_ready.parse_status(b'{"state": "ready"}', "b", KEY)
    assert status.instance_id == INSTANCE_ID and status.log == "/var/log/deepracer-bootstrap.log"


# -- Azure: the status blob in a container, read with azure-storage-blob (Azurite over HTTPS) -------------------

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError  # noqa: E402 - with the Azure tests that use it

from infra import blob_upload  # noqa: E402 - with the Azure tests that use it
from infra.wait_ready import BlobStore, render_result  # noqa: E402 - with the Azure tests that use it
from tests.azure_fakes import VM_ID  # noqa: E402 - with the Azure tests that use it

BLOB_KEY = f"hosts/{VM_ID}/bootstrap.json"
AZ_READY = {**READY, "instance_id": VM_ID}
AZ_FAILED = {**FAILED, "instance_id": VM_ID}


@pytest.fixture
def container(azurite):
    return azurite.new_container()


def put_blob(container, body) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    container.upload_blob(BLOB_KEY, data, overwrite=True)


class Refusing:
    """A container whose reads (and uploads) raise the given errors first, then go to the real one."""

    def __init__(self, real, errors: list[Exception]) -> None:
        self.real, self.errors, self.url = real, list(errors), real.url

    def download_blob(self, key, **kwargs):
        if self.errors:
            raise self.errors.pop(0)
        return self.real.download_blob(key, **kwargs)

    def upload_blob(self, *args, **kwargs):
        if self.errors:
            raise self.errors.pop(0)
        return self.real.upload_blob(*args, **kwargs)


def storage_error(status: int, code: str) -> HttpResponseError:
    error = HttpResponseError(message=f"{code} from storage")
    error.status_code, error.error_code = status, code
    return error


def test_blob_ready_is_picked_up_mid_wait(container):
    def host_reports_after_two_sleeps(fake: FakeTime) -> None:
        if len(fake.sleeps) == 2:
            put_blob(container, AZ_READY)

    fake = FakeTime(on_sleep=host_reports_after_two_sleeps)
    result = wait(BlobStore(container), BLOB_KEY, 600, 10, clock=fake.clock, sleep=fake.sleep, say=lambda _: None)
    assert result.outcome is Outcome.READY and result.status.instance_id == VM_ID
    assert render_result(result, BlobStore(container), BLOB_KEY, 600)[1] == \
        f"host {VM_ID} is ready (2026-11-25T01:02:03Z)\n"


def test_blob_failed_names_the_step_and_how_to_read_the_log(container):
    put_blob(container, AZ_FAILED)
    store = BlobStore(container, "deepracer-host1a2b3c4", "host1a2b3c4")
    result = wait(store, BLOB_KEY, 600, 10, sleep=pytest.fail)
    code, out, err = render_result(result, store, BLOB_KEY, 600)
    assert code == 1 and out == ""
    assert err.splitlines()[0] == (
        f"host {VM_ID} failed at step pull-image; see /var/log/deepracer-bootstrap.log on the host (az vm "
        "run-command invoke -g deepracer-host1a2b3c4 -n host1a2b3c4 --command-id RunShellScript --scripts "
        "'tail -n 100 /var/log/deepracer-bootstrap.log')")
    assert err.splitlines()[-1] == "step pull-image failed (exit 1)"


def test_blob_missing_is_polled_until_the_timeout(container):
    fake = FakeTime()
    said: list[str] = []
    store = BlobStore(container)
    result = wait(store, BLOB_KEY, 120, 10, clock=fake.clock, sleep=fake.sleep, say=said.append)
    assert result.outcome is Outcome.TIMEOUT and sum(fake.sleeps) == 120
    assert said == [f"waiting for the host to report in {container.url}/{BLOB_KEY}: 1m00s of 2m00s"]
    code, _, err = render_result(result, store, BLOB_KEY, 120)
    assert code == 1 and err.count("\n") == 1 and "timed out after 2m00s" in err


def test_missing_container_fails_at_once(azurite):
    store = BlobStore(azurite.container("no-such-container"))
    result = wait(store, BLOB_KEY, 600, 10, sleep=pytest.fail)
    assert result.outcome is Outcome.ERROR
    assert result.error == f"container {store.container.url} does not exist; check the stack's storage outputs"


def test_unreadable_status_blob_is_named(container):
    put_blob(container, b'{"state": "booting"}')
    result = wait(BlobStore(container), BLOB_KEY, 600, 10, sleep=pytest.fail)
    assert result.outcome is Outcome.ERROR
    assert f"status object {container.url}/{BLOB_KEY} has state 'booting'" in result.error


def test_a_new_role_assignment_is_waited_for(container):
    put_blob(container, AZ_READY)
    refusing = Refusing(container, [storage_error(403, "AuthorizationPermissionMismatch")] * 3)
    fake = FakeTime()
    said: list[str] = []
    result = wait(BlobStore(refusing), BLOB_KEY, 600, 10, clock=fake.clock, sleep=fake.sleep, say=said.append)
    assert result.outcome is Outcome.READY and fake.sleeps == [10, 10, 10]
    assert len(said) == 1 and said[0].startswith("Blob storage not answering yet (AuthorizationPermissionMismatch")


def test_a_role_that_never_arrives_ends_the_wait_with_what_to_check(container):
    refusing = Refusing(container, [storage_error(403, "AuthorizationPermissionMismatch")] * 100)
    fake = FakeTime()
    result = wait(BlobStore(refusing), BLOB_KEY, 3600, 30, clock=fake.clock, sleep=fake.sleep, say=lambda _: None,
                  role_propagation_s=900)
    assert result.outcome is Outcome.ERROR and result.elapsed_s == 900
    assert "Storage Blob Data Reader (or Contributor)" in result.error and "az account show" in result.error


@pytest.mark.parametrize("error, expected", [
    (ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token\nmore lines"),
     "cannot get an Azure token for the deployer (DefaultAzureCredential failed to retrieve a token); run `az login`"),
    (storage_error(403, "AuthorizationSourceIPMismatch"), "access denied to "),
])
def test_credential_and_access_errors_fail_at_once(container, error, expected):
    result = wait(BlobStore(Refusing(container, [error])), BLOB_KEY, 600, 10, sleep=pytest.fail)
    assert result.outcome is Outcome.ERROR and expected in result.error
    assert "\n" not in result.error


@pytest.mark.parametrize("status, code", [(503, "ServerBusy"), (500, "InternalError"), (429, "")])
def test_busy_storage_is_waited_out(container, status, code):
    put_blob(container, AZ_READY)
    fake = FakeTime()
    result = wait(BlobStore(Refusing(container, [storage_error(status, code)] * 2)), BLOB_KEY, 600, 10,
                  clock=fake.clock, sleep=fake.sleep, say=lambda _: None)
    assert result.outcome is Outcome.READY and fake.sleeps == [10, 10]


def azure_cli_env(azure_imds, azure_cert) -> dict[str, str]:
    """The deployer's environment with no Azure login but the stand-in IMDS: DefaultAzureCredential finds a
    managed identity there, as it would on a CI runner in Azure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    env.update(AZURE_POD_IDENTITY_AUTHORITY_HOST=azure_imds.url, REQUESTS_CA_BUNDLE=str(azure_cert[0]),
               HOME=str(Path(azure_cert[0]).parent))  # no ~/.azure of the machine's user
    return env


def test_python_dash_m_waits_on_azure_with_default_azure_credential(container, azurite, azure_imds, azure_cert):
    put_blob(container, AZ_READY)
    proc = subprocess.run(
        [sys.executable, "-m", "infra.wait_ready", "--account-url", azurite.url, "--container",
         container.container_name, "--key", BLOB_KEY, "--timeout-minutes", "1", "--interval-seconds", "1"],
        cwd=REPO_ROOT, env=azure_cli_env(azure_imds, azure_cert), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"host {VM_ID} is ready (2026-11-25T01:02:03Z)\n"
    assert azure_imds.token_requests and azure_imds.token_requests[-1]["resource"] == "https://storage.azure.com"


@pytest.mark.parametrize("args", [
    ["--key", KEY, "--timeout-minutes", "1"],
    ["--bucket", "b", "--account-url", "https://a.blob.core.windows.net", "--container", "c", "--region", "r",
     "--key", KEY, "--timeout-minutes", "1"],
    ["--account-url", "https://a.blob.core.windows.net", "--key", KEY, "--timeout-minutes", "1"],
])
def test_one_store_must_be_named(args):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2


def test_azure_sdk_is_imported_lazily():
    proc = subprocess.run([sys.executable, "-c", "import sys, infra.wait_ready, infra.azure_blob; "
                           "print(any(m.startswith('azure.') for m in sys.modules))"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


class BlobWrittenEarlier(Refusing):
    """Azurite's answers, with the blob's Last-Modified moved back by `minutes`."""

    def __init__(self, real, minutes: float) -> None:
        super().__init__(real, [])
        self.minutes = minutes

    def download_blob(self, key, **kwargs):
        import datetime

        download = super().download_blob(key, **kwargs)
        download.properties.last_modified -= datetime.timedelta(minutes=self.minutes)
        return download


def test_blob_age_comes_from_azurites_headers(container):
    put_blob(container, AZ_READY)
    report = BlobStore(container).read(BLOB_KEY)
    assert report.body == json.dumps(AZ_READY).encode()
    assert report.age_s is not None and 0 <= report.age_s < 60


def test_blob_failure_from_before_the_wait_waits_for_the_rerun(container):
    put_blob(container, AZ_FAILED)

    def rerun_reports_after_two_sleeps(fake: FakeTime) -> None:
        if len(fake.sleeps) == 2:
            put_blob(container, {**AZ_READY, "time": "2026-11-25T02:20:00Z"})

    fake = FakeTime(on_sleep=rerun_reports_after_two_sleeps)
    store = BlobStore(BlobWrittenEarlier(container, 30), "deepracer-host1a2b3c4", "host1a2b3c4")
    said: list[str] = []
    result = wait(store, BLOB_KEY, 2700, 10, clock=fake.clock, sleep=fake.sleep, say=said.append)
    assert result.outcome is Outcome.READY and result.status.time == "2026-11-25T02:20:00Z"
    assert len(said) == 1 and said[0].endswith(
        f"{RERUN} (az vm run-command invoke -g deepracer-host1a2b3c4 -n host1a2b3c4 --command-id RunShellScript "
        "--scripts 'tail -n 100 /var/log/deepracer-bootstrap.log')")


# -- the session package's upload (infra/blob_upload.py) ---------------------------------------------------------

def test_upload_writes_the_package(container):
    blob_upload.upload(container, "bootstrap/session.tar.gz", b"package v1", sleep=pytest.fail)
    blob_upload.upload(container, "bootstrap/session.tar.gz", b"package v2", sleep=pytest.fail)
    blob = container.download_blob("bootstrap/session.tar.gz")
    assert blob.readall() == b"package v2"
    assert blob.properties.content_settings.content_type == "application/gzip"


def test_upload_waits_for_the_new_role_then_gives_up_with_one_line(container):
    fake = FakeTime()
    refusing = Refusing(container, [storage_error(403, "AuthorizationPermissionMismatch")] * 2)
    said: list[str] = []
    blob_upload.upload(refusing, "p", b"x", clock=fake.clock, sleep=fake.sleep, say=said.append)
    assert container.download_blob("p").readall() == b"x" and len(said) == 1

    never = Refusing(container, [storage_error(403, "AuthorizationPermissionMismatch")] * 1000)
    with pytest.raises(Exception) as raised:
        blob_upload.upload(never, "p", b"x", patience_s=300, interval_s=15, clock=fake.clock, sleep=fake.sleep,
                           say=lambda _: None)
    assert "AuthorizationPermissionMismatch" in str(raised.value) and "still after 300 s" in str(raised.value)


def test_python_dash_m_upload_with_default_azure_credential(container, azurite, azure_imds, azure_cert, tmp_path):
    package = tmp_path / "session.tar.gz"
    package.write_bytes(os.urandom(50_000))
    proc = subprocess.run(
        [sys.executable, "-m", "infra.blob_upload", "--account-url", azurite.url, "--container",
         container.container_name, "--blob", "bootstrap/session.tar.gz", "--file", str(package)],
        cwd=REPO_ROOT, env=azure_cli_env(azure_imds, azure_cert), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"uploaded {container.url}/bootstrap/session.tar.gz (50000 bytes, sha256 ")
    assert container.download_blob("bootstrap/session.tar.gz").readall() == package.read_bytes()


def test_upload_of_a_missing_file_is_one_line(tmp_path, capsys):
    assert blob_upload.main(["--account-url", "https://a.blob.core.windows.net", "--container", "c", "--blob", "b",
                             "--file", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err == f"cannot read {tmp_path / 'nope'}: No such file or directory\n"


def test_python_dash_m_upload_of_the_cost_settings_text(container, azurite, azure_imds, azure_cert):
    # What the stack's cost-settings command runs (infra/azure.py): the JSON given on the command line.
    proc = subprocess.run(
        [sys.executable, "-m", "infra.blob_upload", "--account-url", azurite.url, "--container",
         container.container_name, "--blob", "bootstrap/cost.json", "--text", '{"monthlyBudgetUsd": 60.0}',
         "--content-type", "application/json"],
        cwd=REPO_ROOT, env=azure_cli_env(azure_imds, azure_cert), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    blob = container.download_blob("bootstrap/cost.json")
    assert blob.readall() == b'{"monthlyBudgetUsd": 60.0}\n'
    assert blob.properties.content_settings.content_type == "application/json"


def test_an_upload_names_a_file_or_a_text_not_both(tmp_path, capsys):
    with pytest.raises(SystemExit):
        blob_upload.main(["--account-url", "https://a.blob.core.windows.net", "--container", "c", "--blob", "b",
                          "--file", str(tmp_path / "f"), "--text", "{}"])
    assert "not allowed with argument" in capsys.readouterr().err
