"""Evaluation: the result read from real evaluation metrics, the worker's spec, and `evaluate` / `stop-evaluation`
rehearsed against a real Docker Engine and a real S3 API (moto's server over HTTP).

The simulator image cannot be pulled here, so a busybox stand-in plays the evaluation worker at the level our
code touches: the image's ENTRYPOINT (`/bin/bash -c`) and `/opt/ml/code/run.sh`, which checks the command and
the environment our spec gives it and prints the simulator's SIM_TRACE_LOG lines (or its simapp_exception and
dies, on the worlds `crash_track` and `die_track`). The stand-in cannot reach the S3 server (the tests' daemon
has no NAT), so THE TEST WRITES WHAT THE SIMULATOR WOULD UPLOAD once the worker is ready: the real DRoA
evaluation metrics JSON and simtrace CSV from the shared data, at the keys the params file names.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import boto3
import docker
import pytest

from session.core.config import load_config
from session.engine.containers import Engine
from session.engine.specs import StorageAccess
from session.host.factory import Host
from session.run.evaluation import (
    EvaluationError,
    EvaluationResult,
    Trial,
    check_model,
    evaluation_spec,
    find_evaluation,
    parse_metrics,
    read_result,
    render_table,
    result_so_far,
    save_result,
    start_evaluation,
    stop_evaluation,
    wait_for_result,
)
from session.run.training import TrainingError
from session.storage.s3 import Storage
from tests.busybox_image import SIMAPP_CHANGES, busybox_image
from tests.shared_data import LOGS

DROA = LOGS / "droa-2026-evaluation"
CONSOLE = LOGS / "console-2022-discrete-ppo"
DRFC = LOGS / "drfc-2022-single-worker"
NOW = datetime(2026, 3, 7, 17, 52, 0, tzinfo=timezone.utc)
TS = "20260307175200"


# --- the result, from the real files ---------------------------------------------------------------------------


def put_file(storage: Storage, key: str, path: Path) -> None:
    storage.put_bytes(key, path.read_bytes())


def test_droa_evaluation_metrics_and_simtrace(storage: Storage):
    # The raw file: trials 1-3 all "Lap complete" at 100 %, elapsed 30884, 28573, 28312 ms; trial 1 left the
    # track once (off_track_count 1, reset_count 1). Its simtrace CSV has 459, 422 and 421 rows for episodes 0-2.
    put_file(storage, "m/metrics/evaluation/evaluation-1.json", DROA / "evaluation-metrics.json")
    put_file(storage, "m/evaluation-1/evaluation-simtrace/0-iteration.csv", DROA / "evaluation-simtrace-0-iteration.csv")
    result = read_result(storage, "m/metrics/evaluation/evaluation-1.json", simtrace="m/evaluation-1",
                         expected_trials=3)
    assert [t.trial for t in result.trials] == [1, 2, 3]
    assert result.lap_times_s == [30.884, 28.573, 28.312]
    assert [t.off_track for t in result.trials] == [1, 0, 0] and [t.resets for t in result.trials] == [1, 0, 0]
    assert result.complete and result.laps == 3 and result.off_track == 1
    assert result.best_lap_s == 28.312 and result.mean_lap_s == pytest.approx((30.884 + 28.573 + 28.312) / 3)
    assert [t.trace.steps for t in result.trials] == [459, 422, 421]
    assert [t.trace.off_track_steps for t in result.trials] == [1, 0, 0]
    assert result.trials[0].trace.progress == 100.0
    assert result.trials[0].trace.mean_speed == pytest.approx(1.9155773, abs=1e-6)


def test_console_evaluation_metrics(storage: Storage):
    # Raw: three "Lap complete" trials of 16468, 16267 and 16402 ms, no incidents.
    put_file(storage, "c.json", next((CONSOLE / "metrics" / "evaluation").glob("*.json")))
    result = read_result(storage, "c.json")
    assert result.lap_times_s == [16.468, 16.267, 16.402]
    assert {t.status for t in result.trials} == {"Lap complete"}
    assert result.best_lap_s == 16.267 and result.off_track == 0 and result.expected_trials is None


def test_continuous_laps_reported_in_progress_count_as_laps(storage: Storage):
    # DRfC 2022, continuous evaluation: trials 1 and 2 read "In progress" at 100 % (14792, 13801 ms), trial 3
    # "Lap complete" (14731 ms). All three went round.
    put_file(storage, "d.json", DRFC / "metrics" / "EvaluationMetrics-20220709200242.json")
    result = read_result(storage, "d.json")
    assert [t.status for t in result.trials] == ["In progress", "In progress", "Lap complete"]
    assert all(t.completed for t in result.trials) and result.laps == 3
    assert result.lap_times_s == [14.792, 13.801, 14.731]


def test_an_unfinished_trial_has_no_lap_time():
    trials = parse_metrics(json.dumps({"metrics": [
        {"trial": 1, "episode_status": "Off track", "completion_percentage": 42, "elapsed_time_in_milliseconds": 9000,
         "off_track_count": 3, "crash_count": 1, "reset_count": 4}]}).encode())
    assert trials[0].completed is False and trials[0].lap_time_s is None
    assert (trials[0].off_track, trials[0].crashes, trials[0].resets) == (3, 1, 4)


def test_half_written_metrics_are_an_evaluation_error(storage: Storage):
    storage.put_text("half.json", '{"metrics": [{"trial": 1, "completion')
    with pytest.raises(EvaluationError, match="not \\(yet\\) an evaluation metrics JSON"):
        read_result(storage, "half.json")
    with pytest.raises(ValueError):
        parse_metrics(b'{"version": 2}')


def droa_result(**extra) -> EvaluationResult:
    trials = parse_metrics((DROA / "evaluation-metrics.json").read_bytes())
    return EvaluationResult(metrics_key="m/metrics/evaluation/evaluation-x.json", trials=trials, expected_trials=3,
                            **extra)


def test_table_shows_every_trial_and_a_summary():
    table = render_table(droa_result(model_prefix="rl-1", checkpoint="last", checkpoint_name="27_Step-46417.ckpt",
                                     world_name="Spain_track", race_type="TIME_TRIAL"))
    lines = table.splitlines()
    assert lines[0] == "rl-1: checkpoint 27_Step-46417.ckpt (last) on Spain_track"
    assert lines[1].split() == ["trial", "result", "progress", "time", "off-track", "crashes", "resets"]
    assert lines[2].split() == ["1", "Lap", "complete", "100", "%", "30.884", "s", "1", "0", "1"]
    assert lines[4].split()[5] == "28.312"
    assert lines[5] == "3 of 3 trials, 3 laps: best 28.312 s, mean 29.256 s; mean progress 100 %; off-track 1"


def test_table_of_a_partial_result_says_why():
    result = EvaluationResult(metrics_key="k", trials=(Trial(1, "Off track", 37.0, 4.2, off_track=1),),
                              expected_trials=3, note="worker exited after 1 of 3 trials")
    table = render_table(result)
    assert "Off track" in table and "1 of 3 trials, 0 laps; mean progress 37 %" in table
    assert table.endswith("worker exited after 1 of 3 trials")
    assert not result.complete


def test_save_result_writes_json_beside_the_model_and_never_replaces(storage: Storage):
    result = droa_result(model_prefix="rl-1-E", source_prefix="rl-1", timestamp=TS, checkpoint="best")
    key = save_result(storage, "rl-1", result)
    assert key == f"rl-1/evaluation/results-{TS}.json"
    saved = storage.get_json(key)
    assert saved["summary"] == {"trials": 3, "laps": 3, "best_lap_s": 28.312,
                                "mean_lap_s": pytest.approx(29.256333, abs=1e-5), "mean_completion": 100.0,
                                "off_track": 1}
    assert saved["trials"][0]["lap_time_s"] == 30.884 and saved["trials"][0]["status"] == "Lap complete"
    assert saved["complete"] is True and saved["model_prefix"] == "rl-1-E" and saved["source_prefix"] == "rl-1"
    assert save_result(storage, "rl-1", result) == f"rl-1/evaluation/results-{TS}-2.json"
    assert storage.get_json(key) == saved


# --- the worker's spec -----------------------------------------------------------------------------------------


def configs(tmp_path: Path, system_env: str, run_env: str):
    (tmp_path / "system.env").write_text(system_env)
    (tmp_path / "run.env").write_text(run_env)
    loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
    return loaded.system, loaded.run


def test_spec_is_drfcs_eval_robomaker_with_one_command_string(tmp_path: Path):
    system, run = configs(tmp_path, "DR_CLOUD=aws\nDR_LOCAL_S3_BUCKET=bkt\nDR_SIMAPP_VERSION=6.0.4-gpu\n"
                          "DR_ROBOMAKER_CUDA_DEVICES=0\n",
                          "DR_RUN_ID=4\nDR_WORLD_NAME=Spain_track\nDR_EVAL_DEBUG_REWARD=True\nDR_EVAL_RTF=2.0\n")
    spec = evaluation_spec(system, run, StorageAccess.from_system(system), model_prefix="rl-1-E",
                           params_file="evaluation_params.yaml", trials=5)
    assert spec.name == "deepracer-4-evaluation" and spec.image == "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu"
    assert spec.command == ("/opt/ml/code/run.sh run evaluation.launch.py",)
    assert spec.labels == {"deepracer.run": "4", "deepracer.role": "evaluation", "deepracer.prefix": "rl-1-E"}
    assert spec.network == "sagemaker-local" and spec.gpus is True and spec.init is True
    env = spec.environment
    assert env["MODEL_S3_PREFIX"] == "rl-1-E" and env["MODEL_S3_BUCKET"] == "bkt"
    assert env["S3_YAML_NAME"] == "evaluation_params.yaml" and env["ROLLOUT_IDX"] == "0"
    assert env["DEBUG_REWARD"] == "True" and env["RTF_OVERRIDE"] == "2.0" and env["WORLD_NAME"] == "Spain_track"
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["NUMBER_OF_TRIALS"] == "5"
    assert env["AWS_METADATA_SERVICE_NUM_ATTEMPTS"] == "5"  # the instance role through IMDS, as training
    assert "SAGEMAKER_SHARED_S3_PREFIX" not in env and "S3_ENDPOINT_URL" not in env


def test_spec_on_minio_carries_the_endpoint_and_keys_and_a_cpu_image_asks_no_gpu(tmp_path: Path):
    system, run = configs(tmp_path, "DR_CLOUD=local\nDR_SIMAPP_VERSION=6.0.4-cpu\nDR_LOCAL_ACCESS_KEY_ID=k\n"
                          "DR_LOCAL_SECRET_ACCESS_KEY=s\n", "")
    spec = evaluation_spec(system, run, StorageAccess.from_system(system), model_prefix="m",
                           params_file="evaluation_params.yaml", trials=3)
    assert spec.gpus is False
    assert spec.environment["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert spec.environment["AWS_ACCESS_KEY_ID"] == "k" and spec.environment["DEBUG_REWARD"] == "False"
    assert "RTF_OVERRIDE" not in spec.environment
    assert spec.environment["CUDA_VISIBLE_DEVICES"] == ""  # no GPU for its TensorFlow, as DRfC's eval compose


# --- checking the model ----------------------------------------------------------------------------------------


def put_model(storage: Storage, prefix: str, *, last: str = "3_Step-300.ckpt", best: str | None = "2_Step-200.ckpt",
              files: tuple[str, ...] = ("2_Step-200.ckpt", "3_Step-300.ckpt"), ip: bool = True) -> None:
    storage.put_json(f"{prefix}/model/model_metadata.json", {"action_space": [], "sensor": ["FRONT_FACING_CAMERA"]})
    document = {"last_checkpoint": {"name": last, "time_stamp": 1.0, "avg_eval_metric": 40.0}}
    if best:
        document["best_checkpoint"] = {"name": best, "time_stamp": 1.0, "avg_eval_metric": 60.0}
    storage.put_json(f"{prefix}/model/deepracer_checkpoints.json", document)
    for name in files:
        for suffix in (".index", ".meta", ".data-00000-of-00001"):
            storage.put_bytes(f"{prefix}/model/{name}{suffix}", f"{name}{suffix}".encode())
    if ip:
        storage.put_json(f"{prefix}/ip/hyperparameters.json", {"batch_size": 64})


def test_check_model_names_the_checkpoint_or_what_is_missing(storage: Storage):
    put_model(storage, "ok")
    assert check_model(storage, "ok", "last") == "3_Step-300.ckpt"
    assert check_model(storage, "ok", "best") == "2_Step-200.ckpt"
    with pytest.raises(EvaluationError, match=r"no model at s3://.*/nothing/model/"):
        check_model(storage, "nothing", "last")
    put_model(storage, "no-best", best=None)
    with pytest.raises(EvaluationError, match="names no best checkpoint; try --checkpoint last"):
        check_model(storage, "no-best", "best")
    put_model(storage, "pruned", files=("3_Step-300.ckpt",))
    with pytest.raises(EvaluationError, match="2_Step-200.ckpt is named in deepracer_checkpoints.json but its "
                                              "index and data file is not in"):
        check_model(storage, "pruned", "best")
    storage.put_text("fresh/model/model_metadata.json", "{}")
    with pytest.raises(EvaluationError, match="deepracer_checkpoints.json is missing"):
        check_model(storage, "fresh", "last")


# --- rehearsal: a real dockerd, moto, and a stand-in evaluation worker -----------------------------------------

IMAGE_SOURCE, IMAGE_TAG = "deepracer-simapp-eval-standin", "6.0.4-cpu"  # a -gpu tag would request a GPU
EXCEPTION = ('{"simapp_exception": {"date": "2026-11-25 10:00:00", "function": "get_track", "message": '
             '"Track %s does not exist", "exceptionType": "simulation_worker.exceptions", "eventType": '
             '"user_error", "errorCode": "400"}}')
RUN_SH = r"""#!/bin/busybox ash
[ "$1 $2" = "run evaluation.launch.py" ] || { echo "unexpected command: $*"; exit 2; }
[ -n "$MODEL_S3_BUCKET" ] && [ -n "$MODEL_S3_PREFIX" ] && [ -n "$APP_REGION" ] || { echo "missing env"; exit 2; }
[ "$S3_YAML_NAME" = evaluation_params.yaml ] && [ "$ROLLOUT_IDX" = 0 ] && [ -n "$DEBUG_REWARD" ] || { echo "bad env"; exit 2; }
echo "evaluating s3://$MODEL_S3_BUCKET/$MODEL_S3_PREFIX on $WORLD_NAME"
if [ "$WORLD_NAME" = crash_track ]; then
  echo '""" + EXCEPTION % "crash_track" + r"""'
  exit 1
fi
echo "[download_params_and_roslaunch_agent.py-1] [run_evaluation_rl_agent.sh-9] SIM_TRACE_LOG:0,1,0.2078,-2.1730,179.9865,-10.00,2.00,3,0.0000,False,True,0.2333,0,60.00,37.347,prepare,0.00,0,1772906145.5125"
if [ "$WORLD_NAME" = die_track ]; then
  sleep 1
  echo '""" + EXCEPTION % "die_track" + r"""'
  exit 1
fi
exec sleep 3600
"""


@pytest.fixture(scope="module")
def eval_standin(docker_engine: str) -> str:
    return busybox_image(docker_engine, IMAGE_SOURCE, IMAGE_TAG, {"opt/ml/code/run.sh": RUN_SH}, SIMAPP_CHANGES,
                         directories=("tmp",))


@pytest.fixture()
def host_factory(tmp_path: Path, s3_server: str, docker_engine: str, eval_standin: str):
    """A Host from real system.env/run.env files on a new bucket; removes the containers it made."""
    engine = Engine(base_url=docker_engine)
    bucket = f"deepracer-eval-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    run_ids = []

    def make(run_env: str) -> Host:
        run_id = 1000 + int(uuid.uuid4().int % 8000)
        run_ids.append(run_id)
        (tmp_path / "system.env").write_text(
            f"DR_CLOUD=local\nDR_LOCAL_S3_BUCKET={bucket}\nDR_SIMAPP_SOURCE={IMAGE_SOURCE}\n"
            f"DR_SIMAPP_VERSION={IMAGE_TAG}\nDR_LOCAL_S3_ENDPOINT_URL={s3_server}\nDR_LOCAL_ACCESS_KEY_ID=testing\n"
            "DR_LOCAL_SECRET_ACCESS_KEY=testing\n")
        (tmp_path / "run.env").write_text(f"DR_RUN_ID={run_id}\n" + run_env)
        loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
        storage = Storage(bucket, "us-east-1", endpoint_url=s3_server, access_key="testing", secret_key="testing")
        return Host(loaded.system, loaded.run, tmp_path / "custom_files", engine, storage,
                    docker_socket=docker_engine[len("unix://"):])

    yield make
    client = docker.DockerClient(base_url=docker_engine)
    for run_id in run_ids:
        for container in client.containers.list(all=True, filters={"label": f"deepracer.run={run_id}"}):
            container.remove(force=True)


def upload_as_the_simulator(storage: Storage, params_key: str, metrics: dict) -> None:
    """What the real worker uploads and the stand-in cannot: the metrics JSON (and simtrace CSV) at the keys the
    params file names."""
    params = storage.get_yaml(params_key)
    storage.put_json(params["METRICS_S3_OBJECT_KEY"][0], metrics)
    put_file(storage, f"{params['SIMTRACE_S3_PREFIX'][0]}/evaluation-simtrace/0-iteration.csv",
             DROA / "evaluation-simtrace-0-iteration.csv")


def test_evaluate_start_ready_result_table_and_stop(host_factory):
    host = host_factory("DR_WORLD_NAME=Spain_track\nDR_LOCAL_S3_MODEL_PREFIX=rl-eval-1\n")
    storage = host.storage
    put_model(storage, "rl-eval-1")
    said: list[str] = []
    evaluation = start_evaluation(host, checkpoint="best", trials=3, say=said.append, timeout_s=30, now=NOW)

    assert evaluation.container.running and evaluation.container.role == "evaluation"
    assert evaluation.checkpoint_name == "2_Step-200.ckpt" and evaluation.timestamp == TS
    assert evaluation.metrics_key == f"rl-eval-1/metrics/evaluation/evaluation-{TS}.json"
    params = storage.get_yaml("rl-eval-1/evaluation_params.yaml")
    assert params["EVAL_CHECKPOINT"] == "best" and params["NUMBER_OF_TRIALS"] == "3"
    assert params["MODEL_S3_PREFIX"] == ["rl-eval-1"] and params["WORLD_NAME"] == "Spain_track"
    assert params["S3_ENDPOINT_URL"] == "http://minio:9000"  # the containers' side of MinIO
    assert [c.name for c in host.engine.list(run=str(host.run.run_id))] == [evaluation.container.name]  # no trainer
    log = host.engine.logs(evaluation.container)
    assert f"evaluating s3://{storage.bucket}/rl-eval-1 on Spain_track" in log

    # The simulator uploads its metrics after every trial: two now, the third a moment later.
    metrics = json.loads((DROA / "evaluation-metrics.json").read_text())
    upload_as_the_simulator(storage, evaluation.params_key, {"metrics": metrics["metrics"][:2]})
    later = threading.Timer(0.5, lambda: storage.put_json(evaluation.metrics_key, metrics))
    later.start()
    try:
        result = wait_for_result(host, evaluation, poll_s=0.1, timeout_s=20, say=said.append)
    finally:
        later.join()
    assert result.complete and result.note == "" and result.lap_times_s == [30.884, 28.573, 28.312]
    assert [t.trace.steps for t in result.trials] == [459, 422, 421]
    assert "trial 1 of 3: lap in 30.884 s, off-track 1, resets 1" in said
    assert "trial 3 of 3: lap in 28.312 s, off-track 0, resets 0" in said
    table = render_table(result)
    assert table.splitlines()[0] == "rl-eval-1: checkpoint 2_Step-200.ckpt (best) on Spain_track"
    assert "3 of 3 trials, 3 laps: best 28.312 s" in table
    key = save_result(storage, evaluation.source_prefix, result)
    assert key == f"rl-eval-1/evaluation/results-{TS}.json" and storage.get_json(key)["summary"]["laps"] == 3

    found = find_evaluation(host)
    assert (found.metrics_key, found.trials, found.checkpoint, found.checkpoint_name, found.timestamp) == (
        evaluation.metrics_key, 3, "best", "2_Step-200.ckpt", TS)
    assert found.container.id == evaluation.container.id and found.source_prefix == "rl-eval-1"
    again = result_so_far(storage, found)
    assert again.lap_times_s == result.lap_times_s and again.checkpoint_name == "2_Step-200.ckpt"
    assert again.trials[0].trace.steps == 459
    stopped = stop_evaluation(host, say=said.append, timeout=5)
    assert [c.name for c in stopped] == [evaluation.container.name]
    assert not any(c.running for c in host.engine.list(run=str(host.run.run_id)))
    logs = [info.key for info in storage.list_objects("rl-eval-1/logs/")]
    assert len(logs) == 1 and logs[0].endswith("-evaluation.log")
    assert "SIM_TRACE_LOG:" in storage.get_text(logs[0])
    said.clear()
    assert stop_evaluation(host, say=said.append, timeout=5) == []  # log already saved; nothing runs
    assert said == [f"run {host.run.run_id}: no evaluation is running"]


def test_a_missing_checkpoint_is_refused_before_anything_is_written_or_started(host_factory):
    host = host_factory("DR_LOCAL_S3_MODEL_PREFIX=rl-no-best\n")
    put_model(host.storage, "rl-no-best", best=None)
    with pytest.raises(EvaluationError, match="--checkpoint best: .*names no best checkpoint") as raised:
        start_evaluation(host, checkpoint="best", say=lambda _: None, timeout_s=30)
    assert isinstance(raised.value, TrainingError)  # the CLI's one-line user error
    assert not host.storage.exists("rl-no-best/evaluation_params.yaml")
    assert host.engine.list(run=str(host.run.run_id)) == []
    with pytest.raises(EvaluationError, match=r"no model at s3://.*/elsewhere/model/"):
        start_evaluation(host_factory("DR_LOCAL_S3_MODEL_PREFIX=elsewhere\n"), say=lambda _: None, timeout_s=30)


def test_head_to_model_needs_the_opponents_checkpoint_too(host_factory):
    host = host_factory("DR_RACE_TYPE=HEAD_TO_MODEL\nDR_LOCAL_S3_MODEL_PREFIX=mine\n"
                        "DR_EVAL_OPP_S3_MODEL_PREFIX=theirs\n")
    put_model(host.storage, "mine")
    with pytest.raises(EvaluationError, match=r"no opponent model \(DR_EVAL_OPP_S3_MODEL_PREFIX\) at .*/theirs/model/"):
        start_evaluation(host, say=lambda _: None, timeout_s=30)
    put_model(host.storage, "theirs")
    evaluation = start_evaluation(host, say=lambda _: None, timeout_s=30)
    params = host.storage.get_yaml(evaluation.params_key)
    assert params["MODEL_S3_PREFIX"] == ["mine", "theirs"] and params["CAR_COLOR"] == ["Purple", "Orange"]
    assert evaluation.opponent_prefix == "theirs"
    stop_evaluation(host, say=lambda _: None, timeout=5)


def test_a_worker_that_dies_at_start_is_reported_with_the_simulators_error(host_factory):
    host = host_factory("DR_WORLD_NAME=crash_track\nDR_LOCAL_S3_MODEL_PREFIX=rl-crash\n")
    put_model(host.storage, "rl-crash")
    said: list[str] = []
    with pytest.raises(EvaluationError) as raised:
        start_evaluation(host, say=said.append, timeout_s=30)
    message = str(raised.value)
    assert message.startswith("evaluation did not start: deepracer-") and "\n" not in message
    assert "exited with code 1: Track crash_track does not exist (errorCode 400)" in message
    assert not any(c.running for c in host.engine.list(run=str(host.run.run_id)))
    logs = [info.key for info in host.storage.list_objects("rl-crash/logs/")]
    assert len(logs) == 1 and "simapp_exception" in host.storage.get_text(logs[0])
    assert any(line.startswith("saved the evaluation log to s3://") for line in said)


def test_a_worker_that_dies_midway_leaves_a_partial_result_saying_why(host_factory):
    host = host_factory("DR_WORLD_NAME=die_track\nDR_LOCAL_S3_MODEL_PREFIX=rl-die\n")
    put_model(host.storage, "rl-die")
    evaluation = start_evaluation(host, trials=3, say=lambda _: None, timeout_s=30)
    metrics = json.loads((DROA / "evaluation-metrics.json").read_text())
    upload_as_the_simulator(host.storage, evaluation.params_key, {"metrics": metrics["metrics"][:1]})
    result = wait_for_result(host, evaluation, poll_s=0.1, timeout_s=20, say=lambda _: None)
    assert not result.complete and len(result.trials) == 1
    assert result.note == (f"{evaluation.container.name} exited with code 1 after 1 of 3 trials: "
                           "Track die_track does not exist (errorCode 400)")
    assert render_table(result).endswith(result.note)


def test_a_second_evaluation_of_a_running_one_is_refused(host_factory):
    host = host_factory("DR_LOCAL_S3_MODEL_PREFIX=rl-twice\n")
    put_model(host.storage, "rl-twice")
    evaluation = start_evaluation(host, say=lambda _: None, timeout_s=30)
    with pytest.raises(EvaluationError, match="is already running .*deepracer stop-evaluation"):
        start_evaluation(host, say=lambda _: None, timeout_s=30)
    result = wait_for_result(host, evaluation, poll_s=0.05, timeout_s=0.2, say=lambda _: None)
    assert result.trials == () and "the evaluation keeps running" in result.note
    assert result_so_far(host.storage, evaluation) is None  # nothing written yet
    stop_evaluation(host, say=lambda _: None, timeout=5)


def test_clone_evaluates_a_copy_of_model_and_ip(host_factory, docker_engine):
    host = host_factory("DR_LOCAL_S3_MODEL_PREFIX=rl-train\n")
    storage = host.storage
    put_model(storage, "rl-train")
    storage.put_text("rl-train/training_params.yaml", "---\n")  # not part of the clone
    said: list[str] = []
    evaluation = start_evaluation(host, clone=True, mp4=True, say=said.append, timeout_s=30)

    source = sorted(i.key[len("rl-train/"):] for i in storage.list_objects("rl-train/")
                    if i.key.startswith(("rl-train/model/", "rl-train/ip/")))
    copy = sorted(i.key[len("rl-train-E/"):] for i in storage.list_objects("rl-train-E/")
                  if i.key.startswith(("rl-train-E/model/", "rl-train-E/ip/")))
    assert copy == source and "model/3_Step-300.ckpt.index" in copy and "ip/hyperparameters.json" in copy
    assert storage.get_bytes("rl-train-E/model/3_Step-300.ckpt.index") == b"3_Step-300.ckpt.index"
    assert not storage.exists("rl-train-E/training_params.yaml")
    assert f"copied 8 objects of s3://{storage.bucket}/rl-train/model/ to s3://{storage.bucket}/rl-train-E/model/" in said
    assert f"copied 1 objects of s3://{storage.bucket}/rl-train/ip/ to s3://{storage.bucket}/rl-train-E/ip/" in said
    assert evaluation.model_prefix == "rl-train-E" and evaluation.source_prefix == "rl-train"
    assert evaluation.container.prefix == "rl-train-E"
    env = dict(e.split("=", 1) for e in docker.DockerClient(base_url=docker_engine).containers.get(
        evaluation.container.id).attrs["Config"]["Env"])
    assert env["MODEL_S3_PREFIX"] == "rl-train-E"
    params = storage.get_yaml("rl-train-E/evaluation_params.yaml")
    assert params["MODEL_S3_PREFIX"] == ["rl-train-E"] and params["MP4_S3_OBJECT_PREFIX"] == ["rl-train-E/mp4"]
    assert not storage.exists("rl-train/evaluation_params.yaml")
    stop_evaluation(host, say=lambda _: None, timeout=5)
    assert any(i.key.endswith("-evaluation.log") for i in storage.list_objects("rl-train-E/logs/"))

    # A second clone refreshes the copy (the source moved on); nothing of the source changes.
    put_model(storage, "rl-train", last="4_Step-400.ckpt", files=("2_Step-200.ckpt", "4_Step-400.ckpt"))
    again = start_evaluation(host, clone=True, say=lambda _: None, timeout_s=30)
    assert again.checkpoint_name == "4_Step-400.ckpt"
    assert storage.exists("rl-train-E/model/4_Step-400.ckpt.index")
    stop_evaluation(host, say=lambda _: None, timeout=5)
