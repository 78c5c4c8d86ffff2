"""evaluation_params.yaml as the evaluation worker reads it: DRfC's keys, per-car lists of equal length, and the
places where DRfC is wrong (collision penalty, the opponent's videos) done right."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from session.core.config import load_config
from session.run.evaluation_params import PER_CAR_KEYS, evaluation_params
from session.run.training_params import dump

SYSTEM_ENV = "DR_CLOUD=aws\nDR_AWS_APP_REGION=eu-west-1\nDR_LOCAL_S3_BUCKET=deepracer-aws-abc\n" \
             "DR_SIMAPP_SOURCE=awsdeepracercommunity/deepracer-simapp\nDR_SIMAPP_VERSION=6.0.4-gpu\n"
TS = "20260307175200"
# FORMATS.md §4.1: the simulator's mandatory evaluation keys, coerced to lists, one entry per car.
MANDATORY = ("MODEL_S3_BUCKET", "MODEL_S3_PREFIX", "METRICS_S3_BUCKET", "METRICS_S3_OBJECT_KEY", "BODY_SHELL_TYPE",
             "CAR_COLOR")


def configs(tmp_path: Path, run_env: str):
    (tmp_path / "system.env").write_text(SYSTEM_ENV)
    (tmp_path / "run.env").write_text(run_env)
    loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
    return loaded.system, loaded.run


def params_for(tmp_path: Path, run_env: str, **options):
    system, run = configs(tmp_path, run_env)
    arguments = {"checkpoint": "last", "trials": 3, "mp4": False, "timestamp": TS, **options}
    return evaluation_params(system, run, **arguments)


def cars(params) -> int:
    lengths = {len(params[key]) for key in MANDATORY}
    assert len(lengths) == 1, {key: params[key] for key in MANDATORY}
    return lengths.pop()


def test_time_trial_names_one_car_and_where_its_metrics_simtrace_and_videos_go(tmp_path: Path):
    params = params_for(tmp_path, "DR_WORLD_NAME=Spain_track\nDR_LOCAL_S3_MODEL_PREFIX=rl-model-3\n"
                                  "DR_CAR_NAME=Zoom\nDR_CAR_COLOR=Blue\nDR_EVAL_OFF_TRACK_PENALTY=3.0\n"
                                  "DR_EVAL_MAX_RESETS=7\nDR_EVAL_IS_CONTINUOUS=False\n",
                        checkpoint="best", trials=5, mp4=True)
    assert cars(params) == 1
    assert params["JOB_TYPE"] == "EVALUATION" and params["AWS_REGION"] == "eu-west-1"
    assert params["MODEL_S3_PREFIX"] == ["rl-model-3"] and params["MODEL_S3_BUCKET"] == ["deepracer-aws-abc"]
    assert params["SIMTRACE_S3_PREFIX"] == [f"rl-model-3/evaluation-{TS}"]
    assert params["SIMTRACE_S3_BUCKET"] == params["METRICS_S3_BUCKET"] == ["deepracer-aws-abc"]
    assert params["METRICS_S3_OBJECT_KEY"] == [f"rl-model-3/metrics/evaluation/evaluation-{TS}.json"]
    assert params["MP4_S3_BUCKET"] == ["deepracer-aws-abc"] and params["MP4_S3_OBJECT_PREFIX"] == ["rl-model-3/mp4"]
    assert params["CAR_COLOR"] == ["Blue"] and params["BODY_SHELL_TYPE"] == ["deepracer"]
    assert params["DISPLAY_NAME"] == params["RACER_NAME"] == ["Zoom"]
    assert params["EVAL_CHECKPOINT"] == "best" and params["NUMBER_OF_TRIALS"] == "5"
    assert params["WORLD_NAME"] == "Spain_track" and params["RACE_TYPE"] == "TIME_TRIAL"
    assert params["IS_CONTINUOUS"] == "False" and params["NUMBER_OF_RESETS"] == "7"
    assert params["OFF_TRACK_PENALTY"] == "3.0" and params["RESET_BEHIND_DIST"] == "1.0"
    assert params["REVERSE_DIR"] == "False" and params["CAMERA_MAIN_ENABLE"] == "True"
    assert params["CAMERA_SUB_ENABLE"] == "False" and params["ENABLE_DOMAIN_RANDOMIZATION"] == "False"
    # Keys the simulator would read as "other race types" or as a second car: absent.
    for key in ("NUMBER_OF_OBSTACLES", "NUMBER_OF_BOT_CARS", "VIDEO_JOB_TYPE", "MODEL_NAME", "S3_ENDPOINT_URL"):
        assert key not in params


def test_collision_penalty_comes_from_the_eval_key_drfc_never_reads(tmp_path: Path):
    params = params_for(tmp_path, "DR_EVAL_COLLISION_PENALTY=7.5\n")
    assert params["COLLISION_PENALTY"] == "7.5"


def test_without_mp4_the_video_lists_are_empty_as_drfc_leaves_them(tmp_path: Path):
    params = params_for(tmp_path, "")
    assert params["MP4_S3_BUCKET"] == [] and params["MP4_S3_OBJECT_PREFIX"] == []


def test_a_clone_and_a_minio_endpoint(tmp_path: Path):
    params = params_for(tmp_path, "DR_LOCAL_S3_MODEL_PREFIX=m\n", model_prefix="m-E", mp4=True,
                        s3_endpoint_url="http://minio:9000")
    assert params["MODEL_S3_PREFIX"] == ["m-E"] and params["SIMTRACE_S3_PREFIX"] == [f"m-E/evaluation-{TS}"]
    assert params["MP4_S3_OBJECT_PREFIX"] == ["m-E/mp4"]
    # The metrics stay beside the named model's training metrics (DR_LOCAL_S3_METRICS_PREFIX), as in DRfC.
    assert params["METRICS_S3_OBJECT_KEY"] == [f"m/metrics/evaluation/evaluation-{TS}.json"]
    assert params["S3_ENDPOINT_URL"] == "http://minio:9000"


def test_object_avoidance_keys(tmp_path: Path):
    params = params_for(tmp_path, "DR_RACE_TYPE=OBJECT_AVOIDANCE\nDR_OA_NUMBER_OF_OBSTACLES=6\n"
                                  "DR_OA_OBJECT_POSITIONS=0.23,-1;0.46,1\nDR_OA_OBSTACLE_TYPE=deepracer_box_obstacle\n")
    assert cars(params) == 1 and params["RACE_TYPE"] == "OBJECT_AVOIDANCE"
    assert params["OBJECT_POSITIONS"] == ["0.23,-1", "0.46,1"] and params["NUMBER_OF_OBSTACLES"] == "2"
    assert params["OBSTACLE_TYPE"] == "deepracer_box_obstacle"
    assert params["MIN_DISTANCE_BETWEEN_OBSTACLES"] == "2.0" and params["RANDOMIZE_OBSTACLE_LOCATIONS"] == "False"
    assert params["IS_OBSTACLE_BOT_CAR"] == "False"
    assert "NUMBER_OF_BOT_CARS" not in params


def test_head_to_bot_keys(tmp_path: Path):
    params = params_for(tmp_path, "DR_RACE_TYPE=HEAD_TO_BOT\nDR_H2B_NUMBER_OF_BOT_CARS=2\nDR_H2B_BOT_CAR_SPEED=0.5\n"
                                  "DR_H2B_IS_LANE_CHANGE=True\nDR_H2B_BOT_CAR_PENALTY=3\n")
    assert cars(params) == 1 and params["RACE_TYPE"] == "HEAD_TO_BOT"
    assert params["NUMBER_OF_BOT_CARS"] == "2" and params["BOT_CAR_SPEED"] == "0.5"
    assert params["IS_LANE_CHANGE"] == "True" and params["PENALTY_SECONDS"] == "3.0"
    assert params["LOWER_LANE_CHANGE_TIME"] == "3.0" and params["UPPER_LANE_CHANGE_TIME"] == "5.0"
    assert params["LANE_CHANGE_DISTANCE"] == "1.0" and params["MIN_DISTANCE_BETWEEN_BOT_CARS"] == "2.0"
    assert params["RANDOMIZE_BOT_CAR_LOCATIONS"] == "False"
    assert "NUMBER_OF_OBSTACLES" not in params


def test_head_to_model_appends_the_opponent_to_every_per_car_list(tmp_path: Path):
    params = params_for(tmp_path, "DR_RACE_TYPE=HEAD_TO_MODEL\nDR_LOCAL_S3_MODEL_PREFIX=mine\nDR_CAR_NAME=Me\n"
                                  "DR_EVAL_OPP_S3_MODEL_PREFIX=theirs\nDR_EVAL_OPP_CAR_NAME=Them\n"
                                  "DR_EVAL_OPP_CAR_BODY_SHELL_TYPE=f1_2021\n", mp4=True)
    assert cars(params) == 2
    for key in PER_CAR_KEYS:  # not only the mandatory ones: every per-car list has one entry per car
        assert len(params[key]) == 2, key
    assert params["MODEL_S3_PREFIX"] == ["mine", "theirs"]
    assert params["CAR_COLOR"] == ["Purple", "Orange"]
    assert params["BODY_SHELL_TYPE"] == ["deepracer", "f1_2021"]
    assert params["DISPLAY_NAME"] == params["RACER_NAME"] == params["MODEL_NAME"] == ["Me", "Them"]
    assert params["METRICS_S3_OBJECT_KEY"] == [f"mine/metrics/evaluation/evaluation-{TS}.json",
                                               f"theirs/metrics/evaluation/evaluation-{TS}.json"]
    assert params["SIMTRACE_S3_PREFIX"] == [f"mine/evaluation-{TS}", f"theirs/evaluation-{TS}"]
    assert params["MP4_S3_OBJECT_PREFIX"] == ["mine/mp4", "theirs/mp4"]  # DRfC: an undefined variable's prefix
    assert params["VIDEO_JOB_TYPE"] == "EVALUATION"


def test_head_to_model_opponent_metrics_prefix_and_explicit_opponent(tmp_path: Path):
    params = params_for(tmp_path, "DR_RACE_TYPE=HEAD_TO_MODEL\nDR_EVAL_OPP_S3_METRICS_PREFIX=elsewhere/metrics\n",
                        opponent="rival-2")
    assert params["MODEL_S3_PREFIX"][1] == "rival-2"
    assert params["METRICS_S3_OBJECT_KEY"][1] == f"elsewhere/metrics/evaluation/evaluation-{TS}.json"
    assert params["MP4_S3_BUCKET"] == params["MP4_S3_OBJECT_PREFIX"] == []


def test_the_yaml_is_quoted_like_drfcs_and_reads_back_the_same(tmp_path: Path):
    params = params_for(tmp_path, "DR_RACE_TYPE=HEAD_TO_MODEL\n")
    text = dump(params)
    assert text.startswith("---\n")
    assert '"JOB_TYPE": "EVALUATION"' in text and '- "Purple"' in text
    assert "&id" not in text  # no YAML anchors: MODEL_NAME is its own list, not an alias of DISPLAY_NAME
    assert yaml.safe_load(text) == params


def test_bad_checkpoint_and_trials_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="checkpoint"):
        params_for(tmp_path, "", checkpoint="12")
    with pytest.raises(ValueError, match="trials"):
        params_for(tmp_path, "", trials=0)
