"""`training_params.yaml`: what the simulation workers read from the model prefix (pure: config in, YAML out).

Same keys and value style as DRfC's prepare-config.py (strings, explicit `---`), so a model trained here reads
like one trained with DRfC, and DRoA's import finds what it expects. Key meanings: FORMATS.md §4.2.
"""

from __future__ import annotations

from typing import Optional, Union

from session.core.config import RunConfig, SystemConfig

Params = dict[str, Union[str, list[str]]]
TRAINING_METRICS_NAME = "TrainingMetrics.json"


def flag(value: bool) -> str:
    return "True" if value else "False"


def number(value: float) -> str:
    return repr(float(value))


def training_params(system: SystemConfig, run: RunConfig, *, s3_endpoint_url: Optional[str] = None,
                    workers: Optional[int] = None) -> Params:
    """The YAML for one simulation worker's configuration (`run` may be a worker's merged config)."""
    bucket = system.local_s3_bucket
    prefix = run.local_s3_model_prefix
    params: Params = {
        "AWS_REGION": system.aws_app_region,
        "JOB_TYPE": "TRAINING",
        "KINESIS_VIDEO_STREAM_NAME": system.kinesis_stream_name or "",
        "METRICS_S3_BUCKET": bucket,
        "METRICS_S3_OBJECT_KEY": f"{run.local_s3_metrics_prefix}/{TRAINING_METRICS_NAME}",
        "MODEL_METADATA_FILE_S3_KEY": run.local_s3_model_metadata_key,
        "REWARD_FILE_S3_KEY": run.local_s3_reward_key,
        "ROBOMAKER_SIMULATION_JOB_ACCOUNT_ID": "Dummy",
        "NUM_WORKERS": str(workers or system.workers),
        "SAGEMAKER_SHARED_S3_BUCKET": bucket,
        "SAGEMAKER_SHARED_S3_PREFIX": prefix,
        "SIMTRACE_S3_BUCKET": bucket,
        "SIMTRACE_S3_PREFIX": prefix,
        "TRAINING_JOB_ARN": "arn:Dummy",
        "BODY_SHELL_TYPE": run.car_body_shell_type,
        "CAR_COLOR": run.car_color,
        "CAR_NAME": run.car_name,
        "RACE_TYPE": run.race_type,
        "WORLD_NAME": run.world_name,
        "DISPLAY_NAME": run.display_name,
        "RACER_NAME": run.racer_name,
        "REVERSE_DIR": flag(run.train_reverse_direction),
        "ALTERNATE_DRIVING_DIRECTION": flag(run.train_alternate_driving_direction),
        "CHANGE_START_POSITION": flag(run.train_change_start_position),
        "ROUND_ROBIN_ADVANCE_DIST": number(run.train_round_robin_advance_dist),
        "START_POSITION_OFFSET": number(run.train_start_position_offset),
        "ENABLE_DOMAIN_RANDOMIZATION": flag(run.enable_domain_randomization),
        "MIN_EVAL_TRIALS": str(run.train_min_eval_trials),
        "CAMERA_MAIN_ENABLE": flag(system.camera_main_enable),
        "CAMERA_SUB_ENABLE": flag(system.camera_sub_enable),
        "BEST_MODEL_METRIC": run.train_best_model_metric,
        "ENABLE_EXTRA_KVS_OVERLAY": flag(system.enable_extra_kvs_overlay),
    }
    if s3_endpoint_url:
        params["S3_ENDPOINT_URL"] = s3_endpoint_url
    if run.race_type == "OBJECT_AVOIDANCE":
        params.update(object_avoidance_params(run))
    if run.race_type == "HEAD_TO_BOT":
        params.update(head_to_bot_params(run))
    return params


def object_avoidance_params(run: RunConfig) -> Params:
    params: Params = {
        "NUMBER_OF_OBSTACLES": str(run.oa_number_of_obstacles),
        "MIN_DISTANCE_BETWEEN_OBSTACLES": number(run.oa_min_distance_between_obstacles),
        "RANDOMIZE_OBSTACLE_LOCATIONS": flag(run.oa_randomize_obstacle_locations),
        "IS_OBSTACLE_BOT_CAR": flag(run.oa_is_obstacle_bot_car),
        "OBSTACLE_TYPE": run.oa_obstacle_type,
    }
    if run.oa_object_positions:
        # Fixed positions override the count, as in DRfC: the simulator places exactly these.
        params["OBJECT_POSITIONS"] = [f"{fraction},{lane}" for fraction, lane in run.oa_object_positions]
        params["NUMBER_OF_OBSTACLES"] = str(len(run.oa_object_positions))
    return params


def head_to_bot_params(run: RunConfig) -> Params:
    return {
        "IS_LANE_CHANGE": flag(run.h2b_is_lane_change),
        "LOWER_LANE_CHANGE_TIME": number(run.h2b_lower_lane_change_time),
        "UPPER_LANE_CHANGE_TIME": number(run.h2b_upper_lane_change_time),
        "LANE_CHANGE_DISTANCE": number(run.h2b_lane_change_distance),
        "NUMBER_OF_BOT_CARS": str(run.h2b_number_of_bot_cars),
        "MIN_DISTANCE_BETWEEN_BOT_CARS": number(run.h2b_min_distance_between_bot_cars),
        "RANDOMIZE_BOT_CAR_LOCATIONS": flag(run.h2b_randomize_bot_car_locations),
        "BOT_CAR_SPEED": number(run.h2b_bot_car_speed),
        "PENALTY_SECONDS": number(run.h2b_bot_car_penalty),
    }


def params_files(system: SystemConfig, run: RunConfig, workers: int, *,
                 s3_endpoint_url: Optional[str] = None) -> dict[str, Params]:
    """File name (under the model prefix) -> params. With multi-config and several workers, DRfC's layout:
    `training_params_1.yaml` from run.env, `training_params_N.yaml` from run.env + worker-N.env."""
    name = run.local_s3_training_params_file
    if not (run.train_multi_config and workers > 1):
        return {name: training_params(system, run, s3_endpoint_url=s3_endpoint_url, workers=workers)}
    stem, dot, extension = name.rpartition(".")
    files = {}
    for worker in range(1, workers + 1):
        config = run.for_worker(worker)
        files[f"{stem}_{worker}{dot}{extension}"] = training_params(
            system, config, s3_endpoint_url=s3_endpoint_url, workers=workers)
    return files


def multi_config(files: dict[str, Params]) -> Optional[str]:
    """The `MULTI_CONFIG` JSON that tells each worker which params file is its own (None for one file)."""
    import json

    if len(files) < 2:
        return None
    return json.dumps({"multi_config": [{"config_file": name, "world_name": params["WORLD_NAME"]}
                                        for name, params in files.items()]})


def dump(params: Params) -> str:
    """YAML as DRfC writes it: an explicit document start and every scalar a quoted string."""
    import yaml

    class _Quoted(yaml.SafeDumper):
        pass

    _Quoted.add_representer(str, lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style='"'))
    return yaml.dump(params, Dumper=_Quoted, explicit_start=True, sort_keys=False, default_flow_style=False)
