"""`evaluation_params.yaml`: what the evaluation worker reads from the model prefix (pure: config in, dict out).

DRfC's keys and value style (its scripts/evaluation/prepare-config.py, DRFC.md §3.8): the per-car keys are lists,
one entry per car, and every mandatory list must have the same length (FORMATS.md §4.1), so `HEAD_TO_MODEL`
appends the opponent to each of them. Where DRfC is wrong we differ, on purpose:

- `COLLISION_PENALTY` comes from `DR_EVAL_COLLISION_PENALTY`, the name its own template sets (DRfC reads
  `DR_COLLISION_PENALTY`, so the template's value never arrives);
- the opponent's videos go to `<opponent prefix>/mp4` (DRfC reads an undefined `DR_EVAL_OPP_MODEL_PREFIX`);
- the opponent's metrics and simtrace follow the same layout as our car's (`.../evaluation/evaluation-<ts>.json`,
  `<opponent prefix>/evaluation-<ts>`) rather than DRfC's older `EvaluationMetrics-<epoch>.json` and the bare
  prefix, so one evaluation's files share one timestamp.
"""

from __future__ import annotations

from typing import Optional

from session.core.config import RunConfig, SystemConfig

# The obstacle and bot-car keys are the same in training and evaluation: one place renders them.
from session.run.training_params import Params, flag, head_to_bot_params, number, object_avoidance_params

EVALUATION_METRICS_FOLDER = "evaluation"  # under the metrics prefix, as DRfC and the console name it
MP4_FOLDER = "mp4"
CHECKPOINTS = ("best", "last")
# DRfC fixes the two cars' colours in a head-to-model race, so the overlay and videos tell them apart.
HEAD_TO_MODEL_COLORS = ("Purple", "Orange")
# One entry per car; the simulator refuses lists of different lengths among the mandatory ones.
PER_CAR_KEYS = ("CAR_COLOR", "BODY_SHELL_TYPE", "RACER_NAME", "DISPLAY_NAME", "MODEL_S3_PREFIX", "MODEL_S3_BUCKET",
                "SIMTRACE_S3_PREFIX", "SIMTRACE_S3_BUCKET", "METRICS_S3_BUCKET", "METRICS_S3_OBJECT_KEY",
                "MP4_S3_BUCKET", "MP4_S3_OBJECT_PREFIX")


def simtrace_prefix(model_prefix: str, timestamp: str) -> str:
    return f"{model_prefix}/evaluation-{timestamp}"


def metrics_key(metrics_prefix: str, timestamp: str) -> str:
    return f"{metrics_prefix}/{EVALUATION_METRICS_FOLDER}/evaluation-{timestamp}.json"


def mp4_prefix(model_prefix: str) -> str:
    return f"{model_prefix}/{MP4_FOLDER}"


def evaluation_params(system: SystemConfig, run: RunConfig, *, checkpoint: str, trials: int, mp4: bool,
                      timestamp: str, model_prefix: Optional[str] = None, metrics_prefix: Optional[str] = None,
                      opponent: Optional[str] = None, s3_endpoint_url: Optional[str] = None) -> Params:
    """The YAML for one evaluation started at `timestamp` (`YYYYmmddHHMMSS`, shared by its metrics and simtrace).

    `model_prefix`: the model evaluated (default DR_LOCAL_S3_MODEL_PREFIX; `--clone` passes the copy);
    `metrics_prefix`: default DR_LOCAL_S3_METRICS_PREFIX; `opponent`: the second car's model prefix for
    HEAD_TO_MODEL (default DR_EVAL_OPP_S3_MODEL_PREFIX), ignored for other race types.
    """
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    bucket = system.local_s3_bucket
    prefix = model_prefix or run.local_s3_model_prefix
    cars: list[dict[str, str]] = [_car(bucket, prefix, metrics_prefix or run.local_s3_metrics_prefix, timestamp, mp4,
                                       color=run.car_color, shell=run.car_body_shell_type,
                                       racer=run.racer_name, display=run.display_name)]
    head_to_model = run.race_type == "HEAD_TO_MODEL"
    if head_to_model:
        other = opponent or run.eval_opp_s3_model_prefix
        cars.append(_car(bucket, other, run.eval_opp_s3_metrics_prefix or f"{other}/metrics", timestamp, mp4,
                         color=HEAD_TO_MODEL_COLORS[1], shell=run.eval_opp_car_body_shell_type,
                         racer=run.eval_opp_racer_name, display=run.eval_opp_display_name))
        cars[0]["CAR_COLOR"] = HEAD_TO_MODEL_COLORS[0]

    params: Params = {key: [car[key] for car in cars if key in car] for key in PER_CAR_KEYS}
    params.update({
        "AWS_REGION": system.aws_app_region,
        "JOB_TYPE": "EVALUATION",
        "KINESIS_VIDEO_STREAM_NAME": system.kinesis_stream_name or "",
        "ROBOMAKER_SIMULATION_JOB_ACCOUNT_ID": "Dummy",
        "EVAL_CHECKPOINT": checkpoint,
        "RACE_TYPE": run.race_type,
        "WORLD_NAME": run.world_name,
        "NUMBER_OF_TRIALS": str(trials),
        "ENABLE_DOMAIN_RANDOMIZATION": flag(run.enable_domain_randomization),
        "RESET_BEHIND_DIST": number(run.eval_reset_behind_dist),
        "IS_CONTINUOUS": flag(run.eval_is_continuous),
        "NUMBER_OF_RESETS": str(run.eval_max_resets),
        "OFF_TRACK_PENALTY": number(run.eval_off_track_penalty),
        "COLLISION_PENALTY": number(run.eval_collision_penalty),
        "CAMERA_MAIN_ENABLE": flag(system.camera_main_enable),
        "CAMERA_SUB_ENABLE": flag(system.camera_sub_enable),
        "REVERSE_DIR": flag(run.eval_reverse_direction),
    })
    if s3_endpoint_url:
        params["S3_ENDPOINT_URL"] = s3_endpoint_url
    if run.race_type == "OBJECT_AVOIDANCE":
        params.update(object_avoidance_params(run))
    if run.race_type == "HEAD_TO_BOT":
        params.update(head_to_bot_params(run))
    if head_to_model:
        params["VIDEO_JOB_TYPE"] = "EVALUATION"
        params["MODEL_NAME"] = list(params["DISPLAY_NAME"])
    return params


def _car(bucket: str, prefix: str, metrics_prefix: str, timestamp: str, mp4: bool, *, color: str, shell: str,
         racer: str, display: str) -> dict[str, str]:
    car = {
        "CAR_COLOR": color,
        "BODY_SHELL_TYPE": shell,
        "RACER_NAME": racer,
        "DISPLAY_NAME": display,
        "MODEL_S3_PREFIX": prefix,
        "MODEL_S3_BUCKET": bucket,
        "SIMTRACE_S3_PREFIX": simtrace_prefix(prefix, timestamp),
        "SIMTRACE_S3_BUCKET": bucket,
        "METRICS_S3_BUCKET": bucket,
        "METRICS_S3_OBJECT_KEY": metrics_key(metrics_prefix, timestamp),
    }
    if mp4:
        # Without videos DRfC leaves both lists empty, which the simulator reads as "no upload".
        car.update(MP4_S3_BUCKET=bucket, MP4_S3_OBJECT_PREFIX=mp4_prefix(prefix))
    return car
