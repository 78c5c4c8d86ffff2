"""session.models.export: the real model folders (see test_models.py for what is real and what stands in) exported to
another bucket and to a folder over moto's S3 server, re-read, checked as DRoA's import would check them; the car
package; models brought in from elsewhere; and every refusal and checksum failure.

Checksum failures are made two ways: a botocore event hook on the target storage's own client that, right after
a PutObject, overwrites the object through a second client with other bytes of the same length (the copy is then
corrupt between writing and verifying); and a folder target whose write flips a byte of what it was given.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml

from session.core.config import load_config
from session.models.export import (
    CAR_GRAPH,
    CAR_METADATA,
    DirTarget,
    ExportResult,
    S3Target,
    car_package,
    car_tar,
    check_droa_folder,
    download_model,
    droa_import_problems,
    export_model,
    open_target,
    parse_s3_url,
    target_training_params,
)
from session.models.library import ModelError, list_models, show_model
from session.run.progress import read_progress
from session.run.training_params import training_params
from session.storage.layout import CHECKPOINTS_JSON
from session.storage.s3 import ChecksumMismatch, Storage
from tests.session.models.test_models import (
    CONSOLE,
    CONSOLE_ROOT,
    DRFC_1,
    DRFC_3,
    DROA,
    DROA_METRICS,
    DROA_ROOT,
    REWARD,
    RealBucket,
    fill_real_models,
    stand_in,
)

DROA_PREFIX = f"{DROA_ROOT}/sagemaker-artifacts"
CONSOLE_PREFIX = f"{CONSOLE_ROOT}/sagemaker-robomaker-artifacts"


@pytest.fixture(scope="module")
def real_models(s3_server, tmp_path_factory) -> RealBucket:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket = f"export-src-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    return fill_real_models(s3, bucket, s3_server, tmp_path_factory.mktemp("params"))


@pytest.fixture
def source(real_models):
    with real_models.storage() as storage:
        yield storage


@pytest.fixture
def other(s3_server, make_bucket):
    """An empty bucket on the same server: the export target."""
    with Storage(make_bucket("export-dst"), endpoint_url=s3_server, access_key="testing",
                 secret_key="testing") as storage:
        yield storage


def folder_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def bucket_files(storage: Storage, prefix: str) -> dict[str, bytes]:
    folder = prefix.strip("/") + "/"
    return {info.key[len(folder):]: storage.get_bytes(info.key) for info in storage.list_objects(folder)}


def errors(problems) -> list[str]:
    return [str(p) for p in problems if p.is_error]


def run_config(tmp_path: Path, bucket: str, run_env: str):
    (tmp_path / "system.env").write_text(f"DR_CLOUD=aws\nDR_LOCAL_S3_BUCKET={bucket}\nDR_SIMAPP_VERSION=5.4.0-gpu\n")
    (tmp_path / "run.env").write_text(run_env)
    loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
    return loaded.system, loaded.run


# --- to another bucket --------------------------------------------------------------------------------------------


def test_export_best_to_another_bucket_and_read_it_back(real_models, source, other):
    facts = real_models.models["rl-drfc-1"]
    result = export_model(source, "rl-drfc-1", "best", "s3://" + other.bucket + "/exported/rl-drfc-1",
                          target_storage=other)
    best = facts.best
    number = facts.number(best)
    put = {key[len("rl-drfc-1/"):]: data for key, data in facts.objects.items()}
    arrived = bucket_files(other, "exported/rl-drfc-1")
    metrics = sorted(rel for rel in put if rel.startswith("metrics/"))
    assert sorted(arrived) == sorted([
        *(f"model/{best}{s}" for s in (".index", ".meta", ".data-00000-of-00001")), f"model/model_{number}.pb",
        "model/model_metadata.json", "model/.coach_checkpoint", f"model/{CHECKPOINTS_JSON}", "model_metadata.json",
        "reward_function.py", "training_params.yaml", "ip/hyperparameters.json", *metrics,
        "metrics/training/training-rl-drfc-1.json"])
    for rel in (f"model/{best}.index", f"model/{best}.data-00000-of-00001", f"model/model_{number}.pb",
                "ip/hyperparameters.json", "model/model_metadata.json", *metrics):
        assert arrived[rel] == put[rel], rel
    assert arrived["model_metadata.json"] == put["model/model_metadata.json"]
    assert arrived["reward_function.py"] == REWARD.read_bytes()
    assert arrived["metrics/training/training-rl-drfc-1.json"] == put["metrics/TrainingMetrics.json"]
    assert arrived["model/.coach_checkpoint"] == best.encode()
    document = json.loads(arrived[f"model/{CHECKPOINTS_JSON}"])
    original = json.loads(put[f"model/{CHECKPOINTS_JSON}"])["best_checkpoint"]
    assert document == {"best_checkpoint": original, "last_checkpoint": original}

    params = yaml.safe_load(arrived["training_params.yaml"])
    assert params["SAGEMAKER_SHARED_S3_BUCKET"] == params["METRICS_S3_BUCKET"] == other.bucket
    assert params["SAGEMAKER_SHARED_S3_PREFIX"] == params["SIMTRACE_S3_PREFIX"] == "exported/rl-drfc-1"
    assert params["METRICS_S3_OBJECT_KEY"] == "exported/rl-drfc-1/metrics/TrainingMetrics.json"
    assert params["MODEL_METADATA_FILE_S3_KEY"] == "exported/rl-drfc-1/model/model_metadata.json"
    assert params["REWARD_FILE_S3_KEY"] == "exported/rl-drfc-1/reward_function.py"
    assert params["WORLD_NAME"] == "reinvent_base" and "TRACK_DIRECTION_CLOCKWISE" not in params
    assert result.training_params == params

    assert result.checkpoint.name == best and result.target == f"s3://{other.bucket}/exported/rl-drfc-1/"
    assert {f.path for f in result.files} == set(arrived)
    assert all(f.sha256 == hashlib.sha256(arrived[f.path]).hexdigest() for f in result.files)
    assert {f.verified_by for f in result.files} == {"etag"}
    assert errors(result.problems) == [] and result.left_alone == []

    # Read back as a model: one checkpoint, last and best the chosen one, the same training episodes.
    [summary] = list_models(other)
    assert summary.prefix == "exported/rl-drfc-1"
    assert [c.name for c in summary.checkpoints] == [best] and summary.last.name == summary.best.name == best
    assert summary.episodes == read_progress(source, "rl-drfc-1", "rl-drfc-1/metrics").episodes
    details = show_model(other, "exported/rl-drfc-1")
    assert details.training["SAGEMAKER_SHARED_S3_PREFIX"] == "exported/rl-drfc-1" and details.notes == ()
    json.dumps(result.to_dict())


def test_export_a_checkpoint_by_number(real_models, source, other):
    facts = real_models.models["rl-drfc-1"]
    chosen = next(name for name in facts.kept if name not in (facts.best, facts.last))
    number = facts.number(chosen)
    result = export_model(source, "rl-drfc-1", number, f"s3://{other.bucket}/n", target_storage=other)
    document = json.loads(other.get_bytes(f"n/model/{CHECKPOINTS_JSON}"))
    iteration = read_progress(source, "rl-drfc-1", "rl-drfc-1/metrics").iterations[number]
    # Not in the source's json: an entry with that checkpoint's evaluation mean and its index file's time.
    entry = document["best_checkpoint"]
    assert document["last_checkpoint"] == entry and entry["name"] == chosen
    assert entry["avg_eval_metric"] == iteration.eval_completion
    assert entry["time_stamp"] == pytest.approx(other.stat(f"n/model/{chosen}.index").last_modified.timestamp(),
                                                abs=120)
    assert other.get_text("n/model/.coach_checkpoint") == chosen and result.notes == []


def test_a_numbered_checkpoint_exported_on_its_own_is_what_training_starts_from_with_last(real_models, source,
                                                                                            tmp_path):
    # What run.env's error for DR_LOCAL_S3_PRETRAINED_CHECKPOINT=<number> tells a user to do (simapp 6.0.4 starts
    # only from best or last): the export's `last` is that checkpoint, complete, so train's check accepts it.
    from session.checks.pretrained import PretrainedError, check_pretrained

    facts = real_models.models["rl-drfc-1"]
    chosen = next(name for name in facts.kept if name not in (facts.best, facts.last))
    number = facts.number(chosen)
    base = f"rl-drfc-1-checkpoint-{number}-{uuid.uuid4().hex[:6]}"
    export_model(source, "rl-drfc-1", number, f"s3://{source.bucket}/{base}")
    _, run = run_config(tmp_path, source.bucket, f"DR_LOCAL_S3_PRETRAINED=True\nDR_LOCAL_S3_PRETRAINED_PREFIX={base}\n"
                                                 "DR_LOCAL_S3_PRETRAINED_CHECKPOINT=last\n")
    check_pretrained(run, source)
    assert source.get_json(f"{base}/model/{CHECKPOINTS_JSON}")["last_checkpoint"]["name"] == chosen
    source.client.delete_object(Bucket=source.bucket, Key=f"{base}/model/{chosen}.meta")
    with pytest.raises(PretrainedError, match=f"the last checkpoint {chosen.removesuffix('.ckpt')} misses"):
        check_pretrained(run, source)
    source.delete_prefix(base)


def test_export_into_the_same_bucket_and_refusing_to_export_into_the_model_itself(source):
    with Storage(source.bucket, endpoint_url=source.endpoint_url, access_key="testing", secret_key="testing") as s:
        result = export_model(s, DROA_ROOT, "last", f"s3://{s.bucket}/copies/droa")
        assert errors(result.problems) == []
        for inside in (f"s3://{s.bucket}/{DROA_ROOT}/export", f"s3://{s.bucket}/admin19c0b9859c"):
            with pytest.raises(ModelError, match="one contains the other"):
                export_model(s, DROA_ROOT, "last", inside)
        s.delete_prefix("copies")


def test_the_droa_world_name_and_metrics_in_an_export(source, other):
    result = export_model(source, DROA_ROOT, "best", f"s3://{other.bucket}/droa", target_storage=other)
    params = yaml.safe_load(other.get_bytes("droa/training_params.yaml"))
    assert params["WORLD_NAME"] == "reInvent2019_wide" and params["TRACK_DIRECTION_CLOCKWISE"] is True
    assert params["BODY_SHELL_TYPE"] == "f1_car_mercedes_08" and params["MIN_EVAL_TRIALS"] == 2
    assert other.get_bytes(f"droa/metrics/training/{DROA_METRICS}") == (DROA / "training-metrics.json").read_bytes()
    assert not [f for f in result.files if f.path.startswith("metrics/training/training-")]  # DRoA's name suffices
    assert result.checkpoint.name == "13_Step-8383.ckpt"
    assert errors(result.problems) == [] and [str(p) for p in result.problems] == []


# --- to a folder --------------------------------------------------------------------------------------------------


def test_export_to_a_folder_passes_the_droa_check(source, tmp_path):
    target = tmp_path / "droa-model"
    result = export_model(source, DROA_PREFIX, "last", target)
    files = folder_files(target)
    assert {"model_metadata.json", "reward_function.py", "training_params.yaml", "ip/hyperparameters.json",
            "model/model_metadata.json", "model/.coach_checkpoint", f"model/{CHECKPOINTS_JSON}",
            f"metrics/training/{DROA_METRICS}"} <= set(files)
    assert files["model/model_metadata.json"] == files["model_metadata.json"]
    assert {f.verified_by for f in result.files} == {"sha256"}
    assert check_droa_folder(DirTarget(target)) == result.problems == []
    params = yaml.safe_load(files["training_params.yaml"])
    assert not {"SAGEMAKER_SHARED_S3_BUCKET", "SAGEMAKER_SHARED_S3_PREFIX", "METRICS_S3_BUCKET",
                "MODEL_METADATA_FILE_S3_KEY", "REWARD_FILE_S3_KEY"} & set(params)  # no location: no location keys
    assert result.notes == [f"training_params.yaml names no bucket or prefix: {target} is a folder; give its S3 "
                            "location (--as s3://bucket/prefix) to have them written"]
    assert not list(target.rglob("*.part"))


def test_a_folder_with_its_future_s3_location(source, tmp_path):
    export_model(source, "rl-drfc-1", "last", DirTarget(tmp_path / "m", location="s3://upload-bucket/uploads/m1"))
    params = yaml.safe_load((tmp_path / "m" / "training_params.yaml").read_text())
    assert params["SAGEMAKER_SHARED_S3_BUCKET"] == "upload-bucket"
    assert params["MODEL_METADATA_FILE_S3_KEY"] == "uploads/m1/model/model_metadata.json"


def test_a_model_without_training_params_needs_them_from_run_env(source, tmp_path):
    with pytest.raises(ModelError) as caught:
        export_model(source, CONSOLE_ROOT, "best", tmp_path / "console")
    assert str(caught.value).startswith(f"no training_params.yaml in s3://{source.bucket}/{CONSOLE_PREFIX}/: the "
                                        "export needs the track")
    assert not (tmp_path / "console").exists()
    system, run = run_config(tmp_path, source.bucket, "DR_WORLD_NAME=reinvent_base\nDR_CAR_COLOR=Blue\n")
    result = export_model(source, CONSOLE_ROOT, "best", tmp_path / "console",
                          fallback_params=training_params(system, run))
    files = folder_files(tmp_path / "console")
    assert yaml.safe_load(files["training_params.yaml"])["CAR_COLOR"] == "Blue"
    assert result.notes[0] == (f"training_params.yaml built from the current run.env: "
                               f"s3://{source.bucket}/{CONSOLE_PREFIX}/ has none")
    assert files["ip/hyperparameters.json"] == (CONSOLE / "ip" / "hyperparameters.json").read_bytes()
    assert "metrics/training/training-20220611205309-EHNgTNY2T9-77qXhqjBi6A.json" in files
    assert "metrics/evaluation/evaluation-20220612082523-IBZwYd0MRMqgwKlAe7bb0A.json" in files
    assert errors(result.problems) == []


def test_a_reward_function_from_the_params_custom_files_key(source, tmp_path):
    result = export_model(source, "rl-drfc-3", "best", tmp_path / "three")
    files = folder_files(tmp_path / "three")
    assert files["reward_function.py"] == REWARD.read_bytes()
    assert result.notes == [f"reward_function.py taken from s3://{source.bucket}/custom_files/reward_function.py "
                            "(the model has no copy of its own); check it is the one the model was trained with",
                            f"training_params.yaml names no bucket or prefix: {tmp_path / 'three'} is a folder; "
                            "give its S3 location (--as s3://bucket/prefix) to have them written"]
    for name in ("TrainingMetrics.json", "TrainingMetrics_1.json", "TrainingMetrics_2.json"):
        assert files[f"metrics/{name}"] == (DRFC_3 / "metrics" / name).read_bytes()
    assert files["metrics/training/training-rl-drfc-3.json"] == files["metrics/TrainingMetrics.json"]


# --- refusals -------------------------------------------------------------------------------------------------


def test_a_model_without_hyperparameters_or_reward_function_is_not_exported(source, s3_client, make_bucket, tmp_path):
    broken = make_bucket("broken")
    for name in ("1_Step-10.ckpt.index", "1_Step-10.ckpt.meta", "1_Step-10.ckpt.data-00000-of-00001",
                 "model_metadata.json"):
        s3_client.put_object(Bucket=broken, Key=f"m/model/{name}", Body=b"{}")
    s3_client.put_object(Bucket=broken, Key="m/training_params.yaml", Body=b"WORLD_NAME: reinvent_base\n")
    with Storage(broken, endpoint_url=source.endpoint_url, access_key="testing", secret_key="testing") as there:
        with pytest.raises(ModelError) as caught:
            export_model(there, "m", "last", tmp_path / "m")
    assert str(caught.value) == (f"cannot export s3://{broken}/m/: missing ip/hyperparameters.json, "
                                 "reward_function.py (looked in the model's folders and where its training params "
                                 "point)")
    assert not (tmp_path / "m").exists()



def test_a_target_that_holds_files_is_refused_unless_overwrite(source, other, tmp_path):
    other.put_text("taken/notes.txt", "mine")
    with pytest.raises(ModelError) as caught:
        export_model(source, "rl-drfc-1", "last", f"s3://{other.bucket}/taken", target_storage=other)
    assert str(caught.value) == (f"s3://{other.bucket}/taken/ already holds 1 file(s) (e.g. notes.txt); refusing to "
                                 "overwrite: choose an empty target or pass --overwrite")
    assert bucket_files(other, "taken") == {"notes.txt": b"mine"}
    result = export_model(source, "rl-drfc-1", "last", f"s3://{other.bucket}/taken", target_storage=other,
                          overwrite=True)
    assert result.left_alone == ["notes.txt"] and other.get_text("taken/notes.txt") == "mine"

    folder = tmp_path / "taken"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "old.pb").write_bytes(b"old")
    with pytest.raises(ModelError, match=f"^{folder} already holds 1 file\\(s\\) \\(e.g. model/old.pb\\)"):
        export_model(source, "rl-drfc-1", "last", folder)
    assert folder_files(folder) == {"model/old.pb": b"old"}
    assert export_model(source, "rl-drfc-1", "last", folder, overwrite=True).left_alone == ["model/old.pb"]


@pytest.mark.parametrize("prefix, checkpoint, expected", [
    ("nothing-here", "last", "no model at s3://{bucket}/nothing-here/: it holds nothing"),
    ("rl-drfc-1", 3, "checkpoint 3 is not in s3://{bucket}/rl-drfc-1/model/ (complete checkpoints there: "),
    ("rl-drfc-1", "newest", "--checkpoint: expected last, best or a checkpoint number, got 'newest'"),
])
def test_export_errors_are_one_line(source, tmp_path, prefix, checkpoint, expected):
    with pytest.raises(ModelError) as caught:
        export_model(source, prefix, checkpoint, tmp_path / "x")
    assert str(caught.value).startswith(expected.format(bucket=source.bucket)) and "\n" not in str(caught.value)
    assert not (tmp_path / "x").exists()


# --- checksums ------------------------------------------------------------------------------------------------


def corrupt_after_put(storage: Storage, s3_client, victim: str) -> None:
    """After the target's PutObject of `victim`, replace the object with other bytes of the same length."""

    def remember(params, context, **kwargs):
        context["test_key"] = (params["Bucket"], params["Key"])

    def corrupt(context, **kwargs):
        bucket, key = context["test_key"]
        if key.endswith(victim):
            body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
            s3_client.put_object(Bucket=bucket, Key=key, Body=bytes(b ^ 1 for b in body))

    storage.client.meta.events.register("before-parameter-build.s3.PutObject", remember)
    storage.client.meta.events.register("after-call.s3.PutObject", corrupt)


def test_an_object_corrupted_between_writing_and_verifying_is_caught(real_models, source, other, s3_client):
    facts = real_models.models["rl-drfc-1"]
    victim = f"{facts.last}.data-00000-of-00001"
    corrupt_after_put(other, s3_client, victim)
    with pytest.raises(ChecksumMismatch) as caught:
        export_model(source, "rl-drfc-1", "last", f"s3://{other.bucket}/bad", target_storage=other)
    message = str(caught.value)
    assert message.startswith(f"s3://{other.bucket}/bad/model/{victim} arrived different from what was read from "
                              f"s3://{source.bucket}/rl-drfc-1/model/{victim}: SHA-256 ")
    assert message.endswith("the export is incomplete, run it again with --overwrite")
    left = bucket_files(other, "bad")
    assert "model/.coach_checkpoint" not in left and f"model/{CHECKPOINTS_JSON}" not in left  # written last


def test_an_etag_that_is_not_an_md5_is_verified_by_reading_back(source, other):
    def foreign_etag(parsed, **kwargs):
        parsed["ETag"] = '"kms-encrypted-etag"'

    other.client.meta.events.register("after-call.s3.HeadObject", foreign_etag)
    result = export_model(source, DROA_ROOT, "best", f"s3://{other.bucket}/kms", target_storage=other)
    assert {f.verified_by for f in result.files} == {"sha256"}


class FlippingFolder(DirTarget):
    """A folder that stores what it is given with its first byte changed: a disk that corrupts."""

    def write(self, rel, staged):
        super().write(rel, staged)
        path = self._path(rel)
        data = bytearray(path.read_bytes())
        if rel.endswith(".pb") and data:
            data[0] ^= 0xFF
            path.write_bytes(bytes(data))


def test_a_folder_that_alters_data_is_caught(real_models, source, tmp_path):
    number = real_models.models[DROA_PREFIX].number("13_Step-8383.ckpt")
    with pytest.raises(ChecksumMismatch, match=f"model/model_{number}.pb arrived different from what was read from "
                                               f"s3://{source.bucket}/{DROA_PREFIX}/model/model_{number}.pb"):
        export_model(source, DROA_ROOT, "best", FlippingFolder(tmp_path / "flip"))


def test_a_source_object_that_is_not_what_its_checksum_says_is_caught(source, other, s3_client):
    s3_client.copy_object(Bucket=source.bucket, Key="rl-drfc-1/model/model_metadata.json",
                          CopySource={"Bucket": source.bucket, "Key": "rl-drfc-1/model/model_metadata.json"},
                          Metadata={"sha256": "0" * 64}, MetadataDirective="REPLACE")
    try:
        with pytest.raises(ChecksumMismatch, match="downloaded s3://.*/rl-drfc-1/model/model_metadata.json has "
                                                   "SHA-256 .*, its metadata says 000000000000"):
            export_model(source, "rl-drfc-1", "last", f"s3://{other.bucket}/src", target_storage=other)
    finally:
        s3_client.copy_object(Bucket=source.bucket, Key="rl-drfc-1/model/model_metadata.json",
                              CopySource={"Bucket": source.bucket, "Key": "rl-drfc-1/model/model_metadata.json"},
                              Metadata={}, MetadataDirective="REPLACE")


# --- the car --------------------------------------------------------------------------------------------------


def test_the_car_package_holds_the_chosen_graph_and_the_metadata(real_models, source, tmp_path):
    facts = real_models.models["rl-drfc-1"]
    package = car_package(source, "rl-drfc-1", "best", out=tmp_path / "car" / "model.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(package.data), mode="r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["agent", CAR_GRAPH, CAR_METADATA]
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "root" for m in members)
        assert tar.extractfile(CAR_GRAPH).read() == stand_in(f"model_{facts.best}.pb")
        assert tar.extractfile(CAR_METADATA).read() == (DRFC_1 / "model" / "model_metadata.json").read_bytes()
    assert package.checkpoint.name == facts.best and package.path.read_bytes() == package.data
    assert package.sha256 == hashlib.sha256(package.data).hexdigest()
    assert gzip.decompress(package.data)  # a plain gzip stream
    assert package.data[4:8] == b"\0\0\0\0"  # gzip header time 0


def test_the_car_package_is_the_same_bytes_every_time(source):
    first = car_package(source, DROA_ROOT, "last").data
    assert car_package(source, DROA_ROOT, "last").data == first
    assert car_package(source, DROA_ROOT, 14).data != first  # and depends on the checkpoint
    assert car_tar({"b": b"2", "a/x": b"1"}) == car_tar({"a/x": b"1", "b": b"2"})


def test_no_car_package_without_the_frozen_graph(real_models, source, s3_client):
    facts = real_models.models["rl-drfc-3"]
    graph = f"rl-drfc-3/model/model_{facts.number(facts.last)}.pb"
    data = source.get_bytes(graph)
    s3_client.delete_object(Bucket=source.bucket, Key=graph)
    try:
        with pytest.raises(ModelError) as caught:
            car_package(source, "rl-drfc-3", "last")
        others = sorted(facts.number(n) for n in facts.kept if n != facts.last)
        assert str(caught.value) == (f"model_{facts.number(facts.last)}.pb of {facts.last} is not in "
                                     f"s3://{source.bucket}/rl-drfc-3/model/; checkpoints with a frozen graph: "
                                     f"{', '.join(map(str, others))}")
    finally:
        s3_client.put_object(Bucket=source.bucket, Key=graph, Body=data)


# --- a model from elsewhere ----------------------------------------------------------------------------------


def test_download_a_droa_model_as_a_pretrained_base(real_models, source, other):
    url = f"s3://{source.bucket}/{DROA_ROOT}"
    result = download_model(url, source, other, "pretrained/droa")
    arrived = bucket_files(other, "pretrained/droa")
    facts = real_models.models[DROA_PREFIX]
    for name in facts.kept:
        for suffix in (".index", ".meta", ".data-00000-of-00001"):
            assert arrived[f"model/{name}{suffix}"] == stand_in(name + suffix)
    assert arrived["model/.coach_checkpoint"] == facts.newest.encode()
    assert arrived[f"model/{CHECKPOINTS_JSON}"] == facts.objects[f"{DROA_PREFIX}/model/{CHECKPOINTS_JSON}"]
    assert arrived["model/model_metadata.json"] == arrived["model_metadata.json"]
    assert arrived["reward_function.py"] == REWARD.read_bytes()
    params = yaml.safe_load(arrived["training_params.yaml"])
    assert params["SAGEMAKER_SHARED_S3_PREFIX"] == "pretrained/droa" and params["WORLD_NAME"] == "reInvent2019_wide"
    assert result.checkpoint.name == "13_Step-8383.ckpt"
    [summary] = list_models(other)
    assert (summary.prefix, summary.best.name) == ("pretrained/droa", "13_Step-8383.ckpt")
    assert [c.name for c in summary.checkpoints] == facts.kept


def test_download_refuses_a_model_that_cannot_be_trained_from(source, other, s3_client, make_bucket):
    broken = make_bucket("broken")
    s3_client.put_object(Bucket=broken, Key="m/model/1_Step-10.ckpt.index", Body=b"x")
    s3_client.put_object(Bucket=broken, Key="m/model/deepracer_checkpoints.json",
                         Body=json.dumps({"last_checkpoint": {"name": "1_Step-10.ckpt"}}).encode())
    s3_client.put_object(Bucket=broken, Key="m/model/model_metadata.json", Body=b"{}")
    with Storage(broken, endpoint_url=source.endpoint_url, access_key="testing", secret_key="testing") as there:
        with pytest.raises(ModelError) as caught:
            download_model(f"s3://{broken}/m", there, other, "pretrained/m")
        assert str(caught.value) == (f"s3://{broken}/m/ cannot be a pretrained base: missing ip/hyperparameters.json; "
                                     "reward_function.py; a complete checkpoint in model/ (.index, .meta and .data "
                                     "files); the files of 1_Step-10.ckpt, the last checkpoint in "
                                     "deepracer_checkpoints.json")
        with pytest.raises(ModelError, match="the storage given is for bucket"):
            download_model("s3://elsewhere/m", there, other, "pretrained/m")
    assert list(other.list_objects("pretrained")) == []
    other.put_text("pretrained/droa/x", "x")
    with pytest.raises(ModelError, match="already holds 1 file"):
        download_model(f"s3://{source.bucket}/rl-drfc-1", source, other, "pretrained/droa")


# --- the DRoA check ----------------------------------------------------------------------------------------------


GOOD = {
    "model_metadata.json": json.dumps({"action_space": {"speed": {"low": 1, "high": 2},
                                                        "steering_angle": {"low": -25, "high": 25}},
                                       "action_space_type": "continuous", "training_algorithm": "sac",
                                       "sensor": ["FRONT_FACING_CAMERA"]}).encode(),
    "reward_function.py": b"def reward_function(params):\n    return 1.0\n",
    "training_params.yaml": b"WORLD_NAME: reInvent2019_wide\nTRACK_DIRECTION_CLOCKWISE: true\n",
    "ip/hyperparameters.json": b'{"num_episodes_between_training": 1}',
    "model/model_metadata.json": b"{}",
    "model/.coach_checkpoint": b"2_Step-20.ckpt",
    "model/2_Step-20.ckpt.index": b"i", "model/2_Step-20.ckpt.meta": b"m",
    "model/2_Step-20.ckpt.data-00000-of-00001": b"d",
    "model/deepracer_checkpoints.json": b'{"last_checkpoint": {"name": "2_Step-20.ckpt"}}',
    "metrics/training/training-1.json": b"{}",
}


def check(**changes) -> list[str]:
    files = {**GOOD, **{name.replace("__", "/"): data for name, data in changes.items() if data is not None}}
    for name, data in changes.items():
        if data is None:
            files.pop(name.replace("__", "/"))
    return [str(p) for p in droa_import_problems({n: len(d) for n, d in files.items()}, files.__getitem__)]


def test_the_droa_check_passes_a_good_folder():
    assert check() == []


@pytest.mark.parametrize("changes, expected", [
    ({"training_params.yaml": None}, "training_params.yaml: missing; DRoA's import requires it"),
    ({"ip__hyperparameters.json": None}, "ip/hyperparameters.json: missing; DRoA's import requires it"),
    ({"model__.coach_checkpoint": b"3_Step-30.ckpt"},
     "model/.coach_checkpoint: names '3_Step-30.ckpt', which has not all of its .index, .meta and .data files"),
    ({"model__deepracer_checkpoints.json": b'{"best_checkpoint": {"name": "1_Step-1.ckpt"}}'},
     "model/deepracer_checkpoints.json: best_checkpoint: names '1_Step-1.ckpt', which has not all of its"),
    ({"ip__hyperparameters.json": b'{"num_episodes_between_training": 20}'},
     "ip/hyperparameters.json: num_episodes_between_training: expected the number 1 for SAC, got 20"),
    ({"ip__hyperparameters.json": b'{"num_episodes_between_training": "1"}'},  # DRoA compares with 1 strictly
     "ip/hyperparameters.json: num_episodes_between_training: expected the number 1 for SAC, got '1'"),
    ({"model_metadata.json": b'{"action_space": [], "training_algorithm": "sac"}'},
     "model_metadata.json: training_algorithm: sac needs \"action_space_type\": \"continuous\""),
    ({"training_params.yaml": b"WORLD_NAME: reInvent2019_wide_cw\nTRACK_DIRECTION_CLOCKWISE: true\n"},
     "training_params.yaml: WORLD_NAME: 'reInvent2019_wide_cw' has a direction suffix and TRACK_DIRECTION_CLOCKWISE"),
    ({"training_params.yaml": b"TRACK_DIRECTION_CLOCKWISE: 'true'\n"},
     "training_params.yaml: WORLD_NAME: missing; DRoA's import takes the track from it"),
    ({"training_params.yaml": b"WORLD_NAME: [unclosed\n"}, "training_params.yaml: is not valid YAML"),
    ({"reward_function.py": b"def reward(params):\n    return 1\n"},
     "reward_function.py: defines no reward_function(params)"),
    ({"reward_function.py": b"def reward_function(params)\n"}, "reward_function.py: is not valid Python"),
    ({"metrics__training__training-1.json": None},
     "metrics/training/: warning: no training-*.json: DRoA will show no training graph"),
])
def test_the_droa_check_finds(changes, expected):
    found = check(**changes)
    assert any(problem.startswith(expected) for problem in found), found


def test_the_droa_check_warns_of_a_string_direction_and_refuses_a_big_folder():
    found = check(**{"training_params.yaml": b"WORLD_NAME: x\nTRACK_DIRECTION_CLOCKWISE: 'true'\n"})
    assert found == ["training_params.yaml: TRACK_DIRECTION_CLOCKWISE: warning: 'true' is not a YAML boolean; DRoA "
                     "reads anything else as counter-clockwise"]
    files = {name: len(data) for name, data in GOOD.items()}
    files["model/2_Step-20.ckpt.data-00000-of-00001"] = 1024 ** 3
    assert [str(p) for p in droa_import_problems(files, GOOD.__getitem__)][0].startswith(
        "(folder): 1073742")


# --- training params --------------------------------------------------------------------------------------------


def test_training_params_name_the_target_and_keep_their_order():
    source = {"AWS_REGION": "eu-central-1", "METRICS_S3_BUCKET": ["src"], "METRICS_S3_OBJECT_KEY": ["a/metrics/x.json"],
              "WORLD_NAME": "reInvent2019_wide_cw", "S3_ENDPOINT_URL": "http://minio:9000",
              "SAGEMAKER_SHARED_S3_BUCKET": ["src"], "SAGEMAKER_SHARED_S3_PREFIX": ["a/"], "CAR_COLOR": ["Black"]}
    out = target_training_params(source, ("dst", "b/c"))
    assert list(out)[:4] == ["AWS_REGION", "METRICS_S3_BUCKET", "METRICS_S3_OBJECT_KEY", "WORLD_NAME"]
    assert out["METRICS_S3_BUCKET"] == out["SAGEMAKER_SHARED_S3_BUCKET"] == out["SIMTRACE_S3_BUCKET"] == "dst"
    assert out["METRICS_S3_OBJECT_KEY"] == "b/c/metrics/TrainingMetrics.json" and out["CAR_COLOR"] == "Black"
    assert (out["WORLD_NAME"], out["TRACK_DIRECTION_CLOCKWISE"]) == ("reInvent2019_wide", True)
    assert "S3_ENDPOINT_URL" not in out and "MP4_S3_BUCKET" not in out
    assert target_training_params(source, ("dst", "b"), keep_endpoint=True)["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert not set(target_training_params(source, None)) & {"METRICS_S3_BUCKET", "SAGEMAKER_SHARED_S3_PREFIX"}
    # Already post-processed by the simulator (suffix and flag): the suffix goes, the flag stays.
    both = target_training_params({"WORLD_NAME": "2022_reinvent_champ_ccw", "TRACK_DIRECTION_CLOCKWISE": "False"}, None)
    assert both == {"WORLD_NAME": "2022_reinvent_champ", "TRACK_DIRECTION_CLOCKWISE": False}
    assert target_training_params({"WORLD_NAME": "reinvent_base"}, None) == {"WORLD_NAME": "reinvent_base"}


@pytest.mark.parametrize("url, expected", [("s3://b/p/q/", ("b", "p/q")), ("s3://b", ("b", ""))])
def test_s3_urls(url, expected):
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize("url", ["b/p", "s3:///p", "https://b/p"])
def test_bad_s3_urls(url):
    with pytest.raises(ModelError, match="expected an S3 location like s3://bucket/prefix"):
        parse_s3_url(url)


def test_targets_from_the_command_line(source, tmp_path):
    same = open_target(f"s3://{source.bucket}/exports/x", source)
    assert isinstance(same, S3Target) and same.storage is source and same.location == (source.bucket, "exports/x")
    assert isinstance(open_target(str(tmp_path / "d"), source), DirTarget)
    with pytest.raises(ModelError, match="name a prefix inside the bucket"):
        open_target(f"s3://{source.bucket}", source)
    with pytest.raises(ModelError, match="no storage configured for bucket another"):
        open_target("s3://another/x", source)
    with pytest.raises(ModelError, match="--as is for a folder target"):
        open_target("s3://another/x", source, location="s3://b/p")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match="is a file, not a folder"):
        export_model(source, "rl-drfc-1", "last", tmp_path / "file")
    assert isinstance(ExportResult("a", "b", None).to_dict(), dict)
