"""session.storage.s3 against a real S3 API over HTTP (moto's server): objects, files, folders, copies, errors."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError

from session.storage.s3 import (
    PART_SIZE,
    ChecksumMismatch,
    ObjectNotFound,
    Storage,
    StorageError,
    TargetNotEmpty,
    storage_error,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
MiB = 1024 * 1024


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    return text


class Counter:
    """A progress callback that threads may call at once."""

    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        with self._lock:
            self.total += amount


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def keys(s3_client, bucket: str, prefix: str = "") -> list[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(entry["Key"] for page in pages for entry in page.get("Contents", []))


class _Raw:
    """The raw body botocore reads a short-circuited response from."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def error_response(request, status: int, code: str, message: str) -> AWSResponse:
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(body))


# -- module ---------------------------------------------------------------------------------------------------------

def test_importing_the_module_does_not_import_boto3():
    code = "import sys, session.storage.s3; print(sorted(m for m in ('boto3', 'botocore', 'yaml') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_constructor_rejects_bad_values_in_one_line():
    with pytest.raises(StorageError, match="must start with http"):
        Storage("b", endpoint_url="minio:9000")
    with pytest.raises(StorageError, match="needs its secret key"):
        Storage("b", endpoint_url="http://minio:9000", access_key="minio")
    with pytest.raises(StorageError, match="not valid"):
        Storage("b/with/slash")


def test_client_retries_and_timeouts_are_configured(storage):
    config = storage.client.meta.config
    assert config.retries == {"total_max_attempts": 5, "mode": "standard"}
    assert (config.connect_timeout, config.read_timeout) == (10.0, 60.0)
    assert config.s3 == {"addressing_style": "path"}  # MinIO wants path-style addressing


# -- small objects --------------------------------------------------------------------------------------------------

def test_small_objects_round_trip_with_sha256_metadata(storage, s3_client):
    storage.put_bytes("a/bytes.bin", b"\x00\x01")
    storage.put_text("a/text.txt", "héllo\n")
    storage.put_json("a/data.json", {"best_checkpoint": {"name": "3_Step-100.ckpt"}})
    storage.put_yaml("a/params.yaml", {"WORLD_NAME": "reInvent2019_wide", "NUM_WORKERS": "2"})

    assert storage.get_bytes("a/bytes.bin") == b"\x00\x01"
    assert storage.get_text("a/text.txt") == "héllo\n"
    assert storage.get_json("a/data.json") == {"best_checkpoint": {"name": "3_Step-100.ckpt"}}
    assert storage.get_yaml("a/params.yaml") == {"WORLD_NAME": "reInvent2019_wide", "NUM_WORKERS": "2"}
    head = s3_client.head_object(Bucket=storage.bucket, Key="a/text.txt")
    assert head["Metadata"]["sha256"] == hashlib.sha256("héllo\n".encode()).hexdigest()
    assert head["ContentType"].startswith("text/plain")
    assert storage.stat("a/bytes.bin").sha256 == hashlib.sha256(b"\x00\x01").hexdigest()
    assert storage.exists("a/bytes.bin") and not storage.exists("a/nothing")


def test_missing_object_is_object_not_found(storage):
    with pytest.raises(ObjectNotFound) as caught:
        storage.get_text("custom_files/reward_function.py")
    assert one_line(caught.value) == f"s3://{storage.bucket}/custom_files/reward_function.py does not exist"
    with pytest.raises(ObjectNotFound):
        storage.stat("custom_files/reward_function.py")


def test_unparseable_json_and_yaml_name_the_object_and_line(storage):
    storage.put_text("bad.json", '{"a": 1,\n "b": }')
    storage.put_text("bad.yaml", "a: [1, 2\nb: 3\n")
    with pytest.raises(StorageError) as caught:
        storage.get_json("bad.json")
    assert f"s3://{storage.bucket}/bad.json is not valid JSON" in one_line(caught.value)
    assert "line 2" in str(caught.value)
    with pytest.raises(StorageError) as caught:
        storage.get_yaml("bad.yaml")
    assert f"s3://{storage.bucket}/bad.yaml is not valid YAML" in one_line(caught.value)


# -- listing --------------------------------------------------------------------------------------------------------

def test_prefixes_are_folders_not_name_prefixes(storage):
    for key in ("rl-1/model/a", "rl-1/ip/b", "rl-10/model/c", "custom_files/reward_function.py"):
        storage.put_bytes(key, b"x")

    assert [info.key for info in storage.list_objects("rl-1")] == ["rl-1/ip/b", "rl-1/model/a"]
    assert [info.key for info in storage.list_objects("/rl-1/")] == ["rl-1/ip/b", "rl-1/model/a"]
    assert [info.key for info in storage.list_objects("rl-1", match="mo")] == ["rl-1/model/a"]
    assert storage.list_prefixes() == ["custom_files", "rl-1", "rl-10"]
    assert storage.list_prefixes("rl-1") == ["rl-1/ip", "rl-1/model"]
    assert storage.prefix_has_objects("rl-1") and storage.prefix_has_objects("rl-10/model")
    assert not storage.prefix_has_objects("rl") and not storage.prefix_has_objects("rl-2")
    assert storage.prefix_has_objects("")
    info = next(storage.list_objects("rl-1/model"))
    assert (info.size, info.etag) == (1, hashlib.md5(b"x").hexdigest())


def test_listing_and_deleting_go_past_a_thousand_keys(storage, fill_bucket, s3_client):
    fill_bucket(storage.bucket, [f"sim-trace/{n:05d}-iteration.csv" for n in range(1003)])
    fill_bucket(storage.bucket, [f"sim-trace-2/{n}.csv" for n in range(3)])

    listed = [info.key for info in storage.list_objects("sim-trace")]
    assert len(listed) == 1003 and listed[-1] == "sim-trace/01002-iteration.csv"
    assert len(storage.list_prefixes()) == 2

    assert storage.delete_prefix("sim-trace") == 1003
    assert keys(s3_client, storage.bucket) == [f"sim-trace-2/{n}.csv" for n in range(3)]


def test_delete_prefix_refuses_the_whole_bucket(storage):
    storage.put_bytes("keep", b"1")
    with pytest.raises(StorageError, match="refusing to delete everything"):
        storage.delete_prefix("/")
    assert storage.exists("keep")


# -- files ----------------------------------------------------------------------------------------------------------

def test_file_round_trip_reports_progress(storage, tmp_path):
    source = write(tmp_path / "up" / "model_metadata.json", b'{"sensor": ["FRONT_FACING_CAMERA"]}' * 100)
    sent, received = Counter(), Counter()

    info = storage.upload_file(source, "rl-1/model/model_metadata.json", progress=sent)
    assert info.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    target = tmp_path / "down" / "deep" / "model_metadata.json"
    storage.download_file("rl-1/model/model_metadata.json", target, progress=received)

    assert target.read_bytes() == source.read_bytes()
    assert sent.total == received.total == source.stat().st_size
    assert [p.name for p in target.parent.iterdir()] == ["model_metadata.json"]  # no partial file left


def test_multipart_upload_keeps_sha256_and_downloads_verified(storage, tmp_path, s3_client):
    data = os.urandom(PART_SIZE + MiB)  # two parts
    source = write(tmp_path / "1_Step-1000.ckpt.data-00000-of-00001", data)
    sent = Counter()

    storage.upload_file(source, "rl-1/model/ckpt.data", progress=sent)
    head = s3_client.head_object(Bucket=storage.bucket, Key="rl-1/model/ckpt.data")
    assert head["ETag"].strip('"').endswith("-2")
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert sent.total == len(data)

    target = tmp_path / "copy.data"
    storage.download_file("rl-1/model/ckpt.data", target)
    assert target.read_bytes() == data


def test_download_refuses_bytes_that_do_not_match_the_sha256_metadata(storage, tmp_path, s3_client):
    s3_client.put_object(Bucket=storage.bucket, Key="reward_function.py", Body=b"def reward_function(p): return 1.0\n",
                         Metadata={"sha256": hashlib.sha256(b"something else").hexdigest()})
    target = write(tmp_path / "reward_function.py", b"# the user's own version\n")

    with pytest.raises(ChecksumMismatch) as caught:
        storage.download_file("reward_function.py", target)
    assert "left as it was" in one_line(caught.value)
    assert target.read_bytes() == b"# the user's own version\n"
    assert [p.name for p in tmp_path.iterdir()] == ["reward_function.py"]


def test_local_file_problems_are_storage_errors(storage, tmp_path):
    with pytest.raises(StorageError) as caught:
        storage.upload_file(tmp_path / "missing.py", "k")
    assert one_line(caught.value) == f"cannot read {tmp_path / 'missing.py'}: No such file or directory"
    with pytest.raises(StorageError, match="local folder .* does not exist"):
        storage.sync_up(tmp_path / "nowhere", "custom_files")


# -- sync -----------------------------------------------------------------------------------------------------------

def test_sync_up_reports_added_changed_unchanged_and_never_deletes_without_the_flag(storage, tmp_path, s3_client):
    local = tmp_path / "custom_files"
    write(local / "reward_function.py", b"def reward_function(params):\n    return 1.0\n")
    write(local / "model_metadata.json", b'{"action_space_type": "continuous"}')
    write(local / "hyperparameters.json", b'{"batch_size": 64}')
    s3_client.put_object(Bucket=storage.bucket, Key="custom_files/notes.txt", Body=b"made in the console")
    totals: list[int] = []

    first = storage.sync_up(local, "custom_files", on_total=totals.append)
    assert first.added == ["hyperparameters.json", "model_metadata.json", "reward_function.py"]
    assert first.changed == first.unchanged == first.deleted == []
    assert first.target_only == ["notes.txt"]
    assert totals == [first.bytes_to_transfer] and first.bytes_to_transfer == sum(
        (local / name).stat().st_size for name in first.added)

    write(local / "hyperparameters.json", b'{"batch_size": 32}')  # same size, other bytes
    write(local / "sub" / "extra.py", b"# helper\n")
    second = storage.sync_up(local, "custom_files")
    assert second.changed == ["hyperparameters.json"]
    assert second.added == ["sub/extra.py"]
    assert second.unchanged == ["model_metadata.json", "reward_function.py"]
    assert second.transferred == ["hyperparameters.json", "sub/extra.py"]
    assert storage.get_bytes("custom_files/hyperparameters.json") == b'{"batch_size": 32}'
    assert storage.exists("custom_files/notes.txt")

    third = storage.sync_up(local, "custom_files", delete=True)
    assert not third.transferred and third.deleted == ["notes.txt"]
    assert keys(s3_client, storage.bucket) == ["custom_files/hyperparameters.json", "custom_files/model_metadata.json",
                                               "custom_files/reward_function.py", "custom_files/sub/extra.py"]


def test_sync_up_dry_run_exclude_and_partial_downloads_change_nothing(storage, tmp_path, s3_client):
    local = tmp_path / "custom_files"
    write(local / "reward_function.py", b"x")
    write(local / "__pycache__" / "reward_function.cpython-311.pyc", b"compiled")
    write(local / ".reward_function.py.swp", b"editor")
    write(local / ".reward_function.py.k2x9_a1.deepracer-part", b"left by an interrupted download")
    s3_client.put_object(Bucket=storage.bucket, Key="custom_files/old.txt", Body=b"o")

    plan = storage.sync_up(local, "custom_files", dry_run=True, delete=True, exclude=["*.pyc", "*.swp"])
    assert plan.dry_run and plan.added == ["reward_function.py"] and plan.target_only == ["old.txt"]
    assert plan.deleted == [] and plan.bytes_to_transfer == 1
    assert keys(s3_client, storage.bucket) == ["custom_files/old.txt"]


def test_sync_up_never_uploads_bytecode_caches(storage, tmp_path, s3_client):
    # custom-files upload and train's upload both go through sync_up (issue 10: uploads never send __pycache__).
    local = tmp_path / "custom_files"
    write(local / "reward_function.py", b"x")
    write(local / "__pycache__" / "reward_function.cpython-311.pyc", b"compiled")
    write(local / "helpers" / "__pycache__" / "lines.cpython-312.opt-1.pyc", b"compiled")
    write(local / "old.pyc", b"compiled")
    result = storage.sync_up(local, "custom_files")
    assert result.added == ["reward_function.py"]
    assert keys(s3_client, storage.bucket) == ["custom_files/reward_function.py"]


def test_sync_down_never_brings_back_bytecode_caches(storage, tmp_path):
    # A bucket filled by an older version's upload may hold them; `custom-files download` must not restore them.
    storage.put_bytes("custom_files/reward_function.py", b"x")
    storage.put_bytes("custom_files/__pycache__/reward_function.cpython-311.pyc", b"compiled")
    local = tmp_path / "custom_files"
    write(local / "__pycache__" / "mine.cpython-311.pyc", b"local")
    result = storage.sync_down("custom_files", local, delete=True)
    assert result.added == ["reward_function.py"] and result.deleted == []
    assert sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()) == [
        "__pycache__/mine.cpython-311.pyc", "reward_function.py"]


def test_sync_down_mirrors_the_folder_and_keeps_local_only_files(storage, tmp_path):
    storage.put_bytes("rl-1/metrics/TrainingMetrics.json", b'{"metrics": []}')
    storage.put_bytes("rl-1/model/.coach_checkpoint", b"3_Step-300.ckpt")
    local = tmp_path / "rl-1"
    received = Counter()

    first = storage.sync_down("rl-1", local, progress=received)
    assert first.added == ["metrics/TrainingMetrics.json", "model/.coach_checkpoint"]
    assert (local / "model" / ".coach_checkpoint").read_bytes() == b"3_Step-300.ckpt"
    assert received.total == first.bytes_to_transfer == 15 + 15

    write(local / "model" / ".coach_checkpoint", b"4_Step-400.ckpt")  # same size, other bytes
    write(local / "analysis.ipynb", b"{}")
    second = storage.sync_down("rl-1", local)
    assert second.changed == ["model/.coach_checkpoint"]
    assert second.unchanged == ["metrics/TrainingMetrics.json"]
    assert second.target_only == ["analysis.ipynb"] and second.deleted == []
    assert (local / "model" / ".coach_checkpoint").read_bytes() == b"3_Step-300.ckpt"
    assert (local / "analysis.ipynb").exists()

    third = storage.sync_down("rl-1", local, delete=True)
    assert third.deleted == ["analysis.ipynb"] and not (local / "analysis.ipynb").exists()
    assert not third.transferred


def test_sync_uses_the_sha256_metadata_when_the_etag_cannot_tell(storage, tmp_path, s3_client):
    """Objects uploaded in parts of another size: their ETag cannot be recomputed here; the metadata decides."""
    from boto3.s3.transfer import TransferConfig

    data = os.urandom(11 * MiB)
    local = tmp_path / "model"
    write(local / "with-metadata.data", data)
    write(local / "without-metadata.data", data)
    write(local / "single-part.json", b'{"name": "3_Step-300.ckpt"}')
    five_mib_parts = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3_client.upload_file(str(local / "with-metadata.data"), storage.bucket, "rl-1/with-metadata.data",
                          ExtraArgs={"Metadata": {"sha256": hashlib.sha256(data).hexdigest()}}, Config=five_mib_parts)
    s3_client.upload_file(str(local / "without-metadata.data"), storage.bucket, "rl-1/without-metadata.data",
                          Config=five_mib_parts)
    s3_client.put_object(Bucket=storage.bucket, Key="rl-1/single-part.json", Body=b'{"name": "3_Step-300.ckpt"}')
    assert s3_client.head_object(Bucket=storage.bucket, Key="rl-1/with-metadata.data")["ETag"].endswith('-3"')

    plan = storage.sync_up(local, "rl-1", dry_run=True)
    assert plan.unchanged == ["single-part.json", "with-metadata.data"]  # metadata; plain MD5 ETag
    assert plan.changed == ["without-metadata.data"]  # nothing to compare with: transferred again

    result = storage.sync_up(local, "rl-1")
    assert result.changed == ["without-metadata.data"]
    assert storage.sync_up(local, "rl-1").unchanged == sorted(p.name for p in local.iterdir())


def test_sync_down_refuses_keys_that_escape_the_folder(storage, tmp_path, s3_client):
    s3_client.put_object(Bucket=storage.bucket, Key="rl-1/../../evil.sh", Body=b"rm -rf ~")
    with pytest.raises(StorageError) as caught:
        storage.sync_down("rl-1", tmp_path / "rl-1")
    assert "would land outside the target folder" in one_line(caught.value)
    assert not (tmp_path / "evil.sh").exists() and not (tmp_path.parent / "evil.sh").exists()


# -- copy -----------------------------------------------------------------------------------------------------------

def _model(storage: Storage, s3_client, tmp_path: Path, prefix: str) -> None:
    storage.put_json(f"{prefix}/model/deepracer_checkpoints.json", {"last_checkpoint": {"name": "3_Step-300.ckpt"}})
    storage.put_bytes(f"{prefix}/model/model_3.pb", os.urandom(2048))
    big = write(tmp_path / "big.data", os.urandom(PART_SIZE + 512))
    storage.upload_file(big, f"{prefix}/model/3_Step-300.ckpt.data-00000-of-00001")
    # written by the simapp: no sha256 metadata; one single-part, one multipart
    s3_client.put_object(Bucket=storage.bucket, Key=f"{prefix}/ip/hyperparameters.json", Body=b'{"lr": 0.0003}')
    s3_client.upload_file(str(big), storage.bucket, f"{prefix}/model/3_Step-300.ckpt.meta")


def test_copy_prefix_copies_server_side_and_verifies(storage, tmp_path, s3_client, make_bucket):
    _model(storage, s3_client, tmp_path, "rl-1")
    target_bucket = make_bucket("upload")

    result = storage.copy_prefix("rl-1", target_bucket, "models/rl-1")
    assert result.copied == ["ip/hyperparameters.json", "model/3_Step-300.ckpt.data-00000-of-00001",
                             "model/3_Step-300.ckpt.meta", "model/deepracer_checkpoints.json", "model/model_3.pb"]
    assert result.size_only == ["model/3_Step-300.ckpt.meta"]  # multipart, no metadata: only the size to compare
    assert result.verified == [rel for rel in result.copied if rel not in result.size_only]
    assert result.target == f"s3://{target_bucket}/models/rl-1/"
    for rel in result.copied:
        source = s3_client.get_object(Bucket=storage.bucket, Key=f"rl-1/{rel}")
        copy = s3_client.get_object(Bucket=target_bucket, Key=f"models/rl-1/{rel}")
        assert copy["Body"].read() == source["Body"].read()
        assert copy["Metadata"] == source["Metadata"]  # the sha256 travels with the copy


def test_copy_prefix_refuses_a_non_empty_target_unless_overwrite(storage, tmp_path, s3_client):
    _model(storage, s3_client, tmp_path, "rl-1")
    storage.put_bytes("rl-1-E/model/model_3.pb", b"an older evaluation copy")
    storage.put_bytes("rl-1-E/model/model_2.pb", b"only at the target")

    with pytest.raises(TargetNotEmpty) as caught:
        storage.copy_prefix("rl-1", storage.bucket, "rl-1-E")
    assert one_line(caught.value).startswith(f"s3://{storage.bucket}/rl-1-E/ already holds 2 object(s)")
    assert storage.get_bytes("rl-1-E/model/model_3.pb") == b"an older evaluation copy"

    result = storage.copy_prefix("rl-1", storage.bucket, "rl-1-E", overwrite=True)
    assert storage.get_bytes("rl-1-E/model/model_3.pb") == storage.get_bytes("rl-1/model/model_3.pb")
    assert result.target_only == ["model/model_2.pb"] and storage.exists("rl-1-E/model/model_2.pb")


def test_copy_prefix_refuses_overlapping_or_empty_folders(storage):
    storage.put_bytes("rl-1/model/a", b"1")
    with pytest.raises(StorageError, match="one folder contains the other"):
        storage.copy_prefix("rl-1", storage.bucket, "rl-1/backup")
    with pytest.raises(ObjectNotFound, match="nothing to copy"):
        storage.copy_prefix("rl-2", storage.bucket, "rl-3")


@pytest.mark.parametrize("with_metadata, decoy, expected", [
    (True, b"other bytes, same size", "has SHA-256"),  # S3's checksum of the copy vs the source's metadata
    (False, b"other bytes, same size", "has ETag"),  # no metadata: the single-part ETags
    (False, b"fewer bytes", "has 11 bytes instead of 22"),
])
def test_copy_that_arrives_different_is_an_error(storage, s3_client, with_metadata, decoy, expected):
    """The server is made to copy another object than the one asked for: the verification must notice."""
    body = b"the real model graph.."
    if with_metadata:
        storage.put_bytes("rl-1/model/model_3.pb", body)
    else:
        s3_client.put_object(Bucket=storage.bucket, Key="rl-1/model/model_3.pb", Body=body)
    s3_client.put_object(Bucket=storage.bucket, Key="decoy/model_3.pb", Body=decoy)

    def swap_source(request, **kwargs):
        request.headers["x-amz-copy-source"] = f"{storage.bucket}/decoy/model_3.pb"

    storage.client.meta.events.register("before-send.s3.CopyObject", swap_source)
    with pytest.raises(ChecksumMismatch) as caught:
        storage.copy_prefix("rl-1", storage.bucket, "rl-2")
    assert one_line(caught.value).startswith(f"copy of s3://{storage.bucket}/rl-1/model/model_3.pb at "
                                             f"s3://{storage.bucket}/rl-2/model/model_3.pb {expected}")


def test_copy_falls_back_to_etags_when_the_server_will_not_compute_checksums(storage, tmp_path):
    storage.put_bytes("rl-1/model/model_3.pb", b"graph")
    refused: list[str] = []

    def no_checksums(request, **kwargs):
        if "x-amz-checksum-algorithm" in request.headers:
            refused.append(request.url)
            return error_response(request, 501, "NotImplemented", "checksum on copy is not implemented")
        return None

    storage.client.meta.events.register("before-send.s3.CopyObject", no_checksums)
    first = storage.copy_prefix("rl-1", storage.bucket, "rl-2")
    second = storage.copy_prefix("rl-1", storage.bucket, "rl-3")
    assert len(refused) == 1  # asked once, then remembered
    assert first.verified == second.verified == ["model/model_3.pb"]  # by the single-part ETag


# -- errors ---------------------------------------------------------------------------------------------------------

def test_missing_bucket_is_named(s3_server):
    with Storage("no-such-bucket-here", endpoint_url=s3_server) as storage:
        with pytest.raises(StorageError) as caught:
            storage.get_bytes("custom_files/reward_function.py")
        assert one_line(caught.value).startswith(f"bucket no-such-bucket-here does not exist at {s3_server}")
        assert caught.value.code == "NoSuchBucket" and not isinstance(caught.value, ObjectNotFound)
        with pytest.raises(StorageError, match="bucket no-such-bucket-here does not exist"):
            storage.check_bucket()
        with pytest.raises(StorageError, match="bucket no-such-bucket-here does not exist"):
            storage.prefix_has_objects("rl-1")


def test_unreachable_endpoint_names_the_url_and_the_minio_container():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"  # nothing listens here any more
    with Storage("models", endpoint_url=endpoint, access_key="minio", secret_key="minio123", max_attempts=2,
                 connect_timeout=1) as storage:
        with pytest.raises(StorageError) as caught:
            storage.sync_down("rl-1", "/nonexistent-never-written")
    text = one_line(caught.value)
    assert text.startswith(f"the S3 endpoint {endpoint} cannot be reached while listing s3://models/rl-1/")
    assert "MinIO container" in text


def test_unreachable_aws_endpoint_hints_at_the_network():
    error = EndpointConnectionError(endpoint_url="https://models.s3.eu-west-1.amazonaws.com/")
    mapped = storage_error(error, "listing s3://models/", bucket="models", region="eu-west-1")
    assert one_line(mapped).startswith("the S3 endpoint https://models.s3.eu-west-1.amazonaws.com/ cannot be reached")
    assert "outbound network" in str(mapped)


def test_transient_errors_are_retried(storage):
    storage.put_bytes("k", b"v")
    attempts: list[int] = []

    def flaky(request, **kwargs):
        attempts.append(1)
        if len(attempts) <= 2:
            return error_response(request, 500, "InternalError", "We encountered an internal error")
        return None

    storage.client.meta.events.register("before-send.s3.GetObject", flaky)
    assert storage.get_bytes("k") == b"v"
    assert len(attempts) == 3


def test_errors_that_outlast_the_retries_say_so(s3_server, bucket):
    with Storage(bucket, endpoint_url=s3_server, max_attempts=2) as storage:
        storage.client.meta.events.register(
            "before-send.s3.GetObject",
            lambda request, **kwargs: error_response(request, 503, "ServiceUnavailable", "Please reduce your rate"))
        with pytest.raises(StorageError) as caught:
            storage.get_bytes("k")
    assert "kept failing (ServiceUnavailable: Please reduce your rate) after 2 attempts" in one_line(caught.value)


def test_unknown_access_key_and_wrong_secret(s3_server, bucket, s3_auth, iam_user_keys):
    access_key, _secret = iam_user_keys({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    with s3_auth():
        with Storage(bucket, endpoint_url=s3_server, access_key="AKIANOBODYKNOWS00000", secret_key="x") as storage:
            with pytest.raises(StorageError) as unknown:
                storage.list_prefixes()
        with Storage(bucket, endpoint_url=s3_server, access_key=access_key, secret_key="wrong") as storage:
            with pytest.raises(StorageError) as wrong:
                storage.put_text("k", "v")
    assert one_line(unknown.value).startswith(
        f"{s3_server} does not know the access key 'AKIANOBODYKNOWS00000' (InvalidAccessKeyId)")
    assert "check the MinIO access key and secret" in str(unknown.value)
    assert one_line(wrong.value).startswith(
        f"{s3_server} rejected the secret key of access key '{access_key}' (SignatureDoesNotMatch)")


def test_access_denied_names_the_bucket_and_the_action(s3_server, bucket, s3_auth, iam_user_keys, s3_client, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="custom_files/reward_function.py", Body=b"x")
    access_key, secret_key = iam_user_keys({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}]})
    source = write(tmp_path / "reward_function.py", b"def reward_function(params):\n    return 1.0\n")
    with s3_auth():
        with Storage(bucket, endpoint_url=s3_server, access_key=access_key, secret_key=secret_key) as storage:
            assert storage.prefix_has_objects("custom_files")  # listing is allowed
            with pytest.raises(StorageError) as read:
                storage.get_text("custom_files/reward_function.py")
            with pytest.raises(StorageError) as upload:
                storage.upload_file(source, "custom_files/reward_function.py")
            with pytest.raises(ClientError) as raw:
                storage.client.get_object(Bucket=bucket, Key="custom_files/reward_function.py")
    assert one_line(read.value) == (
        f"access denied while reading s3://{bucket}/custom_files/reward_function.py: needs s3:GetObject on bucket "
        f"{bucket}; the MinIO user of access key '{access_key}' may not do that; check its policy in MinIO")
    assert one_line(upload.value).startswith(
        f"access denied while uploading {source} to s3://{bucket}/custom_files/reward_function.py: "
        f"needs s3:PutObject on bucket {bucket}")
    assert read.value.code == upload.value.code == "AccessDenied"

    # The same real response, as a host on AWS (instance role, no endpoint) would see it.
    mapped = storage_error(raw.value, "reading s3://b/k", bucket=bucket, key="k")
    assert one_line(mapped).endswith("this VM's instance role may not do that; allow it in the role's IAM policy "
                                     "(and check the bucket policy)")


def test_missing_credentials_point_at_the_instance_role(s3_server, bucket, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with Storage(bucket, endpoint_url=s3_server) as storage:
        with pytest.raises(StorageError) as caught:
            storage.get_bytes("k")
    assert one_line(caught.value).startswith(f"no S3 credentials found while reading s3://{bucket}/k")


def test_wrong_region_names_the_right_one():
    # moto serves every region from one endpoint, so the redirect AWS sends is built here in its documented shape.
    error = ClientError({"Error": {"Code": "PermanentRedirect", "Message": "The bucket you are attempting to access "
                                   "must be addressed using the specified endpoint.", "BucketName": "models"},
                         "ResponseMetadata": {"HTTPStatusCode": 301,
                                              "HTTPHeaders": {"x-amz-bucket-region": "eu-west-1"}}}, "ListObjectsV2")
    mapped = storage_error(error, "listing s3://models/", bucket="models", region="us-east-1")
    assert one_line(mapped) == ("bucket models is in region eu-west-1, not us-east-1 (listing s3://models/): "
                                "use the bucket's region")


def test_unmapped_errors_pass_through():
    assert storage_error(ValueError("a bug"), "doing", bucket="b") is None


def test_the_client_keeps_s3s_endpoint_data_only_and_still_finds_s3_in_every_partition():
    # botocore's endpoint data for every AWS service is ~6 MB once decoded, kept as long as the client lives (the
    # dashboard's whole life); the client keeps S3's only, and still resolves S3 itself in each partition.
    for region, url in (("eu-west-1", "https://s3.eu-west-1.amazonaws.com"),
                        ("cn-north-1", "https://s3.cn-north-1.amazonaws.com.cn"),
                        ("us-gov-west-1", "https://s3.us-gov-west-1.amazonaws.com")):
        client = Storage("b", region=region, access_key="k", secret_key="s").client  # keys: no IMDS lookup here
        assert client.meta.endpoint_url == url, region
    partitions = client._loader.load_data("endpoints")["partitions"]
    assert {p["partition"] for p in partitions} >= {"aws", "aws-cn", "aws-us-gov"}
    assert all(set(p["services"]) <= {"s3"} for p in partitions) and partitions[0]["services"]["s3"]
    assert "boto3" not in subprocess.run(
        [sys.executable, "-c", "import sys; from session.storage.s3 import Storage; "
         "Storage('b', endpoint_url='http://127.0.0.1:1', access_key='k', secret_key='s').client; "
         "print(sorted(m for m in sys.modules if m.startswith('boto')))"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[3]).stdout
