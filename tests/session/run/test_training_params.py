"""training_params.yaml as the simulation workers read it: DRfC's keys, string values, multi-config files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from session.core.config import load_config
from session.run.training_params import dump, multi_config, params_files, training_params

SYSTEM_ENV = "DR_CLOUD=aws\nDR_AWS_APP_REGION=eu-west-1\nDR_LOCAL_S3_BUCKET=deepracer-aws-abc\n" \
             "DR_SIMAPP_SOURCE=awsdeepracercommunity/deepracer-simapp\nDR_SIMAPP_VERSION=6.0.4-gpu\nDR_WORKERS=3\n"


def configs(tmp_path: Path, run_env: str, system_env: str = SYSTEM_ENV, workers: Mapping[int, str] = {}):
    (tmp_path / "system.env").write_text(system_env)
    (tmp_path / "run.env").write_text(run_env)
    for number, text in workers.items():
        (tmp_path / f"worker-{number}.env").write_text(text)
    loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
    return loaded.system, loaded.run


def test_time_trial_params_name_the_bucket_prefix_and_custom_files(tmp_path: Path):
    system, run = configs(tmp_path, "DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX=my-model-1\n")
    params = training_params(system, run)
    assert params["JOB_TYPE"] == "TRAINING" and params["AWS_REGION"] == "eu-west-1"
    assert params["SAGEMAKER_SHARED_S3_BUCKET"] == params["METRICS_S3_BUCKET"] == "deepracer-aws-abc"
    assert params["SAGEMAKER_SHARED_S3_PREFIX"] == params["SIMTRACE_S3_PREFIX"] == "my-model-1"
    assert params["METRICS_S3_OBJECT_KEY"] == "my-model-1/metrics/TrainingMetrics.json"
    assert params["MODEL_METADATA_FILE_S3_KEY"] == "custom_files/model_metadata.json"
    assert params["REWARD_FILE_S3_KEY"] == "custom_files/reward_function.py"
    assert params["WORLD_NAME"] == "reInvent2019_track" and params["NUM_WORKERS"] == "3"
    assert params["DISPLAY_NAME"] == params["RACER_NAME"] == params["CAR_NAME"] == "FastCar"
    assert params["CHANGE_START_POSITION"] == "True" and params["REVERSE_DIR"] == "False"
    assert params["ROUND_ROBIN_ADVANCE_DIST"] == "0.05" and params["MIN_EVAL_TRIALS"] == "5"
    assert "S3_ENDPOINT_URL" not in params and "NUMBER_OF_OBSTACLES" not in params
    assert "NUMBER_OF_BOT_CARS" not in params


def test_minio_endpoint_is_passed_when_given(tmp_path: Path):
    system, run = configs(tmp_path, "")
    assert training_params(system, run, s3_endpoint_url="http://minio:9000")["S3_ENDPOINT_URL"] == "http://minio:9000"


def test_object_avoidance_positions_override_the_count(tmp_path: Path):
    system, run = configs(tmp_path, "DR_RACE_TYPE=OBJECT_AVOIDANCE\nDR_OA_NUMBER_OF_OBSTACLES=6\n"
                                    "DR_OA_OBJECT_POSITIONS=0.23,-1;0.46,1\n")
    params = training_params(system, run)
    assert params["RACE_TYPE"] == "OBJECT_AVOIDANCE"
    assert params["OBJECT_POSITIONS"] == ["0.23,-1", "0.46,1"]
    assert params["NUMBER_OF_OBSTACLES"] == "2"
    assert params["OBSTACLE_TYPE"] == "box_obstacle"


def test_head_to_bot_keys_and_penalty(tmp_path: Path):
    system, run = configs(tmp_path, "DR_RACE_TYPE=HEAD_TO_BOT\nDR_H2B_NUMBER_OF_BOT_CARS=2\n"
                                    "DR_H2B_BOT_CAR_PENALTY=3\n")
    params = training_params(system, run)
    assert params["NUMBER_OF_BOT_CARS"] == "2" and params["PENALTY_SECONDS"] == "3.0"
    assert params["BOT_CAR_SPEED"] == "0.2" and params["IS_LANE_CHANGE"] == "False"


def test_dump_is_quoted_yaml_with_an_explicit_start_that_reads_back(tmp_path: Path):
    system, run = configs(tmp_path, "DR_RACE_TYPE=OBJECT_AVOIDANCE\nDR_OA_OBJECT_POSITIONS=0.23,-1\n")
    params = training_params(system, run)
    text = dump(params)
    assert text.startswith("---\n")
    assert '"JOB_TYPE": "TRAINING"' in text and '"NUM_WORKERS": "3"' in text
    assert yaml.safe_load(text) == params


def test_one_file_without_multi_config(tmp_path: Path):
    system, run = configs(tmp_path, "DR_TRAIN_MULTI_CONFIG=False\n", workers={2: "DR_WORLD_NAME=Albert\n"})
    files = params_files(system, run, workers=3)
    assert list(files) == ["training_params.yaml"]
    assert multi_config(files) is None


def test_multi_config_gives_each_worker_its_own_file_and_track(tmp_path: Path):
    system, run = configs(tmp_path, "DR_WORLD_NAME=reinvent_base\nDR_TRAIN_MULTI_CONFIG=True\n",
                          workers={2: "DR_WORLD_NAME=Albert\nDR_CAR_COLOR=Blue\n", 3: "# same as run.env\n"})
    files = params_files(system, run, workers=3)
    assert list(files) == ["training_params_1.yaml", "training_params_2.yaml", "training_params_3.yaml"]
    assert [f["WORLD_NAME"] for f in files.values()] == ["reinvent_base", "Albert", "reinvent_base"]
    assert files["training_params_2.yaml"]["CAR_COLOR"] == "Blue"
    assert all(f["SAGEMAKER_SHARED_S3_PREFIX"] == run.local_s3_model_prefix for f in files.values())
    assert json.loads(multi_config(files)) == {"multi_config": [
        {"config_file": "training_params_1.yaml", "world_name": "reinvent_base"},
        {"config_file": "training_params_2.yaml", "world_name": "Albert"},
        {"config_file": "training_params_3.yaml", "world_name": "reinvent_base"}]}
