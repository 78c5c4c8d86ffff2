"""`evaluate --detach`, `logs evaluation` and `stop-evaluation` through the CLI, on the real Docker Engine
with moto's S3 server; the evaluation worker is the busybox stand-in of test_evaluation (only the simulator
is a stand-in), and the test uploads the metrics the real worker would write (the stand-in cannot)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import docker
import pytest

from session.cli.main import main
from session.storage.s3 import Storage
from tests.session.run.test_evaluation import DROA, IMAGE_SOURCE, IMAGE_TAG, eval_standin, put_model  # noqa: F401 - fixture


@pytest.fixture()
def workdir(tmp_path: Path, s3_server: str, docker_engine: str, eval_standin: str, monkeypatch):
    bucket = f"deepracer-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    run_id = 5000 + int(uuid.uuid4().int % 4000)
    # DR_CLOUD=remote: an S3 server of the user's own (moto here), so the CLI starts no MinIO.
    (tmp_path / "system.env").write_text(
        f"DR_CLOUD=remote\nDR_REMOTE_MINIO_URL={s3_server}\nDR_LOCAL_S3_BUCKET={bucket}\n"
        f"DR_SIMAPP_SOURCE={IMAGE_SOURCE}\nDR_SIMAPP_VERSION={IMAGE_TAG}\n"
        "DR_LOCAL_ACCESS_KEY_ID=testing\nDR_LOCAL_SECRET_ACCESS_KEY=testing\n")
    (tmp_path / "run.env").write_text(f"DR_RUN_ID={run_id}\nDR_WORLD_NAME=Spain_track\n"
                                      "DR_LOCAL_S3_MODEL_PREFIX=cli-eval-1\n")
    monkeypatch.setenv("DR_SYSTEM_ENV", str(tmp_path / "system.env"))
    monkeypatch.setenv("DR_RUN_ENV", str(tmp_path / "run.env"))
    monkeypatch.setenv("DOCKER_HOST", docker_engine)
    storage = Storage(bucket, endpoint_url=s3_server, access_key="testing", secret_key="testing")
    yield storage
    client = docker.DockerClient(base_url=docker_engine)
    for container in client.containers.list(all=True, filters={"label": f"deepracer.run={run_id}"}):
        container.remove(force=True)


def test_evaluate_detached_then_logs_and_stop_with_the_result_so_far(workdir: Storage, capsys):
    storage = workdir
    put_model(storage, "cli-eval-1")
    assert main(["evaluate", "--detach", "--trials", "3", "--checkpoint", "last"]) == 0
    out = capsys.readouterr().out
    assert "evaluating cli-eval-1" in out and "stop-evaluation" in out

    assert main(["logs", "evaluation"]) == 0
    assert "evaluating" in capsys.readouterr().out

    params = storage.get_yaml("cli-eval-1/evaluation_params.yaml")
    metrics = json.loads((DROA / "evaluation-metrics.json").read_text())
    storage.put_json(params["METRICS_S3_OBJECT_KEY"][0], {"metrics": metrics["metrics"][:2]})  # two trials so far

    assert main(["stop-evaluation", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [t["lap_time_s"] for t in result["trials"]] == [30.884, 28.573] and result["complete"] is False
    assert "stopped by `deepracer stop-evaluation`" in result["note"]
    saved = [info.key for info in storage.list_objects("cli-eval-1/evaluation/")]
    assert len(saved) == 1 and saved[0].startswith("cli-eval-1/evaluation/results-")


def test_evaluate_without_the_checkpoint_is_one_line_and_exit_2(workdir: Storage, capsys):
    assert main(["evaluate", "--detach"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("deepracer: ") and "cli-eval-1" in err
