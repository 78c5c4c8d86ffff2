"""A local machine's copy of its models (DR_MODEL_COPY_URL): the keeper's sync to an S3 bucket (S3Mirror), and
where the keeper finds its target. moto's server plays both MinIO and the user's bucket (two buckets, two
`Storage`s); the blob side of the same sync is tested against Azurite in test_blob_sync.py."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from session.lifecycle.stopping import stopped_prefixes
from session.run.training import restore_pretrained
from session.storage.blob import BlobStore
from session.storage.folder_mirror import FolderMirror
from session.storage.keeper import Keeper, mirror_for, require_mirror
from session.storage.mirror_sync import MirrorSyncError, restore_prefix_from_mirror, sync_prefix_to_mirror
from session.storage.s3 import PART_SIZE, Storage, StorageError
from session.storage.s3_mirror import S3Mirror
from tests.session.storage.test_blob_sync import (
    MARKERS,
    PREFIX,
    _checkpoint_bytes,
    bucket_bytes,
    host_for,
    model_files,
    put_model,
    stopped,
    synced,
)

BIG = "model/2_Step-3000.ckpt.data-00000-of-00001"  # larger than a part: a multipart upload


@pytest.fixture
def copy_bucket(make_bucket, s3_server):
    """The user's bucket for the copy, as a local machine reaches it."""
    with Storage(make_bucket("my-models"), endpoint_url=s3_server, access_key="testing",
                 secret_key="testing") as store:
        yield store


@pytest.fixture
def mirror(copy_bucket) -> S3Mirror:
    return S3Mirror(copy_bucket)


@pytest.fixture
def model(s3_client, storage) -> dict[str, bytes]:
    files = {**model_files(), BIG: _checkpoint_bytes("big", PART_SIZE + 5)}
    put_model(s3_client, storage.bucket, files)
    return files


def local_host(tmp_path, storage, copy_bucket, mirror, run: str = ""):
    host = host_for(tmp_path, storage, cloud="local", run=run,
                    azure=f"DR_MODEL_COPY_URL=s3://{copy_bucket.bucket}\n")
    return replace(host, mirror=mirror)


def sha256_of(s3_client, bucket: str, key: str) -> str:
    return s3_client.head_object(Bucket=bucket, Key=key)["Metadata"].get("sha256", "")


def test_a_stop_copies_the_model_to_the_bucket_byte_for_byte_with_its_sha256(tmp_path, storage, copy_bucket, mirror,
                                                                              model, s3_client):
    host = local_host(tmp_path, storage, copy_bucket, mirror)
    assert host.keeper.active
    said: list[str] = []
    reports = host.keeper.keep(stopped_prefixes([stopped("trainer", PREFIX)], host.run), say=said.append)

    assert reports[0].added == synced(model) and reports[0].skipped == sorted(MARKERS)
    assert bucket_bytes(s3_client, copy_bucket.bucket) == {rel: model[rel] for rel in synced(model)}
    for rel in ("metrics/TrainingMetrics.json", BIG):  # one request, and multipart
        assert sha256_of(s3_client, copy_bucket.bucket, f"{PREFIX}/{rel}") == hashlib.sha256(model[rel]).hexdigest()
    assert said[0].startswith(f"s3://{storage.bucket}/{PREFIX}/ -> s3://{copy_bucket.bucket}/{PREFIX}/: ")

    # The next tick copies nothing; a changed object of the same size is told by its content.
    again = sync_prefix_to_mirror(storage, mirror, PREFIX)
    assert again.transferred == [] and again.unchanged == synced(model)
    same_size = b"2_Step-3000.ckpt\n"
    s3_client.put_object(Bucket=storage.bucket, Key=f"{PREFIX}/model/.coach_checkpoint", Body=same_size)
    third = sync_prefix_to_mirror(storage, mirror, PREFIX)
    assert third.changed == ["model/.coach_checkpoint"] and third.added == []
    assert bucket_bytes(s3_client, copy_bucket.bucket)["model/.coach_checkpoint"] == same_size


def test_a_model_comes_back_from_the_bucket_and_a_copy_that_does_not_match_its_sha256_does_not(
        tmp_path, storage, copy_bucket, mirror, model, s3_client, make_bucket, s3_server):
    sync_prefix_to_mirror(storage, mirror, PREFIX)
    run = f"DR_LOCAL_S3_PRETRAINED=True\nDR_LOCAL_S3_PRETRAINED_PREFIX={PREFIX}\n"
    with Storage(make_bucket("new-disk"), endpoint_url=s3_server, access_key="testing", secret_key="testing") as fresh:
        host = replace(local_host(tmp_path, storage, copy_bucket, mirror, run=run), storage=fresh)
        report = restore_pretrained(host)
        assert report is not None and report.added == synced(model)
        assert bucket_bytes(s3_client, fresh.bucket) == {rel: model[rel] for rel in synced(model)}
        back = sync_prefix_to_mirror(fresh, mirror, PREFIX)  # recognised by SHA-256: nothing copied back
        assert back.transferred == [] and back.unchanged == synced(model)

    for rel in ("ip/hyperparameters.json", BIG):
        key = f"{PREFIX}/{rel}"
        mirror.set_metadata(key, {"sha256": "0" * 64})
    with Storage(make_bucket("new-disk"), endpoint_url=s3_server, access_key="testing", secret_key="testing") as fresh:
        with pytest.raises(MirrorSyncError, match="SHA-256 .* left as it was") as raised:
            restore_prefix_from_mirror(mirror, fresh, PREFIX)
        assert "\n" not in str(raised.value)
        restored = bucket_bytes(s3_client, fresh.bucket)
        assert "ip/hyperparameters.json" not in restored and BIG not in restored
        assert s3_client.list_multipart_uploads(Bucket=fresh.bucket).get("Uploads", []) == []


def test_a_model_the_bucket_keeps_is_not_trained_over_and_pruned_copies_go_only_when_asked(
        tmp_path, storage, copy_bucket, mirror, model, s3_client):
    sync_prefix_to_mirror(storage, mirror, PREFIX)
    keeper = Keeper(local_host(tmp_path, storage, copy_bucket, mirror).system, storage, mirror)
    with pytest.raises(MirrorSyncError, match=rf"s3://{copy_bucket.bucket}/{PREFIX}/ already holds a model"):
        keeper.claim(PREFIX)
    pruned = "model/0_Step-1000.ckpt.index"
    s3_client.delete_object(Bucket=storage.bucket, Key=f"{PREFIX}/{pruned}")
    kept = sync_prefix_to_mirror(storage, mirror, PREFIX)
    assert kept.target_only == [pruned] and pruned in bucket_bytes(s3_client, copy_bucket.bucket)
    deleted = sync_prefix_to_mirror(storage, mirror, PREFIX, delete=True)
    assert deleted.deleted == [pruned] and pruned not in bucket_bytes(s3_client, copy_bucket.bucket)

    said: list[str] = []
    keeper.claim(PREFIX, overwrite=True, say=said.append)
    assert bucket_bytes(s3_client, copy_bucket.bucket) == {}
    assert said == [f"--overwrite: deleted {len(synced(model)) - 1} objects under s3://{copy_bucket.bucket}/{PREFIX}/"]


def test_a_folder_in_a_shared_bucket_holds_the_copy_and_nothing_outside_it_is_read_or_touched(
        tmp_path, storage, copy_bucket, model, s3_client, make_bucket, s3_server):
    theirs = {"photos/cat.jpg": b"jpeg", f"{PREFIX}/model/notes.txt": b"the user's own, beside the folder",
              f"deepracer-old/{PREFIX}/model/x": b"a neighbour whose name starts like the folder's"}
    for key, body in theirs.items():
        s3_client.put_object(Bucket=copy_bucket.bucket, Key=key, Body=body)
    mirror = FolderMirror(S3Mirror(copy_bucket), "deepracer")
    keeper = Keeper(local_host(tmp_path, storage, copy_bucket, mirror).system, storage, mirror)

    report = sync_prefix_to_mirror(storage, mirror, PREFIX)
    assert report.added == synced(model) and report.target_only == []  # the user's `{PREFIX}/` is not the copy's
    assert report.summary().startswith(f"s3://{storage.bucket}/{PREFIX}/ -> s3://{copy_bucket.bucket}/deepracer/"
                                       f"{PREFIX}/: ")
    assert bucket_bytes(s3_client, copy_bucket.bucket, f"deepracer/{PREFIX}") == {rel: model[rel]
                                                                                 for rel in synced(model)}
    assert sha256_of(s3_client, copy_bucket.bucket, f"deepracer/{PREFIX}/{BIG}") == hashlib.sha256(
        model[BIG]).hexdigest()
    with pytest.raises(MirrorSyncError, match=rf"s3://{copy_bucket.bucket}/deepracer/{PREFIX}/ already holds a model"):
        keeper.claim(PREFIX)

    with Storage(make_bucket("new-disk"), endpoint_url=s3_server, access_key="testing", secret_key="testing") as fresh:
        back = restore_prefix_from_mirror(mirror, fresh, PREFIX)
        assert back.added == synced(model) and back.target_only == []
        assert bucket_bytes(s3_client, fresh.bucket) == {rel: model[rel] for rel in synced(model)}

    s3_client.delete_object(Bucket=storage.bucket, Key=f"{PREFIX}/model/0_Step-1000.ckpt.index")
    assert sync_prefix_to_mirror(storage, mirror, PREFIX, delete=True).deleted == ["model/0_Step-1000.ckpt.index"]
    keeper.claim(PREFIX, overwrite=True, say=lambda line: None)
    assert bucket_bytes(s3_client, copy_bucket.bucket, f"deepracer/{PREFIX}") == {}
    left = {item["Key"] for item in s3_client.list_objects_v2(Bucket=copy_bucket.bucket).get("Contents", [])}
    assert left == set(theirs)  # the user's objects, as they were
    for key, body in theirs.items():
        assert s3_client.get_object(Bucket=copy_bucket.bucket, Key=key)["Body"].read() == body


def test_the_keeper_finds_its_target_in_system_env(tmp_path, storage, monkeypatch):
    bucket = host_for(tmp_path, storage, cloud="local",
                      azure="DR_MODEL_COPY_URL=s3://my-models/\nDR_MODEL_COPY_PROFILE=home\n").system
    found = mirror_for(bucket)
    assert isinstance(found, S3Mirror) and found.url == "s3://my-models" and found.storage.profile == "home"
    with pytest.raises(StorageError, match="^AWS profile 'home' is in neither ~/.aws/config nor") as raised:
        found.check()  # the tests' environment has no such profile
    assert "\n" not in str(raised.value)

    folder = mirror_for(host_for(tmp_path, storage, cloud="local",
                                 azure="DR_MODEL_COPY_URL=s3://my-models/deepracer/2026/\n").system)
    assert isinstance(folder, FolderMirror) and folder.url == "s3://my-models/deepracer/2026"
    assert isinstance(folder.inner, S3Mirror) and folder.inner.url == "s3://my-models"
    in_container = mirror_for(host_for(tmp_path, storage, cloud="local", azure="DR_MODEL_COPY_URL="
                                       "https://mine1.blob.core.windows.net/models/deepracer\n").system)
    assert isinstance(in_container, FolderMirror) and isinstance(in_container.inner, BlobStore)
    assert in_container.url == "https://mine1.blob.core.windows.net/models/deepracer"

    container = host_for(tmp_path, storage, cloud="local",
                         azure="DR_MODEL_COPY_URL=https://mine1.blob.core.windows.net/models\n").system
    blob = mirror_for(container)
    assert isinstance(blob, BlobStore) and blob.url == "https://mine1.blob.core.windows.net/models"
    assert type(blob._credential).__name__ == "DefaultAzureCredential" and "az login" in blob.identity

    import builtins

    real_import = builtins.__import__

    def without_azure(name, *args, **kwargs):  # a venv the bootstrap installed before the URL was set
        if name.startswith("azure"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(builtins, "__import__", without_azure)
        with pytest.raises(MirrorSyncError, match=r"^DR_MODEL_COPY_URL: a blob container needs the Azure SDK"):
            mirror_for(container)

    plain = host_for(tmp_path, storage, cloud="local").system
    assert not Keeper(plain, storage).active
    with pytest.raises(MirrorSyncError, match=r"^`deepracer sync-models` copies models .* this host has DR_CLOUD=local "
                                            r"and no DR_MODEL_COPY_URL$"):
        require_mirror(plain, "sync-models")
    aws = host_for(tmp_path, storage, cloud="aws", azure="DR_MODEL_COPY_URL=s3://my-models\n").system
    assert not Keeper(aws, storage).active  # the working bucket is the copy there
    with pytest.raises(MirrorSyncError, match="^DR_MODEL_COPY_URL: DR_CLOUD=aws keeps no copy"):
        mirror_for(aws)


def test_a_url_that_names_no_bucket_or_container_is_refused_when_system_env_is_read(tmp_path, storage):
    from session.core.errors import DeepracerError

    for wrong in ("s3://My_Bucket", "https://mine1.blob.core.windows.net/", "http://nas:9000/models",
                  "s3://my-models/../other", "s3://my-models/.hidden", "s3://my-models//twice",
                  "https://mine1.blob.core.windows.net/models/a b"):
        with pytest.raises(DeepracerError, match=r"DR_MODEL_COPY_URL.*s3://<bucket>\[/<folder>\] or https://<account>"):
            host_for(tmp_path, storage, cloud="local", azure=f"DR_MODEL_COPY_URL={wrong}\n")
