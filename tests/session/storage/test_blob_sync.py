"""Model prefixes between MinIO and Azure Blob: moto's S3 server plays MinIO, Azurite plays the blob container.

Azurite (tests/azure_fakes.py, started once per session over HTTPS) is reached with its well-known development
account key, or, where the VM's own path is under test, with ManagedIdentityCredential through the stand-in
instance metadata service. The model is a real DRfC prefix (tests.shared_data.LOGS) with stand-in checkpoint
bytes where the shared data has none.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.request
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from session.core.config import load_config
from session.engine.containers import ContainerInfo
from session.host.factory import Host
from session.run.training import restore_pretrained, stopped_prefixes
from session.storage.blob import ROLE, BlobStore, blob_store_for
from session.storage.folder_mirror import FolderMirror
from session.storage.keeper import prefixes_to_sync, sync_running
from session.storage.mirror_sync import (
    BLOCK_SIZE,
    MirrorSyncError,
    restore_prefix_from_mirror,
    sync_all,
    sync_prefix_to_mirror,
)
from tests.azure_fakes import ACCOUNT, azure_cert, azure_imds, azurite  # noqa: F401 - fixtures
from tests.shared_data import LOGS

DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DRFC = LOGS / "drfc-2022-single-worker"
PREFIX = "rl-azure-1"
MARKERS = ["model/.lock", "model/.ready", "model/.finished"]


def _checkpoint_bytes(name: str, size: int) -> bytes:
    """Incompressible stand-in bytes, different per name (TF checkpoint files are not in the shared data)."""
    return random.Random(name).randbytes(size)


def model_files() -> dict[str, bytes]:
    """A DRfC model prefix as the simulator leaves it after two iterations, relative path -> bytes."""
    files = {
        "model/model_metadata.json": (DRFC / "model" / "model_metadata.json").read_bytes(),
        "ip/hyperparameters.json": (DRFC / "ip" / "hyperparameters.json").read_bytes(),
        "metrics/TrainingMetrics.json": (DRFC / "metrics" / "TrainingMetrics.json").read_bytes(),
        "training-simtrace/0-iteration.csv": (DRFC / "training-simtrace" / "0-iteration.csv").read_bytes(),
        "training-simtrace/1-iteration.csv": (DRFC / "training-simtrace" / "1-iteration.csv").read_bytes(),
        "reward_function.py": b"def reward_function(params):\n    return 1.0\n",
        "training_params.yaml": b"WORLD_NAME: reInvent2019_track\nSAGEMAKER_SHARED_S3_PREFIX: rl-azure-1\n",
        "logs/20250101000000-trainer.log": b"Training> Name=main_level/agent, Worker=0, Episode=1\n",
        "model/.coach_checkpoint": b"1_Step-2000.ckpt\n",
        "model/deepracer_checkpoints.json": json.dumps({
            "best_checkpoint": {"name": "1_Step-2000.ckpt", "avg_eval_metric": 42.0, "time_stamp": 1.0},
            "last_checkpoint": {"name": "1_Step-2000.ckpt", "avg_eval_metric": 42.0, "time_stamp": 1.0}}).encode(),
    }
    for stem in ("0_Step-1000", "1_Step-2000"):
        files[f"model/{stem}.ckpt.index"] = _checkpoint_bytes(f"{stem}.index", 1_200)
        files[f"model/{stem}.ckpt.meta"] = _checkpoint_bytes(f"{stem}.meta", 90_000)
        files[f"model/{stem}.ckpt.data-00000-of-00001"] = _checkpoint_bytes(f"{stem}.data", 400_000)
        files[f"model/model_{stem.split('_')[0]}.pb"] = _checkpoint_bytes(f"{stem}.pb", 300_000)
    for marker in MARKERS:
        files[marker] = b""
    return files


def put_model(s3_client, bucket: str, files: dict[str, bytes], prefix: str = PREFIX) -> None:
    """As the simulator writes them: plain PutObject, no metadata of ours."""
    for rel, data in files.items():
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=data)


def bucket_bytes(s3_client, bucket: str, prefix: str = PREFIX) -> dict[str, bytes]:
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
    return {item["Key"][len(prefix) + 1:]: s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for item in listed}


def blob_etags(container) -> dict[str, str]:
    return {item.name: item.etag for item in container.list_blobs()}


@pytest.fixture
def container(azurite):
    """A new, empty container on Azurite (a ContainerClient for the tests' own reads)."""
    client = azurite.new_container()
    yield client
    client.delete_container()


@pytest.fixture
def blob(azurite, container) -> BlobStore:
    """The code under test's view of that container: Azurite's development account key."""
    return BlobStore(azurite.url, container.container_name, {"account_name": ACCOUNT, "account_key": DEV_KEY},
                     connection_verify=str(azurite.cert), max_attempts=1)


@pytest.fixture
def model(s3_client, storage) -> dict[str, bytes]:
    files = model_files()
    put_model(s3_client, storage.bucket, files)
    return files


def synced(files: dict[str, bytes]) -> list[str]:
    return sorted(rel for rel in files if rel not in MARKERS)


# -- up -----------------------------------------------------------------------------------------------------------

def test_sync_copies_the_model_prefix_with_content_hashes_and_skips_the_run_markers(storage, blob, container, model):
    report = sync_prefix_to_mirror(storage, blob, PREFIX)

    assert report.added == synced(model) and report.changed == [] and report.unchanged == []
    assert report.skipped == sorted(MARKERS)
    assert report.bytes_copied == sum(len(model[rel]) for rel in synced(model))
    names = sorted(item.name for item in container.list_blobs())
    assert names == [f"{PREFIX}/{rel}" for rel in synced(model)]
    for rel in ("model/1_Step-2000.ckpt.data-00000-of-00001", "metrics/TrainingMetrics.json"):
        client = container.get_blob_client(f"{PREFIX}/{rel}")
        assert client.download_blob().readall() == model[rel]
        assert client.get_blob_properties().metadata["sha256"] == hashlib.sha256(model[rel]).hexdigest()
    where = f"s3://{storage.bucket}/{PREFIX}/ -> {blob.url}/{PREFIX}/"
    assert report.summary().startswith(f"{where}: {len(synced(model))} copied")


def test_a_second_sync_copies_nothing_and_a_changed_object_alone_is_copied(storage, blob, container, model,
                                                                            s3_client):
    sync_prefix_to_mirror(storage, blob, PREFIX)
    before = blob_etags(container)

    again = sync_prefix_to_mirror(storage, blob, PREFIX)
    assert again.transferred == [] and again.unchanged == synced(model) and again.bytes_copied == 0
    assert blob_etags(container) == before

    changed = b'{"metrics": [{"episode": 1, "reward_score": 7}]}'
    s3_client.put_object(Bucket=storage.bucket, Key=f"{PREFIX}/metrics/TrainingMetrics.json", Body=changed)
    same_size = b"2_Step-3000.ckpt\n"  # the same length as before: the content, not the size, tells
    assert len(same_size) == len(model["model/.coach_checkpoint"])
    s3_client.put_object(Bucket=storage.bucket, Key=f"{PREFIX}/model/.coach_checkpoint", Body=same_size)
    third = sync_prefix_to_mirror(storage, blob, PREFIX)

    assert third.changed == ["metrics/TrainingMetrics.json", "model/.coach_checkpoint"] and third.added == []
    after = blob_etags(container)
    moved = sorted(name for name in after if after[name] != before[name])
    assert moved == [f"{PREFIX}/metrics/TrainingMetrics.json", f"{PREFIX}/model/.coach_checkpoint"]
    assert container.get_blob_client(f"{PREFIX}/model/.coach_checkpoint").download_blob().readall() == same_size


def test_blobs_gone_from_minio_stay_unless_delete_is_asked(storage, blob, container, model, s3_client):
    sync_prefix_to_mirror(storage, blob, PREFIX)
    pruned = ["model/0_Step-1000.ckpt.index", "model/0_Step-1000.ckpt.meta"]  # the trainer keeps the newest 4
    for rel in pruned:
        s3_client.delete_object(Bucket=storage.bucket, Key=f"{PREFIX}/{rel}")

    kept = sync_prefix_to_mirror(storage, blob, PREFIX)
    assert kept.target_only == pruned and kept.deleted == []
    assert {f"{PREFIX}/{rel}" for rel in pruned} <= set(blob_etags(container))

    deleted = sync_prefix_to_mirror(storage, blob, PREFIX, delete=True)
    assert deleted.deleted == pruned and "deleted" in deleted.summary()
    assert not {f"{PREFIX}/{rel}" for rel in pruned} & set(blob_etags(container))


def test_delete_refuses_when_minio_holds_nothing_of_the_prefix(storage, blob, container, model, s3_client):
    """A fresh VM's empty MinIO must not read as "everything was deleted"."""
    sync_prefix_to_mirror(storage, blob, PREFIX)
    for rel in model:
        s3_client.delete_object(Bucket=storage.bucket, Key=f"{PREFIX}/{rel}")
    with pytest.raises(MirrorSyncError, match=rf"holds nothing: refusing to delete its {len(synced(model))} blobs"):
        sync_prefix_to_mirror(storage, blob, PREFIX, delete=True)
    assert len(blob_etags(container)) == len(synced(model))


def test_sync_all_takes_every_top_level_folder(storage, blob, container, model, s3_client):
    s3_client.put_object(Bucket=storage.bucket, Key="custom_files/reward_function.py", Body=b"# mine\n")
    said: list[str] = []
    reports = sync_all(storage, blob, say=said.append)
    assert [r.target for r in reports] == [f"{blob.url}/custom_files/", f"{blob.url}/{PREFIX}/"] and len(said) == 2
    assert "custom_files/reward_function.py" in blob_etags(container)


def test_only_the_named_prefix_moves_never_a_neighbour_or_the_whole_bucket(storage, blob, container, model,
                                                                          s3_client):
    s3_client.put_object(Bucket=storage.bucket, Key=f"{PREFIX}0/model/other.json", Body=b"{}")
    sync_prefix_to_mirror(storage, blob, f"/{PREFIX}/")
    assert not any(name.startswith(f"{PREFIX}0/") for name in blob_etags(container))
    with pytest.raises(MirrorSyncError, match="name a model prefix"):
        sync_prefix_to_mirror(storage, blob, "/")


def test_a_folder_in_the_container_holds_the_copy_by_the_same_names(storage, blob, container, model):
    """A local machine's DR_MODEL_COPY_URL=https://…/container/folder (session.storage.folder_mirror)."""
    container.upload_blob("photos/cat.jpg", b"jpeg")
    mirror = FolderMirror(blob, "deepracer/models")
    report = sync_prefix_to_mirror(storage, mirror, PREFIX)
    assert report.added == synced(model)
    names = sorted(item.name for item in container.list_blobs())
    assert names == sorted(["photos/cat.jpg", *(f"deepracer/models/{PREFIX}/{rel}" for rel in synced(model))])
    assert report.summary().startswith(f"s3://{storage.bucket}/{PREFIX}/ -> {blob.url}/deepracer/models/{PREFIX}/: ")
    again = sync_prefix_to_mirror(storage, mirror, PREFIX)
    assert again.transferred == [] and again.unchanged == synced(model)


# -- down ---------------------------------------------------------------------------------------------------------

def test_restore_into_an_empty_bucket_gives_identical_bytes(storage, blob, model, make_bucket, s3_server, s3_client):
    from session.storage.s3 import Storage

    sync_prefix_to_mirror(storage, blob, PREFIX)
    with Storage(make_bucket("fresh-vm"), endpoint_url=s3_server, access_key="testing", secret_key="testing") as fresh:
        report = restore_prefix_from_mirror(blob, fresh, PREFIX)

        assert report.added == synced(model) and report.conflicts == [] and report.target_only == []
        restored = bucket_bytes(s3_client, fresh.bucket)
        assert restored == {rel: model[rel] for rel in synced(model)}
        checkpoint = f"{PREFIX}/model/1_Step-2000.ckpt.meta"
        assert fresh.stat(checkpoint).sha256 == hashlib.sha256(model["model/1_Step-2000.ckpt.meta"]).hexdigest()

        # Syncing the restored copy back recognises every object by its SHA-256, without copying anything.
        back = sync_prefix_to_mirror(fresh, blob, PREFIX)
        assert back.transferred == [] and back.unchanged == synced(model)


def test_restore_leaves_different_objects_alone_unless_overwrite(storage, blob, model, s3_client):
    sync_prefix_to_mirror(storage, blob, PREFIX)
    mine = b"def reward_function(params):\n    return 2.0\n"
    s3_client.put_object(Bucket=storage.bucket, Key=f"{PREFIX}/reward_function.py", Body=mine)
    s3_client.delete_object(Bucket=storage.bucket, Key=f"{PREFIX}/ip/hyperparameters.json")

    report = restore_prefix_from_mirror(blob, storage, PREFIX)
    assert report.added == ["ip/hyperparameters.json"] and report.conflicts == ["reward_function.py"]
    assert "--overwrite replaces them" in report.summary()
    assert bucket_bytes(s3_client, storage.bucket)["reward_function.py"] == mine

    forced = restore_prefix_from_mirror(blob, storage, PREFIX, overwrite=True)
    assert forced.changed == ["reward_function.py"]
    assert bucket_bytes(s3_client, storage.bucket)["reward_function.py"] == model["reward_function.py"]


def test_restore_of_a_prefix_blob_does_not_hold_says_so(storage, blob):
    with pytest.raises(MirrorSyncError, match=r"nothing to restore: .*/rl-nowhere/ holds no blobs"):
        restore_prefix_from_mirror(blob, storage, "rl-nowhere")


def test_a_blob_whose_bytes_do_not_match_its_sha256_is_not_restored(storage, blob, container, model, s3_client,
                                                                   make_bucket, s3_server):
    from session.storage.s3 import Storage

    big = _checkpoint_bytes("big", 2 * BLOCK_SIZE + 5)
    s3_client.put_object(Bucket=storage.bucket, Key=f"{PREFIX}/model/2_Step-3000.ckpt.data-00000-of-00001", Body=big)
    sync_prefix_to_mirror(storage, blob, PREFIX)
    for rel in ("ip/hyperparameters.json", "model/2_Step-3000.ckpt.data-00000-of-00001"):  # one request, multipart
        client = container.get_blob_client(f"{PREFIX}/{rel}")
        client.set_blob_metadata({**client.get_blob_properties().metadata, "sha256": "0" * 64})
    with Storage(make_bucket("fresh-vm"), endpoint_url=s3_server, access_key="testing", secret_key="testing") as fresh:
        with pytest.raises(MirrorSyncError, match="SHA-256 .* left as it was") as raised:
            restore_prefix_from_mirror(blob, fresh, PREFIX)
        assert "\n" not in str(raised.value)
        restored = bucket_bytes(s3_client, fresh.bucket)
        assert "ip/hyperparameters.json" not in restored
        assert "model/2_Step-3000.ckpt.data-00000-of-00001" not in restored
        uploads = s3_client.list_multipart_uploads(Bucket=fresh.bucket).get("Uploads", [])
        assert uploads == []  # the multipart upload was aborted, not left behind


# -- large objects ------------------------------------------------------------------------------------------------

@pytest.fixture
def outside_s3(tmp_path) -> Iterator[str]:
    """moto's server in a process of its own: tracemalloc then counts what this process (the code under test)
    holds, not the S3 server's copies of the object."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path / "moto.log", "wb")
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:  # the server answering is its readiness signal
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto_server did not start: {(tmp_path / 'moto.log').read_text()[-2000:]}")
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def _transfer_peaks(blob, s3, outside_s3: str, prefix: str, blocks: int) -> tuple[int, int]:
    """Python's peak allocation while one object of `blocks` blocks (+123 bytes) goes MinIO -> Blob -> MinIO."""
    from session.storage.s3 import Storage

    key = f"{prefix}/model/9_Step-90000.ckpt.data-00000-of-00001"
    s3.put_object(Bucket="minio", Key=key, Body=_checkpoint_bytes(prefix, blocks * BLOCK_SIZE + 123))
    with Storage("minio", endpoint_url=outside_s3, access_key="testing", secret_key="testing") as minio, \
            Storage("fresh-vm", endpoint_url=outside_s3, access_key="testing", secret_key="testing") as fresh:
        minio.check_bucket(), fresh.check_bucket()  # the clients' own set-up is not what is measured
        tracemalloc.start()
        try:
            sync_prefix_to_mirror(minio, blob, prefix)
            _, peak_up = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            restore_prefix_from_mirror(blob, fresh, prefix)
            _, peak_down = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return peak_up, peak_down


def test_a_large_object_streams_through_in_blocks_both_ways(blob, container, outside_s3):
    import boto3

    s3 = boto3.client("s3", endpoint_url=outside_s3, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    for name in ("minio", "fresh-vm"):
        s3.create_bucket(Bucket=name)
    small = _transfer_peaks(blob, s3, outside_s3, "rl-small", 2)
    large = _transfer_peaks(blob, s3, outside_s3, "rl-large", 4)

    # Two blocks (16 MiB) more data, the same memory: a copy holding the object would need 16 MiB more.
    assert large[0] - small[0] < BLOCK_SIZE and large[1] - small[1] < BLOCK_SIZE, (small, large)
    key = "rl-large/model/9_Step-90000.ckpt.data-00000-of-00001"
    committed, _ = container.get_blob_client(key).get_block_list("committed")
    assert [block.size for block in committed] == [BLOCK_SIZE] * 4 + [123]
    assert s3.get_object(Bucket="fresh-vm", Key=key)["Body"].read() == _checkpoint_bytes("rl-large",
                                                                                      4 * BLOCK_SIZE + 123)
    head = s3.head_object(Bucket="fresh-vm", Key=key)
    assert head["ETag"].strip('"').endswith("-5")  # multipart in PART_SIZE parts, as Storage's uploads are


# -- errors -------------------------------------------------------------------------------------------------------

def test_a_wrong_key_is_one_line_naming_the_managed_identity_and_its_role(azurite, container, storage, model):
    wrong = BlobStore(azurite.url, container.container_name,
                      {"account_name": ACCOUNT, "account_key": DEV_KEY[:-8] + "AAAAAAA="},
                      connection_verify=str(azurite.cert), max_attempts=1)
    with pytest.raises(MirrorSyncError) as raised:
        sync_prefix_to_mirror(storage, wrong, PREFIX)
    message = str(raised.value)
    assert "\n" not in message
    assert "this VM's managed identity needs the Storage Blob Data Contributor role" in message
    assert f"container {container.container_name} of storage account {ACCOUNT}" in message
    assert ROLE == "Storage Blob Data Contributor"


def test_an_unreachable_endpoint_is_one_line_naming_the_url(storage, model):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"https://127.0.0.1:{port}/{ACCOUNT}"
    nowhere = BlobStore(url, "models", {"account_name": ACCOUNT, "account_key": DEV_KEY}, max_attempts=1)
    with pytest.raises(MirrorSyncError) as raised:
        sync_prefix_to_mirror(storage, nowhere, PREFIX)
    assert "\n" not in str(raised.value)
    assert str(raised.value).startswith(f"the blob endpoint {url} cannot be reached while listing")


def test_a_host_without_the_azure_sdk_is_told_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "azure.storage.blob", None)  # what `import` sees when it is not installed
    store = BlobStore("https://deepracer1a2b.blob.core.windows.net", "models")
    with pytest.raises(MirrorSyncError, match=r"^the Azure SDK is not installed .*deepracer-cloud\[azure-host\]"):
        store.check()


def test_a_missing_container_is_named(azurite, storage):
    store = BlobStore(azurite.url, "no-such-container", {"account_name": ACCOUNT, "account_key": DEV_KEY},
                      connection_verify=str(azurite.cert), max_attempts=1)
    with pytest.raises(MirrorSyncError, match="container no-such-container does not exist in storage account"):
        store.check()


def test_the_vm_path_managed_identity_through_imds_reaches_the_container(azurite, azure_imds, container, storage,
                                                                        model, monkeypatch):
    """No credential given: ManagedIdentityCredential asks the (stand-in) IMDS for a Storage token."""
    for name in ("AZURE_CLIENT_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", azure_imds.url)
    store = BlobStore(azurite.url, container.container_name, connection_verify=str(azurite.cert), max_attempts=1)
    report = sync_prefix_to_mirror(storage, store, PREFIX)
    assert report.added == synced(model)
    assert azure_imds.token_requests and azure_imds.token_requests[-1]["resource"] == "https://storage.azure.com"


# -- system.env and the session's hooks ---------------------------------------------------------------------------

SYSTEM = ("DR_CLOUD={cloud}\nDR_LOCAL_S3_BUCKET={bucket}\nDR_SIMAPP_VERSION=6.0.4-gpu\n"
          "DR_LOCAL_ACCESS_KEY_ID=testing\nDR_LOCAL_SECRET_ACCESS_KEY=testing\n")


def host_for(tmp_path: Path, storage, cloud: str = "azure", run: str = "", azure: str = "") -> Host:
    if cloud == "azure" and not azure:
        azure = "DR_AZURE_STORAGE_ACCOUNT=deepracer1a2b\nDR_AZURE_BLOB_CONTAINER=models\n"
    (tmp_path / "system.env").write_text(SYSTEM.format(cloud=cloud, bucket=storage.bucket) + azure)
    (tmp_path / "run.env").write_text(f"DR_LOCAL_S3_MODEL_PREFIX={PREFIX}-2\n" + run)
    loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
    return Host(loaded.system, loaded.run, tmp_path / "custom_files", engine=None, storage=storage)  # type: ignore


def stopped(role: str, prefix: str | None, worker: int | None = None) -> ContainerInfo:
    now = datetime.now(timezone.utc)
    return ContainerInfo(id=uuid.uuid4().hex, name=f"deepracer-0-{role}", image="simapp", role=role, run="0",
                         worker=worker, prefix=prefix, status="exited", exit_code=0,
                         started_at=now - timedelta(hours=1), finished_at=now)


def test_blob_store_for_reads_the_stacks_account_and_container_from_system_env(tmp_path, storage):
    host = host_for(tmp_path, storage)
    store = blob_store_for(host.system)
    assert store.url == "https://deepracer1a2b.blob.core.windows.net/models"
    missing = host_for(tmp_path, storage, azure="DR_AZURE_STORAGE_ACCOUNT=deepracer1a2b\n")
    with pytest.raises(MirrorSyncError, match="^DR_AZURE_BLOB_CONTAINER: expected the stack's storage account"):
        blob_store_for(missing.system)
    bad = host_for(tmp_path, storage, azure="DR_AZURE_STORAGE_ACCOUNT=Deepracer_1\nDR_AZURE_BLOB_CONTAINER=models\n")
    with pytest.raises(MirrorSyncError, match="DR_AZURE_STORAGE_ACCOUNT: expected a storage account name"):
        blob_store_for(bad.system)


def test_the_keeper_does_nothing_on_aws(tmp_path, storage, model):
    # Any touch of this store would fail: nothing listens there.
    untouchable = BlobStore("https://127.0.0.1:9/none", "models", {"account_name": "x", "account_key": DEV_KEY},
                            max_attempts=1)
    host = replace(host_for(tmp_path, storage, cloud="aws",
                            run="DR_LOCAL_S3_PRETRAINED=True\nDR_LOCAL_S3_PRETRAINED_PREFIX=rl-elsewhere\n"),
                   mirror=untouchable)
    assert host.keeper.keep(stopped_prefixes([stopped("trainer", PREFIX)], host.run)) == []
    assert restore_pretrained(host) is None
    assert host.keeper.claim(host.run.local_s3_model_prefix, overwrite=True) is None
    assert host.keeper.keep_everything() == []
    said: list[str] = []
    no_engine = None  # on aws the engine is never asked
    assert sync_running(host.system, no_engine, storage, mirror=untouchable, say=said.append) == []  # type: ignore
    assert said == ["DR_CLOUD=aws: the models are in the working bucket already; nothing to sync"]


def test_a_stop_keeps_each_stopped_runs_prefix_with_its_logs(tmp_path, storage, blob, container, model,
                                                             s3_client):
    host = replace(host_for(tmp_path, storage), mirror=blob)
    s3_client.put_object(Bucket=storage.bucket, Key=f"{PREFIX}/logs/20250102000000-worker-1.log", Body=b"SIM_TRACE\n")
    said: list[str] = []
    # The SageMaker sibling carries no prefix label: it counts for run.env's prefix, which holds nothing here.
    containers = [stopped("trainer", PREFIX), stopped("worker", PREFIX, 1), stopped("sagemaker", None)]
    reports = host.keeper.keep(stopped_prefixes(containers, host.run), say=said.append)
    assert [r.target for r in reports] == [f"{blob.url}/{PREFIX}/", f"{blob.url}/{PREFIX}-2/"]
    assert "logs/20250102000000-worker-1.log" in reports[0].added
    assert f"{PREFIX}/logs/20250102000000-worker-1.log" in blob_etags(container)
    assert len(said) == 2 and said[0].startswith(f"s3://{storage.bucket}/{PREFIX}/ -> ")


def test_the_pretrained_prefix_is_restored_when_minio_lacks_it_and_left_when_it_has_it(tmp_path, storage, blob, model,
                                                                              make_bucket, s3_server, s3_client):
    from session.storage.s3 import Storage

    sync_prefix_to_mirror(storage, blob, PREFIX)
    run = f"DR_LOCAL_S3_PRETRAINED=True\nDR_LOCAL_S3_PRETRAINED_PREFIX={PREFIX}\n"
    assert restore_pretrained(replace(host_for(tmp_path, storage, run=run), mirror=blob)) is None  # MinIO has it

    with Storage(make_bucket("fresh-vm"), endpoint_url=s3_server, access_key="testing", secret_key="testing") as fresh:
        host = replace(host_for(tmp_path, storage, run=run), storage=fresh, mirror=blob)
        said: list[str] = []
        report = restore_pretrained(host, say=said.append)
        assert report is not None and report.added == synced(model)
        assert said[0] == f"s3://{fresh.bucket}/{PREFIX}/ is not in MinIO: restoring it from {blob.url}/{PREFIX}/"
        assert bucket_bytes(s3_client, fresh.bucket)["model/1_Step-2000.ckpt.index"] == model[
            "model/1_Step-2000.ckpt.index"]

        elsewhere = replace(host, run=replace(host.run, local_s3_pretrained_prefix="rl-nowhere"))
        assert restore_pretrained(elsewhere) is None  # the pretrained check will say what is missing
        assert restore_pretrained(host) is None  # asked once per host: restored already


def test_a_model_blob_keeps_from_an_earlier_vm_is_not_trained_over_without_overwrite(tmp_path, storage, blob,
                                                                                    container, model):
    sync_prefix_to_mirror(storage, blob, PREFIX)
    keeper = replace(host_for(tmp_path, storage), mirror=blob).keeper
    with pytest.raises(MirrorSyncError, match=rf"already holds a model .* `deepracer models restore {PREFIX}`"):
        keeper.claim(PREFIX)
    said: list[str] = []
    keeper.claim(PREFIX, overwrite=True, say=said.append)
    assert blob_etags(container) == {}
    assert said == [f"--overwrite: deleted {len(synced(model))} objects under {blob.url}/{PREFIX}/"]
    keeper.claim(PREFIX)  # a free name passes


class ListingEngine:
    """The one Engine call sync_running makes, answered from a list (labels are the engine's business)."""

    def __init__(self, containers: list[ContainerInfo]) -> None:
        self.containers = containers

    def list(self, run=None, role=None) -> list[ContainerInfo]:
        return list(self.containers)


def test_the_timer_syncs_running_runs_and_those_that_just_ended(tmp_path, storage, blob, model):
    now = datetime.now(timezone.utc)
    running = replace(stopped("trainer", PREFIX), status="running", finished_at=None)
    just_ended = replace(stopped("worker", "rl-just-ended", 1), finished_at=now - timedelta(minutes=12))
    long_ago = replace(stopped("trainer", "rl-last-week"), finished_at=now - timedelta(days=7))
    minio = replace(stopped("minio", None), status="running", finished_at=None)
    containers = [running, just_ended, long_ago, minio]
    assert prefixes_to_sync(containers, now) == [PREFIX, "rl-just-ended"]

    host = host_for(tmp_path, storage)
    said: list[str] = []
    reports = sync_running(host.system, ListingEngine([running, long_ago]), storage, mirror=blob, say=said.append)
    assert [r.added for r in reports] == [synced(model)] and len(said) == 1
    assert sync_running(host.system, ListingEngine([long_ago]), storage, mirror=blob, say=said.append) == []
    assert said[-1] == "no training or evaluation on this host: nothing to sync"


# -- the timer ----------------------------------------------------------------------------------------------------

UNITS_DIR = Path(__file__).resolve().parents[3] / "session" / "units"


def test_the_timer_runs_sync_models_every_10_minutes_as_the_user_who_trains_on_azure_only(tmp_path):
    import configparser

    units = {}
    for name in ("deepracer-blob-sync.service", "deepracer-blob-sync.timer"):
        units[name] = configparser.ConfigParser(strict=False, interpolation=None)
        units[name].read(UNITS_DIR / name)
    timer, service = units["deepracer-blob-sync.timer"], units["deepracer-blob-sync.service"]
    assert timer["Timer"]["OnCalendar"] == "*:0/10" and timer["Install"]["WantedBy"] == "timers.target"
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["ExecStart"] == \
        "/usr/sbin/runuser -u ${DR_HOST_USER} -- /opt/deepracer/venv/bin/deepracer sync-models --running"
    assert service["Service"]["ExecCondition"] == \
        '/bin/grep -Eqx "DR_CLOUD=azure|DR_MODEL_COPY_URL=.+" /etc/deepracer/system.env'
    assert service["Unit"]["ConditionPathExists"] == "/var/lib/deepracer/ready"

    # systemd's own checker, offline, with a stand-in `deepracer` (a typo'd key is printed with exit 0).
    stand_in = tmp_path / "deepracer"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    for name in units:
        (tmp_path / name).write_text((UNITS_DIR / name).read_text().replace("/opt/deepracer/venv/bin/", f"{tmp_path}/"))
    for name in units:
        result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / name)], capture_output=True,
                                text=True)
        assert result.returncode == 0 and result.stderr == "", result.stderr


def test_the_units_condition_runs_it_on_azure_and_on_a_local_machine_with_a_copy_only(tmp_path):
    """ExecCondition's grep, as systemd splits it (shlex: the quotes go), on a real system.env of each kind of
    host: azure and a local machine with DR_MODEL_COPY_URL run it; aws and a local machine without are skipped."""
    import configparser
    import shlex

    from infra.bootstrap import HostConfig, system_env

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(UNITS_DIR / "deepracer-blob-sync.service")
    condition = shlex.split(unit["Service"]["ExecCondition"])
    common = dict(region="westeurope", bucket="models", simapp_image="awsdeepracercommunity/deepracer-simapp:6.0.4-gpu",
                  workers=1, session_package_url="https://a.blob.core.windows.net/models/bootstrap/s.tar.gz",
                  status_url="https://a.blob.core.windows.net/models/hosts/")
    hosts = {
        "azure": (HostConfig(cloud="azure", minio_access_key="k", minio_secret_key="s", azure_storage_account="a",
                             azure_blob_container="models", **common), 0),
        "aws": (HostConfig(cloud="aws", **common), 1),
        "local": (HostConfig(cloud="local", minio_access_key="k", minio_secret_key="s", **common), 1),
        "local-copy": (HostConfig(cloud="local", minio_access_key="k", minio_secret_key="s",
                                  model_copy_url="s3://my-models", **common), 0),
    }
    for name, (host, runs) in hosts.items():
        path = tmp_path / f"{name}.env"
        path.write_text(system_env(host))
        assert subprocess.run([*condition[:-1], str(path)]).returncode == runs, name


# -- a stop with a deadline (a spot notice's NotBefore) -------------------------------------------------------------

NEWEST = ["model/2_Step-3000.ckpt.data-00000-of-00001", "model/2_Step-3000.ckpt.index", "model/2_Step-3000.ckpt.meta"]


class RecordingBlobStore(BlobStore):
    """The blob container of the tests, recording the order in which uploads end; `after` runs after each."""

    def __init__(self, *args, after=lambda names: None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.uploaded: list[str] = []
        self.after = after

    def put_stream(self, name, read, **kwargs):
        digests = super().put_stream(name, read, **kwargs)
        self.uploaded.append(name[len(PREFIX) + 1:])
        self.after(self.uploaded)
        return digests


def newest_model(s3_client, storage) -> dict[str, bytes]:
    """model_files() two iterations on: checkpoint 2 complete, checkpoint 3 half-written when training stopped."""
    files = model_files()
    for rel in NEWEST:
        files[rel] = _checkpoint_bytes(rel, 50_000)
    files["model/3_Step-4000.ckpt.index"] = _checkpoint_bytes("3.index", 1_000)
    files["model/.coach_checkpoint"] = b"2_Step-3000.ckpt\n"
    put_model(s3_client, storage.bucket, files)
    return files


def test_a_stop_copies_the_newest_complete_checkpoint_first_the_pointers_after_model_and_logs_last(
        tmp_path, azurite, container, storage, s3_client):
    files = newest_model(s3_client, storage)
    blob = RecordingBlobStore(azurite.url, container.container_name, {"account_name": ACCOUNT, "account_key": DEV_KEY},
                              connection_verify=str(azurite.cert), max_attempts=1)
    keeper = replace(host_for(tmp_path, storage), mirror=blob).keeper
    deadline = datetime.now(timezone.utc) + timedelta(minutes=5)
    (report,) = keeper.keep([PREFIX], deadline=deadline, say=lambda _: None)

    order = blob.uploaded
    assert sorted(order) == synced(files) and report.left == []
    assert sorted(order[:3]) == NEWEST  # what a resume needs first
    model_files_ = [rel for rel in order if rel.startswith("model/")]
    assert order[:len(model_files_)] == model_files_  # all of model/ before anything else
    assert model_files_[-2:] == ["model/.coach_checkpoint", "model/deepracer_checkpoints.json"]  # pointers last
    # within a group copies run in parallel (finishing in any order); the groups go in this order, logs first
    from session.storage.mirror_sync import copy_order

    groups, model, rest = copy_order(synced(files))
    assert groups == [NEWEST, ["model/3_Step-4000.ckpt.index", *(f"model/{n}_Step-{n + 1}000.ckpt.{suffix}"
                                                                for n in (1, 0) for suffix in
                                                                ("data-00000-of-00001", "index", "meta"))]]
    assert model == ["model/model_0.pb", "model/model_1.pb", "model/model_metadata.json"]
    assert rest[0] == "logs/20250101000000-trainer.log" and "metrics/TrainingMetrics.json" in rest


def test_no_copy_starts_after_the_deadline_and_what_was_left_is_said(tmp_path, azurite, container, storage, s3_client):
    files = newest_model(s3_client, storage)
    deadline = datetime.now(timezone.utc) + timedelta(minutes=5)
    late: list[bool] = []

    def after(uploaded: list[str]) -> None:  # the notice's time runs out once the newest checkpoint is copied
        if len(uploaded) == 3:
            late.append(True)

    blob = RecordingBlobStore(azurite.url, container.container_name, {"account_name": ACCOUNT, "account_key": DEV_KEY},
                              connection_verify=str(azurite.cert), max_attempts=1, after=after)
    keeper = replace(host_for(tmp_path, storage), mirror=blob).keeper
    said: list[str] = []
    (report,) = keeper.keep([PREFIX], deadline=deadline, say=said.append,
                            now=lambda: deadline + timedelta(seconds=1) if late else deadline - timedelta(seconds=30))

    assert sorted(blob.uploaded) == NEWEST
    assert sorted(item.name for item in container.list_blobs()) == [f"{PREFIX}/{rel}" for rel in NEWEST]
    # the pointers stay behind with the rest: Blob holds no pointer to a checkpoint it lacks
    assert report.left == sorted(set(synced(files)) - set(NEWEST))
    assert {"model/.coach_checkpoint", "logs/20250101000000-trainer.log"} <= set(report.left)
    assert f"{len(report.left)} NOT copied: the deadline passed first" in said[0]
    assert said[1].startswith(f"not copied to {blob.url}/{PREFIX}/ before the deadline: ")

    # a deadline passed before the copy began copies nothing, and says it
    (nothing,) = keeper.keep([PREFIX], deadline=deadline, now=lambda: deadline, say=lambda _: None)
    assert nothing.left == synced(files) and len(blob.uploaded) == 3
