"""system.env + run.env (+ worker-N.env) -> typed SystemConfig and RunConfig, with DRfC's names and defaults.

DeepRacer-for-Cloud loads system.env, then run.env, into one shell environment; we keep its semantics so users'
files carry over:

- run.env may reference system.env values (`DR_LOCAL_S3_MODEL_PREFIX=rl-${DR_RUN_ID}-$DR_WORLD_NAME` works), and a
  key set in both files takes run.env's value (reported as a warning: it is usually a leftover).
- A key missing from both files takes DRfC's template default; defaults that DRfC writes as references
  (`DR_DISPLAY_NAME=$DR_CAR_NAME`) follow the resolved value of the key they name.
- Only the files count: a `DR_*` variable in the process environment fills `$VAR` references, never a setting.
- Unknown keys are warnings with a close-match suggestion; a malformed value is a ConfigError naming file, line,
  key and what is expected.

Typed attributes are named after their keys: `DR_EVAL_NUMBER_OF_TRIALS` -> `eval_number_of_trials`. Every config
object keeps `raw` (key -> normalised text, unknown keys included) for the code that maps DRfC names to the
simulator's variables, and `origins` (key -> file and line) so later checks can point at the right line.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple, Optional, Union

from session.core.defaults import MAX_WORKERS
from session.core.envfile import ConfigError, ConfigWarning, EnvFile, PathLike, combine, read_env_file

# The locations live in session.core.paths; these two are part of this module's API (load_config's defaults).
from session.core.paths import RUN_ENV_VARIABLE, SYSTEM_ENV_VARIABLE, default_run_env, default_system_env

__all__ = [
    "ConfigError", "ConfigWarning", "LoadedConfig", "Origin", "RunConfig", "SystemConfig", "default_run_env",
    "default_run_env_text", "default_system_env", "load_config", "load_system_config", "RUN_KEYS", "SYSTEM_KEYS",
    "WORKER_KEYS",
]



# --- value kinds -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Kind:
    expected: str  # completes "expected ..." in an error
    parse: Callable[[str], Any]  # raises ValueError (or KeyError) when the text is not valid
    render: Callable[[Any], str] = str  # the normalised text kept in `raw`
    optional: bool = False  # "" (or no default) means None instead of an error


def _pattern(regex: str, expected: str) -> _Kind:
    compiled = re.compile(regex)

    def parse(text: str) -> str:
        if not compiled.fullmatch(text):
            raise ValueError(text)
        return text

    return _Kind(expected, parse)


def _optional(kind: _Kind, *, none: tuple[str, ...] = ("",)) -> _Kind:
    def parse(text: str) -> Any:
        return None if text in none else kind.parse(text)

    return _Kind(kind.expected, parse, kind.render, optional=True)


_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _parse_bool(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(text)


# DRfC compares with `${VAR,,} == "true"` and writes True/False; we accept its spellings and write True/False.
BOOL = _Kind("True or False (also true/false, yes/no, 1/0)", _parse_bool, lambda value: str(bool(value)))


def _choice(*options: str, expected: Optional[str] = None, also: Optional[_Kind] = None) -> _Kind:
    """One of `options`, matched without regard to case and normalised to the spelling given here."""
    canonical = {option.lower(): option for option in options}

    def parse(text: str) -> str:
        if text.lower() in canonical:
            return canonical[text.lower()]
        if also is not None:
            return also.parse(text)
        raise ValueError(text)

    return _Kind(expected or "one of " + ", ".join(options), parse)


_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _integer(low: int, high: Optional[int] = None) -> _Kind:
    def parse(text: str) -> int:
        if not _INTEGER.fullmatch(text) or not low <= int(text) <= (high if high is not None else int(text)):
            raise ValueError(text)
        return int(text)

    expected = f"a whole number from {low} to {high}" if high is not None else f"a whole number of at least {low}"
    return _Kind(expected, parse)


def _number(low: float = 0.0, high: Optional[float] = None, *, above: bool = False) -> _Kind:
    def parse(text: str) -> float:
        value = float(text) if _DECIMAL.fullmatch(text) else None
        if value is None or value < low or (above and value == low) or (high is not None and value > high):
            raise ValueError(text)
        return value

    lower = f"above {low:g}" if above else f"of at least {low:g}"
    expected = f"a number from {low:g} to {high:g}" if high is not None else f"a number {lower}"
    return _Kind(expected, parse, repr)


def _parse_checkpoint(text: str) -> str:
    # simapp 6.0.4 honours `best` and takes anything else as `last` (bundle/markov/training_worker.py, `if
    # args.pretrained_checkpoint.lower() == "best": ... else: get_deepracer_last_checkpoint()`), so a checkpoint
    # number would silently train from the last one.
    if text.lower() in ("best", "last"):
        return text.lower()
    raise ValueError(text)


def _parse_positions(text: str) -> tuple[tuple[float, int], ...]:
    """DRfC's `"<lap fraction>,<lane>;..."` (lane 1 = inner, -1 = outer) as ((fraction, lane), ...)."""
    positions = []
    for item in text.split(";") if text else ():
        fraction, lane = item.split(",")  # ValueError unless exactly one comma
        if not _DECIMAL.fullmatch(fraction.strip()) or not 0 <= float(fraction) <= 1:
            raise ValueError(item)
        if lane.strip() not in ("1", "-1", "+1"):
            raise ValueError(item)
        positions.append((float(fraction), int(lane)))
    return tuple(positions)


def _render_positions(positions: tuple[tuple[float, int], ...]) -> str:
    return ";".join(f"{fraction!r},{lane}" for fraction, lane in positions)


_S3_PART = r"[A-Za-z0-9!_.*'()-]+"
S3_PREFIX = _pattern(rf"{_S3_PART}(/{_S3_PART})*",
                     "an S3 prefix of letters, digits and !_.*'()- parts joined by single /, no / at either end")
S3_KEY = _pattern(rf"{_S3_PART}(/{_S3_PART})*", "an S3 key such as custom_files/reward_function.py")
# DRfC builds per-worker names by splitting on the first dot (training_params_2.yaml), so one dot only.
YAML_NAME = _pattern(r"[A-Za-z0-9_-]+\.ya?ml", "a file name such as training_params.yaml (one dot, .yaml or .yml)")
NAME = _pattern(r"[A-Za-z0-9_.-]+", "a name of letters, digits and _.-")
TEXT = _pattern(r".*\S.*", "a non-empty value")
BUCKET = _pattern(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "an S3 bucket name (3-63 of a-z 0-9 . -)")
URL = _pattern(r"https?://[^\s/]+(/\S*)?", "a URL such as http://minio:9000")
IMAGE = _pattern(r"[a-z0-9][a-z0-9./_-]*", "an image repository such as awsdeepracercommunity/deepracer-simapp")
TAG = _pattern(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "an image tag such as 6.0.4-gpu")
SSM_PARAMETER = _pattern(r"(/[A-Za-z0-9_.-]+)+", "an SSM parameter name such as /deepracer/aws/swarm-worker-join-token")
KMS_KEY = _pattern(r"(alias/|arn:aws[a-z-]*:kms:)?[A-Za-z0-9/_:.-]+", "a KMS key id, ARN or alias/<name>")
REGION = _pattern(r"[a-z0-9-]+", "a region name such as us-east-1")
DEVICES = _pattern(r"\d+(,\d+)*", "GPU numbers such as 0 or 0,1")
# Where a local machine's models are copied (session.storage.keeper): a bucket, or a storage account's container.
# A folder inside either may follow (session.storage.folder_mirror): segments that start with no dot, so no `..`.
_COPY_FOLDER = r"(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*/?"
MODEL_COPY = _pattern(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]" + _COPY_FOLDER + r"|https://[a-z0-9]{3,24}"
                      r"\.blob\.core\.windows\.net/[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}" + _COPY_FOLDER,
                      "s3://<bucket>[/<folder>] or https://<account>.blob.core.windows.net/<container>[/<folder>]")
RACE_TYPE = _choice("TIME_TRIAL", "OBJECT_AVOIDANCE", "HEAD_TO_BOT", "HEAD_TO_MODEL",
                    expected="one of TIME_TRIAL, OBJECT_AVOIDANCE, HEAD_TO_BOT (or HEAD_TO_MODEL to evaluate)")
CAR_COLOR = _choice("Black", "Grey", "Blue", "Red", "Orange", "White", "Purple",
                    also=_pattern(r"f1_car_[0-9A-Fa-f]+", ""),
                    expected="one of Black, Grey, Blue, Red, Orange, White, Purple (or f1_car_<hex>)")
CHECKPOINT = _Kind("best or last", _parse_checkpoint)
PRETRAINED_CHECKPOINT_KEY = "DR_LOCAL_S3_PRETRAINED_CHECKPOINT"
POSITIONS = _Kind("<lap fraction 0-1>,<lane 1 or -1> pairs joined by ; such as 0.23,-1;0.46,1",
                  _parse_positions, _render_positions)


# --- settings: a dataclass field per key, carrying the key, its kind and DRfC's default -----------------------

Default = Union[str, Callable[[Mapping[str, str]], Optional[str]], None]


@dataclass(frozen=True)
class Setting:
    key: str
    kind: _Kind
    default: Default  # DRfC's template text ($KEY refers to an earlier setting), a function of them, or None
    help: str = ""
    example: Optional[str] = None  # for keys DRfC's template leaves commented out
    per_worker: bool = False  # may differ in worker-N.env


def _setting(key: str, kind: _Kind, default: Default, help: str = "", *, example: Optional[str] = None,
             per_worker: bool = False, secret: bool = False) -> Any:
    return field(metadata={"setting": Setting(key, kind, default, help, example, per_worker)}, repr=not secret)


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a file and line, or the file it would be in when DRfC's default applies."""

    path: str
    line: Optional[int]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else f"{self.path} (default)"


class _Settings:
    """What SystemConfig and RunConfig share: the untyped view and error helpers."""

    raw: Mapping[str, str]
    origins: Mapping[str, Origin]

    @classmethod
    def settings(cls) -> tuple[Setting, ...]:
        return tuple(f.metadata["setting"] for f in fields(cls) if "setting" in f.metadata)  # type: ignore

    def as_dict(self) -> dict[str, Any]:
        """Key -> typed value, in DRfC's template order."""
        return {f.metadata["setting"].key: getattr(self, f.name)
                for f in fields(self) if "setting" in f.metadata}  # type: ignore

    def error(self, key: str, expected: str) -> ConfigError:
        """A one-line error about `key` at the line it came from, for checks made after loading."""
        origin = self.origins[key]
        return ConfigError(origin.path, origin.line, key, expected, self.raw.get(key))


def _system_derived(urls: dict[str, str]) -> Callable[[Mapping[str, str]], Optional[str]]:
    """DRfC's activate.sh derives the MinIO endpoints from the cloud; `remote` uses DR_REMOTE_MINIO_URL."""
    def default(values: Mapping[str, str]) -> Optional[str]:
        cloud = values["DR_CLOUD"]
        return values.get("DR_REMOTE_MINIO_URL") if cloud == "remote" else urls.get(cloud)

    return default


@dataclass(frozen=True, kw_only=True)
class SystemConfig(_Settings):
    """The machine: where models are stored, which image runs, how many workers (system.env)."""

    cloud: str = _setting("DR_CLOUD", _choice("aws", "azure", "local", "remote"), None, "storage and auth mode")
    aws_app_region: str = _setting("DR_AWS_APP_REGION", REGION, "us-east-1", "region for S3, KVS and CloudWatch")
    upload_s3_profile: str = _setting("DR_UPLOAD_S3_PROFILE", NAME, "default")
    upload_s3_bucket: Optional[str] = _setting(
        "DR_UPLOAD_S3_BUCKET", _optional(BUCKET, none=("", "not-defined")), "not-defined",
        "target bucket for model uploads; not-defined: none")
    local_s3_bucket: str = _setting("DR_LOCAL_S3_BUCKET", BUCKET, "bucket", "the working bucket")
    local_s3_profile: str = _setting("DR_LOCAL_S3_PROFILE", NAME,
                                     lambda values: "default" if values["DR_CLOUD"] == "aws" else "minio")
    gui_enable: bool = _setting("DR_GUI_ENABLE", BOOL, "False")
    kinesis_stream_name: Optional[str] = _setting("DR_KINESIS_STREAM_NAME", _optional(NAME), "")
    camera_main_enable: bool = _setting("DR_CAMERA_MAIN_ENABLE", BOOL, "True")
    camera_sub_enable: bool = _setting("DR_CAMERA_SUB_ENABLE", BOOL, "False")
    camera_kvs_enable: bool = _setting("DR_CAMERA_KVS_ENABLE", BOOL, "True")
    enable_extra_kvs_overlay: bool = _setting("DR_ENABLE_EXTRA_KVS_OVERLAY", BOOL, "False")
    simapp_source: str = _setting("DR_SIMAPP_SOURCE", IMAGE, "awsdeepracercommunity/deepracer-simapp")
    simapp_version: str = _setting("DR_SIMAPP_VERSION", TAG, None)  # DRfC refuses to activate without it
    minio_image: str = _setting("DR_MINIO_IMAGE", TAG, "latest")
    analysis_image: str = _setting("DR_ANALYSIS_IMAGE", TAG, "cpu")
    workers: int = _setting("DR_WORKERS", _integer(1, MAX_WORKERS), "1", "simulation workers")
    robomaker_mount_logs: bool = _setting("DR_ROBOMAKER_MOUNT_LOGS", BOOL, "False")
    robomaker_mount_simapp_dir: Optional[str] = _setting("DR_ROBOMAKER_MOUNT_SIMAPP_DIR", _optional(TEXT), None)
    robomaker_mount_scripts_dir: Optional[str] = _setting("DR_ROBOMAKER_MOUNT_SCRIPTS_DIR", _optional(TEXT), None)
    cloud_watch_enable: bool = _setting("DR_CLOUD_WATCH_ENABLE", BOOL, "False")
    cloud_watch_log_stream_prefix: Optional[str] = _setting(
        "DR_CLOUD_WATCH_LOG_STREAM_PREFIX", _optional(TEXT), "")
    # Accepted for DRfC files; containers here always run with compose semantics on one host.
    docker_style: str = _setting("DR_DOCKER_STYLE", _choice("swarm", "compose"), "swarm")
    host_x: bool = _setting("DR_HOST_X", BOOL, "False")
    webviewer_port: int = _setting("DR_WEBVIEWER_PORT", _integer(1, 65535), "8100")
    quiet_activate: bool = _setting("DR_QUIET_ACTIVATE", BOOL, "False")
    display: Optional[str] = _setting("DR_DISPLAY", _optional(TEXT), None, example=":99")
    remote_minio_url: Optional[str] = _setting("DR_REMOTE_MINIO_URL", _optional(URL), None,
                                               example="http://mynas:9000")
    # Host-side and container-side S3 endpoints; DRfC derives both at activation, a file may set them.
    local_s3_endpoint_url: Optional[str] = _setting(
        "DR_LOCAL_S3_ENDPOINT_URL", _optional(URL),
        _system_derived({"azure": "http://localhost:9000", "local": "http://localhost:9000"}))
    minio_url: Optional[str] = _setting(
        "DR_MINIO_URL", _optional(URL), _system_derived({"azure": "http://minio:9000", "local": "http://minio:9000"}))
    local_access_key_id: Optional[str] = _setting("DR_LOCAL_ACCESS_KEY_ID", _optional(TEXT), None)
    local_secret_access_key: Optional[str] = _setting("DR_LOCAL_SECRET_ACCESS_KEY", _optional(TEXT), None,
                                                      secret=True)
    robomaker_cuda_devices: Optional[str] = _setting(
        "DR_ROBOMAKER_CUDA_DEVICES", _optional(DEVICES), None,
        "GPUs the simulation workers' TensorFlow may use; unset: none, the trainer keeps the GPU", example="0")
    sagemaker_cuda_devices: Optional[str] = _setting("DR_SAGEMAKER_CUDA_DEVICES", _optional(DEVICES), None)
    experiment_name: Optional[str] = _setting("DR_EXPERIMENT_NAME", _optional(NAME), None)
    telegraf_host: Optional[str] = _setting("DR_TELEGRAF_HOST", _optional(NAME), None)
    telegraf_port: Optional[int] = _setting("DR_TELEGRAF_PORT", _optional(_integer(1, 65535)), None)
    droa_url: Optional[str] = _setting("DR_DROA_URL", _optional(URL), None)
    droa_username: Optional[str] = _setting("DR_DROA_USERNAME", _optional(TEXT), None)
    droa_debug: Optional[str] = _setting("DR_DROA_DEBUG", _optional(TEXT), None)
    gazebo_args: Optional[str] = _setting("DR_GAZEBO_ARGS", _optional(TEXT), None)
    gazebo_render_engine: str = _setting("DR_GAZEBO_RENDER_ENGINE", NAME, "ogre2")
    # Not DRfC's: cost controls of this project's hosts (session.lifecycle.idle, session.lifecycle.limits); the stack
    # writes them.
    idle_stop_minutes: int = _setting("DR_IDLE_STOP_MINUTES", _integer(0), "30",
                                      "power the host off after this many minutes without training or "
                                      "evaluation; 0: never")
    power_off_after_max_minutes: bool = _setting("DR_POWER_OFF_AFTER_MAX_MINUTES", BOOL, "False",
                                                 "power the host off once training reached its time limit")
    dashboard_at_boot: bool = _setting("DR_DASHBOARD_AT_BOOT", BOOL, "False",
                                       "the first boot enables deepracer-dashboard.service (the stack's `dashboard`)")
    notify_topic_arn: Optional[str] = _setting("DR_NOTIFY_TOPIC_ARN", _optional(TEXT), None,
                                               "AWS: the SNS topic for e-mail notifications (session.lifecycle.notify)")
    # Azure hosts: where MinIO's model prefixes are kept (session.storage.blob); the stack writes them.
    azure_storage_account: Optional[str] = _setting("DR_AZURE_STORAGE_ACCOUNT", _optional(NAME), None,
                                                    "Azure: the storage account that keeps the models")
    azure_blob_container: Optional[str] = _setting("DR_AZURE_BLOB_CONTAINER", _optional(NAME), None,
                                                   "Azure: the blob container that keeps the models")
    # Local machines: an optional copy of the models beyond this disk (session.storage.keeper); `sudo python3 -m
    # infra.local_prepare --copy-models-to URL` writes it.
    model_copy_url: Optional[str] = _setting(
        "DR_MODEL_COPY_URL", _optional(MODEL_COPY), None,
        "local: copy the models to this bucket or blob container (or a folder in it) after each stop and every "
        "10 minutes",
        example="s3://my-deepracer-models")
    model_copy_profile: Optional[str] = _setting(
        "DR_MODEL_COPY_PROFILE", _optional(NAME), None,
        "local: the AWS profile (~/.aws/config) that reaches DR_MODEL_COPY_URL; unset: boto3's default chain")
    # Simulation nodes that join this host's swarm (docs/multi-node.md, session.host.join_token); the stack writes
    # them only with simNodes > 0.
    sim_nodes: int = _setting("DR_SIM_NODES", _integer(0), "0",
                              "simulation nodes that join this host's swarm; the first boot waits for them")
    sim_node_workers: Optional[int] = _setting("DR_SIM_NODE_WORKERS", _optional(_integer(1, MAX_WORKERS)), None,
                                               "workers each simulation node carries")
    swarm_token_parameter: Optional[str] = _setting(
        "DR_SWARM_TOKEN_PARAMETER", _optional(SSM_PARAMETER), None,
        "AWS: the SSM parameter the swarm's worker join token is published to")
    swarm_token_key_id: Optional[str] = _setting(
        "DR_SWARM_TOKEN_KEY_ID", _optional(KMS_KEY), None,
        "AWS: the KMS key the token parameter is encrypted with (an overwrite without it would use aws/ssm)")
    swarm_token_secret_url: Optional[str] = _setting(
        "DR_SWARM_TOKEN_SECRET_URL", _optional(URL), None,
        "Azure: the Key Vault secret the swarm's worker join token is published to")
    raw: Mapping[str, str] = field(repr=False)
    origins: Mapping[str, Origin] = field(repr=False, compare=False)

    @property
    def simapp_image(self) -> str:
        return f"{self.simapp_source}:{self.simapp_version}"


@dataclass(frozen=True, kw_only=True)
class RunConfig(_Settings):
    """One training/evaluation run (run.env), with per-worker variants from worker-N.env."""

    run_id: int = _setting("DR_RUN_ID", _integer(0), "0", "lets several runs coexist on one host")
    world_name: str = _setting("DR_WORLD_NAME", NAME, "reinvent_base",
                               "track (simapp world name; some have _cw/_ccw variants)", per_worker=True)
    race_type: str = _setting("DR_RACE_TYPE", RACE_TYPE, "TIME_TRIAL",
                              "TIME_TRIAL, OBJECT_AVOIDANCE or HEAD_TO_BOT; HEAD_TO_MODEL to evaluate against a model",
                              per_worker=True)
    car_name: str = _setting("DR_CAR_NAME", TEXT, "FastCar")
    car_body_shell_type: str = _setting("DR_CAR_BODY_SHELL_TYPE", NAME, "deepracer", per_worker=True)
    car_color: str = _setting("DR_CAR_COLOR", CAR_COLOR, "Red", "Black, Grey, Blue, Red, Orange, White or Purple",
                              per_worker=True)
    display_name: str = _setting("DR_DISPLAY_NAME", TEXT, "$DR_CAR_NAME", "names shown in the video overlay")
    racer_name: str = _setting("DR_RACER_NAME", TEXT, "$DR_CAR_NAME")
    enable_domain_randomization: bool = _setting(
        "DR_ENABLE_DOMAIN_RANDOMIZATION", BOOL, "False", "randomise colours and lighting per episode",
        per_worker=True)
    eval_number_of_trials: int = _setting("DR_EVAL_NUMBER_OF_TRIALS", _integer(1), "3", "laps per evaluation")
    eval_is_continuous: bool = _setting("DR_EVAL_IS_CONTINUOUS", BOOL, "True",
                                        "keep going after leaving the track, with a time penalty")
    eval_max_resets: int = _setting("DR_EVAL_MAX_RESETS", _integer(0), "100")
    eval_off_track_penalty: float = _setting("DR_EVAL_OFF_TRACK_PENALTY", _number(), "5.0",
                                            "seconds added for leaving the track")
    eval_collision_penalty: float = _setting("DR_EVAL_COLLISION_PENALTY", _number(), "5.0",
                                            "seconds added for a collision")
    eval_save_mp4: bool = _setting("DR_EVAL_SAVE_MP4", BOOL, "False", "write videos to <model prefix>/mp4")
    eval_checkpoint: str = _setting("DR_EVAL_CHECKPOINT", _choice("best", "last"), "last")
    eval_opp_s3_model_prefix: str = _setting("DR_EVAL_OPP_S3_MODEL_PREFIX", S3_PREFIX, "rl-deepracer-sagemaker",
                                             "the opponent for HEAD_TO_MODEL")
    eval_opp_car_body_shell_type: str = _setting("DR_EVAL_OPP_CAR_BODY_SHELL_TYPE", NAME, "deepracer")
    eval_opp_car_name: str = _setting("DR_EVAL_OPP_CAR_NAME", TEXT, "FasterCar")
    eval_opp_display_name: str = _setting("DR_EVAL_OPP_DISPLAY_NAME", TEXT, "$DR_EVAL_OPP_CAR_NAME")
    eval_opp_racer_name: str = _setting("DR_EVAL_OPP_RACER_NAME", TEXT, "$DR_EVAL_OPP_CAR_NAME")
    eval_debug_reward: bool = _setting("DR_EVAL_DEBUG_REWARD", BOOL, "False", "run the reward function in evaluation")
    eval_reset_behind_dist: float = _setting("DR_EVAL_RESET_BEHIND_DIST", _number(), "1.0",
                                             "metres to reset behind after a crash")
    eval_reverse_direction: bool = _setting("DR_EVAL_REVERSE_DIRECTION", BOOL, "False")
    eval_rtf: Optional[float] = _setting("DR_EVAL_RTF", _optional(_number(above=True)), None,
                                         "real-time factor override", example="1.0")
    eval_opp_s3_metrics_prefix: Optional[str] = _setting("DR_EVAL_OPP_S3_METRICS_PREFIX", _optional(S3_PREFIX), None)
    train_change_start_position: bool = _setting("DR_TRAIN_CHANGE_START_POSITION", BOOL, "True",
                                                 "move the start line every episode", per_worker=True)
    train_reverse_direction: bool = _setting("DR_TRAIN_REVERSE_DIRECTION", BOOL, "False", per_worker=True)
    train_alternate_driving_direction: bool = _setting(
        "DR_TRAIN_ALTERNATE_DRIVING_DIRECTION", BOOL, "False", "alternate directions per episode", per_worker=True)
    train_start_position_offset: float = _setting("DR_TRAIN_START_POSITION_OFFSET", _number(0, 1), "0.0",
                                                  "fraction of the lap for the first start", per_worker=True)
    train_round_robin_advance_dist: float = _setting(
        "DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST", _number(0, 1), "0.05", "fraction of the lap the start moves per episode",
        per_worker=True)
    train_multi_config: bool = _setting("DR_TRAIN_MULTI_CONFIG", BOOL, "False",
                                        "with DR_WORKERS>1: read worker-N.env beside this file for workers 2 and up")
    train_min_eval_trials: int = _setting("DR_TRAIN_MIN_EVAL_TRIALS", _integer(1), "5",
                                          "evaluation episodes between iterations")
    train_best_model_metric: str = _setting("DR_TRAIN_BEST_MODEL_METRIC", _choice("progress", "reward", "laptime"),
                                            "progress", "what makes a checkpoint the best one")
    train_rtf: Optional[float] = _setting("DR_TRAIN_RTF", _optional(_number(above=True)), None,
                                          "real-time factor override", example="1.0")
    train_max_steps_per_iteration: Optional[int] = _setting(
        "DR_TRAIN_MAX_STEPS_PER_ITERATION", _optional(_integer(1)), None,
        "experience cap per iteration (limits GPU memory)", example="10000")
    # Not DRfC's: `train --max-minutes` overrides it (session.lifecycle.limits).
    train_max_minutes: Optional[int] = _setting(
        "DR_TRAIN_MAX_MINUTES", _optional(_integer(1)), None,
        "stop training cleanly after this many minutes of training (kept across spot resumes)", example="240")
    local_s3_model_prefix: str = _setting("DR_LOCAL_S3_MODEL_PREFIX", S3_PREFIX, "rl-deepracer-sagemaker",
                                          "the model's folder in the working bucket")
    local_s3_pretrained: bool = _setting("DR_LOCAL_S3_PRETRAINED", BOOL, "False", "start from another model")
    local_s3_pretrained_prefix: str = _setting("DR_LOCAL_S3_PRETRAINED_PREFIX", S3_PREFIX, "rl-sagemaker-pretrained")
    local_s3_pretrained_checkpoint: str = _setting(
        "DR_LOCAL_S3_PRETRAINED_CHECKPOINT", CHECKPOINT, "last",
        "best or last (the simulator honours no other; `deepracer models export` makes any checkpoint a model's last)")
    local_s3_custom_files_prefix: str = _setting("DR_LOCAL_S3_CUSTOM_FILES_PREFIX", S3_PREFIX, "custom_files")
    local_s3_training_params_file: str = _setting("DR_LOCAL_S3_TRAINING_PARAMS_FILE", YAML_NAME,
                                                  "training_params.yaml", "names under the model prefix")
    local_s3_eval_params_file: str = _setting("DR_LOCAL_S3_EVAL_PARAMS_FILE", YAML_NAME, "evaluation_params.yaml")
    local_s3_model_metadata_key: str = _setting("DR_LOCAL_S3_MODEL_METADATA_KEY", S3_KEY,
                                                "$DR_LOCAL_S3_CUSTOM_FILES_PREFIX/model_metadata.json")
    local_s3_hyperparameters_key: str = _setting("DR_LOCAL_S3_HYPERPARAMETERS_KEY", S3_KEY,
                                                 "$DR_LOCAL_S3_CUSTOM_FILES_PREFIX/hyperparameters.json")
    local_s3_reward_key: str = _setting("DR_LOCAL_S3_REWARD_KEY", S3_KEY,
                                        "$DR_LOCAL_S3_CUSTOM_FILES_PREFIX/reward_function.py")
    local_s3_metrics_prefix: str = _setting("DR_LOCAL_S3_METRICS_PREFIX", S3_PREFIX,
                                            "$DR_LOCAL_S3_MODEL_PREFIX/metrics")
    upload_s3_prefix: str = _setting("DR_UPLOAD_S3_PREFIX", S3_PREFIX, "$DR_LOCAL_S3_MODEL_PREFIX-1",
                                     "target prefix in the upload bucket")
    oa_number_of_obstacles: int = _setting("DR_OA_NUMBER_OF_OBSTACLES", _integer(0), "6", per_worker=True)
    oa_min_distance_between_obstacles: float = _setting("DR_OA_MIN_DISTANCE_BETWEEN_OBSTACLES", _number(), "2.0",
                                                        per_worker=True)
    oa_randomize_obstacle_locations: bool = _setting("DR_OA_RANDOMIZE_OBSTACLE_LOCATIONS", BOOL, "False",
                                                     per_worker=True)
    oa_is_obstacle_bot_car: bool = _setting("DR_OA_IS_OBSTACLE_BOT_CAR", BOOL, "False",
                                            "parked cars instead of boxes", per_worker=True)
    oa_obstacle_type: str = _setting("DR_OA_OBSTACLE_TYPE", NAME, "box_obstacle", per_worker=True)
    oa_object_positions: tuple[tuple[float, int], ...] = _setting(
        "DR_OA_OBJECT_POSITIONS", POSITIONS, "",
        "fixed obstacles as \"<lap fraction>,<lane 1|-1>;...\" e.g. \"0.23,-1;0.46,1\"; overrides the number",
        per_worker=True)
    h2b_is_lane_change: bool = _setting("DR_H2B_IS_LANE_CHANGE", BOOL, "False", per_worker=True)
    h2b_lower_lane_change_time: float = _setting("DR_H2B_LOWER_LANE_CHANGE_TIME", _number(), "3.0",
                                                 "bot cars change lane every LOWER to UPPER seconds",
                                                 per_worker=True)
    h2b_upper_lane_change_time: float = _setting("DR_H2B_UPPER_LANE_CHANGE_TIME", _number(), "5.0", "",
                                                 per_worker=True)
    h2b_lane_change_distance: float = _setting("DR_H2B_LANE_CHANGE_DISTANCE", _number(), "1.0",
                                               "metres driven while changing lane", per_worker=True)
    h2b_number_of_bot_cars: int = _setting("DR_H2B_NUMBER_OF_BOT_CARS", _integer(0), "3", per_worker=True)
    h2b_min_distance_between_bot_cars: float = _setting("DR_H2B_MIN_DISTANCE_BETWEEN_BOT_CARS", _number(), "2.0",
                                                        per_worker=True)
    h2b_randomize_bot_car_locations: bool = _setting("DR_H2B_RANDOMIZE_BOT_CAR_LOCATIONS", BOOL, "False",
                                                     per_worker=True)
    h2b_bot_car_speed: float = _setting("DR_H2B_BOT_CAR_SPEED", _number(), "0.2", "bot car speed in metres per second",
                                        per_worker=True)
    h2b_bot_car_penalty: float = _setting("DR_H2B_BOT_CAR_PENALTY", _number(), "5.0",
                                          "seconds added for hitting a bot car", per_worker=True)
    raw: Mapping[str, str] = field(repr=False)
    origins: Mapping[str, Origin] = field(repr=False, compare=False)
    worker_configs: Mapping[int, "RunConfig"] = field(default_factory=dict, repr=False, compare=False)

    def for_worker(self, worker: int) -> "RunConfig":
        """The config simulation worker `worker` (1-based) runs: run.env merged with its worker-N.env, if any.

        Worker files are read only with DR_TRAIN_MULTI_CONFIG=True and DR_WORKERS>1; worker 1 is run.env itself.
        Unlike DRfC (which lets worker 2's overrides leak into worker 3), each worker starts from run.env.
        """
        if worker < 1:
            raise ValueError(f"worker numbers start at 1, got {worker}")
        return self.worker_configs.get(worker, self)

    def check_training(self) -> None:
        """HEAD_TO_MODEL races against another model: only evaluation can do that."""
        if self.race_type == "HEAD_TO_MODEL":
            raise self.error("DR_RACE_TYPE", "one of TIME_TRIAL, OBJECT_AVOIDANCE, HEAD_TO_BOT to train "
                                             "(HEAD_TO_MODEL is for evaluation only)")


SYSTEM_KEYS: tuple[str, ...] = tuple(setting.key for setting in SystemConfig.settings())
RUN_KEYS: tuple[str, ...] = tuple(setting.key for setting in RunConfig.settings())
WORKER_KEYS: tuple[str, ...] = tuple(setting.key for setting in RunConfig.settings() if setting.per_worker)

# Keys DRfC users may still have in their files, with why we do not read them.
_DERIVED = ("DR_DIR", "DR_CONFIG", "DR_ROBOMAKER_TRAIN_PORT", "DR_ROBOMAKER_EVAL_PORT", "DR_ROBOMAKER_GUI_PORT",
            "DR_LOCAL_PROFILE_ENDPOINT_URL", "DR_LOCAL_S3_AUTH_MODE", "DR_UPLOAD_PROFILE", "DR_TRAIN_COMPOSE_FILE",
            "DR_EVAL_COMPOSE_FILE", "DR_MINIO_COMPOSE_FILE", "DR_DOCKER_FILE_SEP", "DR_DOCKER_MAJOR_VERSION",
            "DR_CURRENT_PARAMS_FILE")
_RENAMED = {
    "DR_SAGEMAKER_IMAGE": "DR_SIMAPP_SOURCE and DR_SIMAPP_VERSION (one image since simapp 5.3)",
    "DR_ROBOMAKER_IMAGE": "DR_SIMAPP_SOURCE and DR_SIMAPP_VERSION (one image since simapp 5.3)",
    "DR_COACH_IMAGE": "DR_SIMAPP_SOURCE and DR_SIMAPP_VERSION (one image since simapp 5.3)",
    "DR_KINESIS_STREAM_ENABLE": "DR_KINESIS_STREAM_NAME (a name turns the stream on)",
    "DR_CHANGE_START_POSITION": "DR_TRAIN_CHANGE_START_POSITION",
    "DR_ALTERNATE_DRIVING_DIRECTION": "DR_TRAIN_ALTERNATE_DRIVING_DIRECTION",
    "DR_EVAL_NUMBER_OF_RESETS": "DR_EVAL_MAX_RESETS",
    "DR_LOCAL_S3_METRICS_KEY": "DR_LOCAL_S3_METRICS_PREFIX",
    "DR_COLLISION_PENALTY": "DR_EVAL_COLLISION_PENALTY",
}
_WORKER_FILE = re.compile(r"worker-(\d+)\.env")


class LoadedConfig(NamedTuple):
    system: SystemConfig
    run: RunConfig
    warnings: tuple[ConfigWarning, ...]


def load_config(run_env: Optional[PathLike] = None, system_env: Optional[PathLike] = None, *,
                environ: Optional[Mapping[str, str]] = None) -> LoadedConfig:
    """Read system.env, then run.env (and worker-N.env files beside it) into typed configs plus warnings.

    Paths default to default_system_env() and default_run_env(); `environ` (default os.environ) supplies the
    DR_SYSTEM_ENV / DR_RUN_ENV overrides and the values of `$VAR` references that no file defines.
    Raises ConfigError (one line: file, line, key, what is expected) for a mistake, ConfigErrors (one line
    each) for several: every mistake of system.env and run.env is reported in one run.
    """
    environ = os.environ if environ is None else environ
    system_path = Path(system_env) if system_env is not None else default_system_env(environ)
    system_file = _read(system_path, {}, environ, "", SYSTEM_ENV_VARIABLE)
    errors: list[ConfigError] = list(system_file.errors)
    if run_env is not None:
        run_path = Path(run_env)
    else:
        # DRfC's experiments/<name>/run.env; a malformed name is reported by the SystemConfig check below.
        experiment = system_file.values.get("DR_EXPERIMENT_NAME", "")
        run_path = default_run_env(environ, experiment if re.fullmatch(r"[A-Za-z0-9_.-]+", experiment)
                                   and experiment.strip(".") else None)
    try:
        run_file = _read(run_path, system_file.values, environ, str(system_path), RUN_ENV_VARIABLE)
    except ConfigError as missing:
        raise combine([*errors, missing]) from None  # type: ignore[misc]  # not None: one at least
    errors += run_file.errors
    warnings = [*system_file.warnings, *run_file.warnings]

    merged: dict[str, tuple[str, Origin]] = {}
    for env_file in (system_file, run_file):
        for entry in env_file.entries:
            merged[entry.key] = (entry.value, Origin(env_file.path, entry.line))
    system_values = system_file.values
    for entry in run_file.entries:
        if entry.key in system_values and system_values[entry.key] != entry.value:
            warnings.append(ConfigWarning(run_file.path, entry.line, entry.key,
                                          f"overrides '{system_values[entry.key]}' from {system_path}"))

    # Lines that did not parse are left out of `merged`; reporting their keys again as missing would repeat them.
    broken = {error.subject for error in errors}
    system, system_errors = _build(SystemConfig, merged, str(system_path), _unknown(system_file), skip=broken)
    run, run_errors = _build(RunConfig, merged, str(run_path), _unknown(run_file), skip=broken)
    bucket = system.local_s3_bucket if system is not None else "BUCKET"
    run_errors = [_with_export_hint(error, merged, bucket) for error in run_errors]
    failed = combine(sorted([*errors, *system_errors, *run_errors], key=_file_order([system_path, run_path])))
    if failed is not None:
        raise failed
    for env_file in (system_file, run_file):
        warnings.extend(_unknown_key_warnings(env_file))
    if system.cloud == "remote" and not system.remote_minio_url:
        raise ConfigError(system_path, None, "DR_REMOTE_MINIO_URL",
                          "the URL of the S3 server (e.g. http://mynas:9000) when DR_CLOUD=remote", None)
    if "DR_DOCKER_STYLE" in merged and system.docker_style == "swarm":
        origin = merged["DR_DOCKER_STYLE"][1]
        warnings.append(ConfigWarning(origin.path, origin.line, "DR_DOCKER_STYLE",
                                      "swarm is accepted, but this tool runs containers as compose does, on one host"))

    workers, worker_warnings = _load_workers(run, system, run_path, environ)
    warnings.extend(worker_warnings)
    if workers:
        run = replace(run, worker_configs=MappingProxyType(workers))
    return LoadedConfig(system, run, tuple(warnings))


def load_system_config(system_env: Optional[PathLike] = None, *,
                       environ: Optional[Mapping[str, str]] = None) -> SystemConfig:
    """system.env alone, for the host's own services (idle stop, spot watcher) that have no run.env to read.
    Raises ConfigError like load_config; warnings are left to the commands that show them."""
    environ = os.environ if environ is None else environ
    path = Path(system_env) if system_env is not None else default_system_env(environ)
    system_file = _read(path, {}, environ, "", SYSTEM_ENV_VARIABLE)
    merged = {entry.key: (entry.value, Origin(system_file.path, entry.line)) for entry in system_file.entries}
    broken = {error.subject for error in system_file.errors}
    system, errors = _build(SystemConfig, merged, str(path), _unknown(system_file), skip=broken)
    failed = combine([*system_file.errors, *errors])
    if failed is not None:
        raise failed
    return system


def default_run_env_text() -> str:
    """A run.env with every key at DRfC's default and a comment for each (what `init` would write)."""
    sections = {
        "DR_RUN_ID": "Run, track and car",
        "DR_EVAL_NUMBER_OF_TRIALS": "Evaluation",
        "DR_TRAIN_CHANGE_START_POSITION": "Training",
        "DR_LOCAL_S3_MODEL_PREFIX": "Storage: prefixes and keys in the working bucket (DR_LOCAL_S3_BUCKET)",
        "DR_OA_NUMBER_OF_OBSTACLES": "Object avoidance (DR_RACE_TYPE=OBJECT_AVOIDANCE)",
        "DR_H2B_IS_LANE_CHANGE": "Head to bot (DR_RACE_TYPE=HEAD_TO_BOT)",
    }
    lines = [
        "# run.env: one DeepRacer run, with DeepRacer-for-Cloud's names and defaults.",
        "# KEY=value per line; $KEY or ${KEY} uses a key set above or in system.env; '#' starts a comment.",
        "# Keys left out take the default shown here. Lines starting with # are not read.",
    ]
    for setting in RunConfig.settings():
        if setting.key in sections:
            lines += ["", f"# --- {sections[setting.key]} ---"]
        if setting.help:
            lines.append(f"# {setting.help}")
        if setting.default is None:
            lines.append(f"#{setting.key}={setting.example or ''}")
        else:
            assert isinstance(setting.default, str), setting.key  # run defaults are DRfC template text
            lines.append(f"{setting.key}={setting.default}")
    return "\n".join(lines) + "\n"


# --- internals -------------------------------------------------------------------------------------------------

def _read(path: Path, base: Mapping[str, str], environ: Mapping[str, str], base_label: str,
          variable: str) -> EnvFile:
    try:
        return read_env_file(path, base, environ, base_label or None, strict=False)
    except FileNotFoundError:
        # The absolute path: a relative one (or ~) does not say where it was looked for.
        raise ConfigError(Path(path).expanduser().absolute(), None, "file",
                          f"an existing file (or {variable} naming another)", None) from None
    except UnicodeDecodeError:
        raise ConfigError(path, None, "file", "UTF-8 text", "undecodable bytes") from None
    except OSError as error:
        raise ConfigError(path, None, "file", "a readable file", error.strerror or str(error)) from None


def _unknown(env_file: EnvFile) -> dict[str, str]:
    known = set(SYSTEM_KEYS) | set(RUN_KEYS)
    return {key: value for key, value in env_file.values.items() if key not in known}


def _unknown_key_warnings(env_file: EnvFile) -> list[ConfigWarning]:
    known = (*SYSTEM_KEYS, *RUN_KEYS)
    warnings = []
    for key, line in env_file.lines.items():
        if key in known:
            continue
        if key in _DERIVED:
            message = "is worked out by DRfC's activate.sh, not read from a file; ignored"
        elif key in _RENAMED:
            message = f"is an old DRfC name, ignored: use {_RENAMED[key]}"
        else:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
            message = "is not a setting this tool reads; ignored" + (f" (did you mean {close[0]}?)" if close else "")
        warnings.append(ConfigWarning(env_file.path, line, key, message))
    return warnings


def _build(cls: type, merged: Mapping[str, tuple[str, Origin]], default_path: str,
           extra: Mapping[str, str], skip: frozenset[str] | set[str] = frozenset()) -> tuple[Any, list[ConfigError]]:
    """Resolve every setting of `cls` in order: the files' text or DRfC's default, parsed by its kind.

    Returns the config, or None with every mistake found. A default that refers to a setting in error, or
    a key in `skip` (already reported), is not reported again."""
    resolved: dict[str, str] = {}  # normalised text of the settings so far; defaults may refer to them
    typed: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    errors: list[ConfigError] = []
    failed = set(skip)
    for f in fields(cls):
        setting: Optional[Setting] = f.metadata.get("setting")
        if setting is None:
            continue
        kind = setting.kind
        if setting.key in merged:
            text, origin = merged[setting.key]
        else:
            origin = Origin(default_path, None)
            if setting.key in failed or _refers_to(setting.default, failed):
                failed.add(setting.key)
                continue
            default = setting.default(resolved) if callable(setting.default) else setting.default
            if default is None:
                if not kind.optional:
                    errors.append(ConfigError(default_path, None, setting.key, kind.expected, None))
                    failed.add(setting.key)
                typed[f.name] = None
                origins[setting.key] = origin
                continue
            text = re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", lambda match: resolved.get(match.group(1), ""), default)
        try:
            value = kind.parse(text)
        except (ValueError, KeyError):
            errors.append(ConfigError(origin.path, origin.line, setting.key, kind.expected, text))
            failed.add(setting.key)
            continue
        typed[f.name] = value
        origins[setting.key] = origin
        if value is not None:
            resolved[setting.key] = kind.render(value)
    if errors or any("setting" in f.metadata and f.name not in typed for f in fields(cls)):
        return None, errors
    raw = {**extra, **resolved}
    return cls(**typed, raw=MappingProxyType(raw), origins=MappingProxyType(origins)), errors


def _with_export_hint(error: ConfigError, merged: Mapping[str, tuple[str, Origin]], bucket: str) -> ConfigError:
    """A pretrained checkpoint other than best/last: say how to start from that checkpoint after all."""
    if error.subject != PRETRAINED_CHECKPOINT_KEY or error.got is None:
        return error
    source = merged.get("DR_LOCAL_S3_PRETRAINED_PREFIX", ("rl-sagemaker-pretrained", None))[0]
    number = error.got if error.got.isdigit() else "N"
    new = f"{source}-checkpoint-{number}"
    return ConfigError(error.path, error.line, error.subject,
                       f"best or last (the simulator reads anything else as last); to start from checkpoint "
                       f"{number}: `deepracer models export {source} --checkpoint {number} --to s3://{bucket}/{new}`, "
                       f"then DR_LOCAL_S3_PRETRAINED_PREFIX={new} and {PRETRAINED_CHECKPOINT_KEY}=last", error.got)


def _file_order(paths: list[Path]):
    """Sort key for errors: the files in reading order, then by line."""
    order = {str(path): index for index, path in enumerate(paths)}
    return lambda error: (order.get(error.path, len(order)), error.line or 0)


def _refers_to(default: Default, keys: set[str]) -> bool:
    """Whether DRfC's default text refers to one of `keys` (a computed default depends on DR_CLOUD only)."""
    if callable(default):
        return "DR_CLOUD" in keys
    return isinstance(default, str) and any(f"${key}" in default or f"${{{key}}}" in default for key in keys)


def _load_workers(run: RunConfig, system: SystemConfig, run_path: Path,
                  environ: Mapping[str, str]) -> tuple[dict[int, RunConfig], list[ConfigWarning]]:
    """worker-N.env files beside run.env: required for workers 2..N with multi-config, otherwise reported unused."""
    directory = run_path.parent
    wanted = range(2, system.workers + 1) if run.train_multi_config else range(0)
    warnings = []
    present = sorted((int(match.group(1)), path) for path in directory.glob("worker-*.env")
                     if (match := _WORKER_FILE.fullmatch(path.name)))
    for number, path in present:
        if number not in wanted:
            why = ("DR_TRAIN_MULTI_CONFIG is False" if not run.train_multi_config
                   else f"DR_WORKERS is {system.workers}" if number > 1 else "worker 1 runs run.env itself")
            warnings.append(ConfigWarning(str(path), None, "file", f"not read: {why}"))

    configs: dict[int, RunConfig] = {}
    base = {**system.raw, **run.raw}  # what DRfC's environment holds when it reads worker files
    run_unknown = {key: value for key, value in run.raw.items() if key not in RUN_KEYS}
    for number in wanted:
        path = directory / f"worker-{number}.env"
        if not path.is_file():
            raise ConfigError(path, None, "file", f"an existing file (DR_TRAIN_MULTI_CONFIG=True and "
                                                  f"DR_WORKERS={system.workers} read worker-2.env to "
                                                  f"worker-{system.workers}.env beside run.env)", None)
        worker_file = _read(path, base, environ, "the run's settings", RUN_ENV_VARIABLE)
        warnings.extend(worker_file.warnings)
        merged = {key: (text, run.origins.get(key, Origin(str(run_path), None))) for key, text in run.raw.items()}
        for entry in worker_file.entries:
            if entry.key in WORKER_KEYS:
                merged[entry.key] = (entry.value, Origin(worker_file.path, entry.line))
            elif entry.key in SYSTEM_KEYS or entry.key in RUN_KEYS:
                warnings.append(ConfigWarning(worker_file.path, entry.line, entry.key,
                                              "cannot differ per worker; ignored (set it in run.env)"))
        warnings.extend(_unknown_key_warnings(worker_file))
        config, errors = _build(RunConfig, merged, str(run_path), run_unknown,
                                skip={error.subject for error in worker_file.errors})
        failed = combine([*worker_file.errors, *errors])
        if failed is not None:
            raise failed
        if config.race_type == "HEAD_TO_MODEL":
            raise config.error("DR_RACE_TYPE", "one of TIME_TRIAL, OBJECT_AVOIDANCE, HEAD_TO_BOT "
                                               "(workers train; HEAD_TO_MODEL is for evaluation only)")
        configs[number] = config
    return configs, warnings
