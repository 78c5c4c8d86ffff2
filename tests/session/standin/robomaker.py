"""Stand-in for a simulation worker (`robomaker`): /opt/ml/code/run.sh execs this with its mode and launch file.

Follows the real worker's contract (FORMATS.md §4.1-4.3, §5.1-5.3): picks its configuration (MULTI_CONFIG in
multi mode), downloads `<SAGEMAKER_SHARED_S3_PREFIX>/<S3_YAML_NAME>` and checks the keys the simapp requires,
imports the reward function, waits for the trainer's ip.json and hyperparameters, PINGs the trainer's Redis at
ip.json's address (no answer -> simapp_exception, exit 1), loads the track named by
WORLD_NAME as the real agent does at that point (no route for it -> simapp_exception, exit 1), calls the reward
function every step (an exception or a bad value -> simapp_exception, exit 1), and for each checkpoint the
trainer publishes plays its share of episodes and
prints one SIM_TRACE_LOG line per step (19 fields, ROS 2 launch prefixes), rewrites its TrainingMetrics JSON
after every episode, uploads `<iteration>-iteration.csv` simtrace at the end of the iteration, and — worker 0
only — runs the evaluation episodes and keeps `model/deepracer_checkpoints.json` (best and last) up to date.
Gazebo is a point moving round a circle of the track's real length, with a random walk across the road.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import sys
import time
import types
from typing import Any, Optional

from simapp import (
    ROUTES,
    STEP_S,
    TRACKS,
    checkpoint_number,
    exit_on_sigterm,
    get_bytes,
    get_json,
    log,
    ping_redis,
    put,
    s3_client,
    sensor_line,
    simapp_exit,
    wait_for,
)

LAUNCH = "[download_params_and_roslaunch_agent_node-1] "
AGENT = LAUNCH + "[agent-9] "
MANDATORY = ("SAGEMAKER_SHARED_S3_BUCKET", "SAGEMAKER_SHARED_S3_PREFIX", "METRICS_S3_BUCKET",
             "METRICS_S3_OBJECT_KEY", "MODEL_METADATA_FILE_S3_KEY", "BODY_SHELL_TYPE", "CAR_COLOR")
COLUMNS = ("episode", "steps", "X", "Y", "yaw", "steer", "throttle", "action", "reward", "done",
           "all_wheels_on_track", "progress", "closest_waypoint", "track_len", "tstamp", "episode_status",
           "pause_duration", "obstacle_crash_counter", "wall_clock")
LABELS = {"off_track": "Off track", "lap_complete": "Lap complete", "crashed": "Crashed",
          "immobilized": "Immobilized", "reversed": "Reversed", "time_up": "Time Up", "in_progress": "In progress"}
STEPS_PER_SECOND = 15  # the camera's frame rate drives the simulator's step
MAX_STEPS = 400


def fail(message: str, prefix: str = AGENT, *, function: str = "rollout_worker", error_code: str = "400",
         event_type: str = "user_error") -> None:
    simapp_exit(message, function=function, error_code=error_code, event_type=event_type, prefix=prefix)


def configuration(argv: list[str]) -> tuple[int, str, str]:
    """(rollout index, params file name, world name) as run.sh and the launch file hand them over."""
    mode = argv[1] if len(argv) > 1 else "run"
    index = int(os.environ.get("ROLLOUT_IDX") or 0)
    yaml_name, world = os.environ.get("S3_YAML_NAME", ""), os.environ.get("WORLD_NAME", "")
    if mode == "multi":
        if os.environ.get("MULTI_CONFIG"):
            log(os.environ["MULTI_CONFIG"])
            entry = json.loads(os.environ["MULTI_CONFIG"])["multi_config"][index]
            yaml_name, world = entry["config_file"], entry["world_name"]
        log(f"Starting as worker {index}, using world {world} and configuration {yaml_name}.")
    return index, yaml_name, world


def read_params(s3: Any, yaml_name: str) -> dict:
    """download_params_and_roslaunch_agent.py: the YAML, its post-processing and the mandatory keys."""
    import yaml

    bucket, prefix = os.environ.get("SAGEMAKER_SHARED_S3_BUCKET"), os.environ.get("SAGEMAKER_SHARED_S3_PREFIX")
    if not bucket or not prefix or not yaml_name:
        fail("SAGEMAKER_SHARED_S3_BUCKET, SAGEMAKER_SHARED_S3_PREFIX and S3_YAML_NAME must be set", LAUNCH,
             function="download_params_and_roslaunch_agent", error_code="500", event_type="system_error")
    key = os.path.normpath(f"{prefix}/{yaml_name}")
    data = get_bytes(s3, bucket, key)
    if data is None:
        fail(f"[s3] Unable to download yaml file from s3 key {key}: Not Found", LAUNCH,
             function="download_params_and_roslaunch_agent")
    log(f"[s3] Successfully downloaded yaml file from s3 key {key} to local ./custom_files/{yaml_name}.", LAUNCH)
    params = yaml.safe_load(data) or {}
    log(f"World name passed in YAML: {params.get('WORLD_NAME')}", LAUNCH)
    if "TRACK_DIRECTION_CLOCKWISE" in params:
        clockwise = str(params["TRACK_DIRECTION_CLOCKWISE"]).lower() == "true"
        log(f"Track direction passed in YAML: {clockwise}", LAUNCH)
        params["WORLD_NAME"] = f"{params['WORLD_NAME']}_{'cw' if clockwise else 'ccw'}"
        log(f"Updating world name based on track direction YAML parameter: {params['WORLD_NAME']}", LAUNCH)
    params.setdefault("BODY_SHELL_TYPE", "deepracer")
    params.setdefault("CAR_COLOR", "Black")
    missing = [name for name in MANDATORY if name not in params]
    if missing:
        fail(f"Parameters {missing} are required in {yaml_name}", LAUNCH,
             function="download_params_and_roslaunch_agent")
    for name in MANDATORY:
        if not isinstance(params[name], list):
            params[name] = [params[name]]
    log(str(params), LAUNCH)
    return params


def load_reward_function(s3: Any, bucket: str, key: str) -> Any:
    data = get_bytes(s3, bucket, key)
    if data is None:
        fail(f"[s3] Unable to download reward function from s3 key {key}: Not Found")
    log(f"[s3] Successfully downloaded reward function from s3 key {key} to local                  "
        "./custom_files/agent/customer_reward_function.py.", AGENT)
    module = types.ModuleType("customer_reward_function")
    try:
        exec(compile(data, "customer_reward_function.py", "exec"), module.__dict__)
        function = module.reward_function
    except Exception as error:  # noqa: BLE001 - whatever the user's file does wrong ends the job
        fail(f"Failed to import user's reward_function: {type(error).__name__}: {error}",
             function="reward_function")
    log("Succeed to import user's reward function", AGENT)
    return function


class Track:
    """A circle as long and as wide as the real track, with its waypoint count."""

    def __init__(self, world: str) -> None:
        self.waypoint_count, self.length, self.width = TRACKS[world]
        self.radius = self.length / (2 * math.pi)
        self.waypoints = [self.point(i / self.waypoint_count) for i in range(self.waypoint_count)]

    def point(self, fraction: float, offset: float = 0.0) -> tuple[float, float]:
        angle = 2 * math.pi * fraction
        return ((self.radius + offset) * math.cos(angle), (self.radius + offset) * math.sin(angle))


class Rollout:
    def __init__(self, index: int, params: dict, s3: Any, metadata: dict, hyperparameters: dict,
                 reward_function: Any) -> None:
        self.index, self.params, self.s3 = index, params, s3
        self.bucket = params["SAGEMAKER_SHARED_S3_BUCKET"][0]
        self.prefix = str(params["SAGEMAKER_SHARED_S3_PREFIX"][0]).strip("/")
        self.track = Track(params["WORLD_NAME"])
        self.reward_function = reward_function
        self.actions = metadata.get("action_space") or [{"steering_angle": 0, "speed": 1.0}]
        self.continuous = metadata.get("action_space_type") == "continuous"
        workers = max(1, int(params.get("NUM_WORKERS", 1)))
        self.per_iteration = math.ceil(int(hyperparameters.get("num_episodes_between_training", 20)) / workers)
        self.eval_trials = int(params.get("MIN_EVAL_TRIALS", 5)) if index == 0 else 0
        self.best_metric = str(params.get("BEST_MODEL_METRIC", "progress"))
        metrics = str(params["METRICS_S3_OBJECT_KEY"][0])
        if index > 0:
            stem, extension = os.path.splitext(metrics)
            metrics = f"{stem}_{index}{extension}"
        self.metrics_bucket, self.metrics_key = params["METRICS_S3_BUCKET"][0], metrics
        self.simtrace_bucket = params.get("SIMTRACE_S3_BUCKET")
        self.simtrace_prefix = str(params.get("SIMTRACE_S3_PREFIX", "simtrace/")).strip("/")
        if workers > 1:
            self.simtrace_prefix += f"/{index}"
        self.metrics: list[dict] = []
        self.episode = 0  # SIM_TRACE_LOG's episode: cumulative for this worker, from 0
        self.steps = 0
        self.sim_time = 30.0 + index
        self.start_fraction = float(params.get("START_POSITION_OFFSET", 0.0))
        self.advance = float(params.get("ROUND_ROBIN_ADVANCE_DIST", 0.05))
        self.evaluated: Optional[tuple[str, list[dict]]] = None
        self.best: Optional[tuple[str, Optional[float]]] = None

    def key(self, rest: str) -> str:
        return f"{self.prefix}/{rest}"

    # --- checkpoints ---------------------------------------------------------------------------------------------

    def next_checkpoint(self, number: int) -> str:
        def published() -> Optional[str]:
            data = get_bytes(self.s3, self.bucket, self.key("model/.coach_checkpoint"))
            name = data.decode().strip() if data else ""
            return name if name and checkpoint_number(name) >= number else None

        name = wait_for(published, f"checkpoint {number}")
        stem = name.removesuffix(".ckpt")
        for suffix in (".ckpt.data-00000-of-00001", ".ckpt.index", ".ckpt.meta"):
            key = self.key(f"model/{stem}{suffix}")
            if get_bytes(self.s3, self.bucket, key) is None:
                fail(f"[s3] Unable to download {stem}{suffix} from s3 key {key}: Not Found", error_code="500",
                     event_type="system_error")
            log(f"[s3] Successfully downloaded {stem}{suffix} from                  s3 key {key} to local "
                f"checkpoint_robomaker/agent/{stem}{suffix}.", AGENT)
        log(f"[s3] Successfully downloaded .ready from                  s3 key {self.key('model/.ready')} to local "
            "checkpoint_robomaker/agent/.ready.", AGENT)
        log(f"Checkpoint> Restoring from path=./checkpoint_robomaker/agent/{name}", AGENT)
        return name

    def select_best(self, restored: str) -> None:
        """[BestModelSelection]: the previous checkpoint's evaluation decides; worker 0 writes the JSON."""
        name, results = self.evaluated or (restored, [])
        values = [self.metric(result) for result in results]
        mean = sum(values) / len(values) if values else None
        best_name, best_value = self.best or ("None", None)
        progress = [result["progress"] for result in results]
        log(f"[BestModelSelection] Number of evaluations: {len(results)} Evaluation episode progress: {progress}",
            AGENT)
        log(f"[BestModelSelection] Evaluation episode {self.best_metric} mean: {mean}", AGENT)
        better = (best_value is None or mean is not None and
                  (mean <= best_value if self.best_metric == "laptime" else mean >= best_value))
        comparison = "<=" if self.best_metric == "laptime" else ">="
        log(f"[BestModelSelection] current {self.best_metric} mean: {mean} {comparison} best {self.best_metric} "
            f"mean: {best_value}", AGENT)
        if better:
            log(f'[BestModelSelection] Updating the best checkpoint to "{name}" from "{best_name}".', AGENT)
            self.best = (name, mean)
        now = time.time()
        document = {"best_checkpoint": {"name": self.best[0], "time_stamp": now, "avg_eval_metric": self.best[1]},
                    "last_checkpoint": {"name": name, "time_stamp": now, "avg_eval_metric": mean}}
        put(self.s3, self.bucket, self.key("model/deepracer_checkpoints.json"), document)
        log(f"[s3] Successfully uploaded deepracer checkpoint to                  s3 bucket {self.bucket} with s3 key "
            f"{self.key('model/deepracer_checkpoints.json')}.", AGENT)

    def metric(self, result: dict) -> float:
        if self.best_metric == "reward":
            return result["reward"]
        if self.best_metric == "laptime":
            return result["elapsed"] if result["status"] == "lap_complete" else math.inf
        return result["progress"]

    # --- episodes ------------------------------------------------------------------------------------------------

    def action(self) -> tuple[float, float, str]:
        if self.continuous:
            space = self.actions if isinstance(self.actions, dict) else {}
            steer = random.uniform(space.get("steering_angle", {}).get("low", -30),
                                   space.get("steering_angle", {}).get("high", 30))
            speed = random.uniform(space.get("speed", {}).get("low", 0.5), space.get("speed", {}).get("high", 1.0))
            return steer, speed, f"[{steer} {speed}]"
        index = random.randrange(len(self.actions))
        chosen = self.actions[index]
        return float(chosen.get("steering_angle", 0)), float(chosen.get("speed", 1.0)), str(index)

    def reward(self, params: dict) -> float:
        try:
            value = float(self.reward_function(params))
        except Exception as error:  # noqa: BLE001 - the user's code; the simapp turns any error into a failed job
            fail(f"Reward function exception: {type(error).__name__}: {error}", function="reward_function")
        if math.isnan(value) or math.isinf(value) or abs(value) > 1e5:
            fail(f"Reward function returned {value}; expected a finite number within [-1e5, 1e5]",
                 function="reward_function")
        return value

    def play(self, phase: str, iteration: int, trial: int, csv_rows: Optional[list]) -> dict:
        """One episode from this worker's moving start line until the car leaves the road or finishes the lap."""
        track, dt = self.track, 1.0 / STEPS_PER_SECOND
        start = (self.start_fraction + self.advance * self.episode) % 1.0
        started, travelled, offset, total, status = self.sim_time, 0.0, 0.0, 0.0, "in_progress"
        for step in range(1, MAX_STEPS + 1):
            time.sleep(STEP_S)
            self.sim_time += dt
            steer, speed, action = self.action()
            if step > 1:
                travelled += speed * dt
                offset += random.gauss(0.0, track.width * 0.13) - steer / 3000.0
            fraction = (start + travelled / track.length) % 1.0
            x, y = track.point(fraction, offset)
            progress = min(100.0, 100.0 * travelled / track.length)
            half = track.width / 2
            on_track = abs(offset) <= half - 0.08
            if abs(offset) > half + 0.08:
                status = "off_track"
            elif progress >= 100.0:
                status = "lap_complete"
            elif step == MAX_STEPS:
                status = "immobilized"
            done = status != "in_progress"
            closest = int(fraction * track.waypoint_count) % track.waypoint_count
            reward = 0.0
            if step == 1:
                shown = "prepare"  # the reward function is not called on an episode's first step
            else:
                shown = status
                reward = self.reward({
                    "all_wheels_on_track": on_track, "x": x, "y": y,
                    "heading": math.degrees(2 * math.pi * fraction + math.pi / 2) % 360 - 180,
                    "distance_from_center": abs(offset), "projection_distance": fraction * track.length,
                    "progress": progress, "steps": float(step), "speed": speed, "steering_angle": steer,
                    "track_width": track.width, "track_length": track.length, "waypoints": list(track.waypoints),
                    "closest_waypoints": [closest, (closest + 1) % track.waypoint_count],
                    "is_left_of_center": offset < 0, "is_reversed": False, "is_offtrack": status == "off_track",
                    "is_crashed": False, "closest_objects": [0, 0], "objects_location": [],
                    "objects_left_of_center": [], "objects_speed": [], "objects_heading": [],
                    "objects_distance": [], "objects_distance_from_center": [], "object_in_camera": False,
                    "sim_time": self.sim_time})
            total += reward
            yaw = math.degrees(2 * math.pi * fraction + math.pi / 2)
            yaw = (yaw + 180) % 360 - 180
            wall = time.time()
            values = (self.episode, step, x, y, yaw, steer, speed, action, reward, done, on_track, progress,
                      closest, track.length, round(self.sim_time, 3), shown, 0.0, 0, wall)
            log("SIM_TRACE_LOG:" + ",".join((
                f"{self.episode}", f"{step}", f"{x:.4f}", f"{y:.4f}", f"{yaw:.4f}", f"{steer:.2f}", f"{speed:.2f}",
                action, f"{reward:.4f}", str(done), str(on_track), f"{progress:.4f}", f"{closest}",
                f"{track.length:.2f}", f"{self.sim_time:.3f}", shown, "0.00", "0", f"{wall:.4f}")), AGENT)
            if csv_rows is not None:
                csv_rows.append(dict(zip(COLUMNS, (*values[:1], float(step), *values[2:]))))
            if done:
                break
        if phase == "training":
            self.steps += step
            self.episode += 1
        elapsed = int((self.sim_time - started) * 1000)
        self.metrics.append({
            "reward_score": int(round(total)), "metric_time": int(self.sim_time * 1000),
            "start_time": int(started * 1000), "elapsed_time_in_milliseconds": elapsed,
            "episode": max(self.episode, 1), "trial": trial, "phase": phase,
            "completion_percentage": int(progress), "episode_status": LABELS.get(status, "In progress")})
        put(self.s3, self.metrics_bucket, self.metrics_key,
            {"metrics": self.metrics, "version": 2.0, "best_model_metric": self.best_metric})
        log(f"[s3] Successfully uploaded metrics to                  s3 bucket {self.metrics_bucket} with s3 key "
            f"{self.metrics_key}.", AGENT)
        label = "Training" if phase == "training" else "Testing"
        log(f"{label}> Name=main_level/agent, Worker={self.index}, Episode={max(self.episode, 1)}, "
            f"Total reward={round(total, 2)}, Steps={self.steps}, Training iteration={iteration}", AGENT)
        return {"progress": progress, "reward": total, "elapsed": elapsed, "status": status}

    def run(self) -> None:
        number = 0
        while True:
            name = self.next_checkpoint(number)
            number = checkpoint_number(name)
            if self.index == 0:
                self.select_best(name)
            rows: list[dict] = []
            for trial in range(1, self.per_iteration + 1):
                self.play("training", number, trial, rows)
            results = [self.play("evaluation", number, self.per_iteration, None) for _ in range(self.eval_trials)]
            self.evaluated = (name, results)
            if self.simtrace_bucket:
                out = io.StringIO()
                writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)
                key = f"{self.simtrace_prefix}/training-simtrace/{number}-iteration.csv"
                put(self.s3, self.simtrace_bucket, key, out.getvalue())
                log(f"[s3] Successfully uploaded simtrace_training to              s3 bucket {self.simtrace_bucket} "
                    f"with s3 key {key}.", AGENT)
            number += 1


def main(argv: list[str]) -> int:
    exit_on_sigterm()
    index, yaml_name, world = configuration(argv)
    log("[INFO] [launch]: All log files can be found below /root/.ros/log/")
    log("[INFO] [download_params_and_roslaunch_agent_node-1]: process started with pid [102]")
    params = read_params(s3_client(region=os.environ.get("APP_REGION")), yaml_name)
    # The agent reads S3 with the YAML's settings from here on, as the simapp's agent node does.
    s3 = s3_client(params.get("S3_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT_URL"), params.get("AWS_REGION"))
    bucket, prefix = params["SAGEMAKER_SHARED_S3_BUCKET"][0], str(params["SAGEMAKER_SHARED_S3_PREFIX"][0]).strip("/")
    log(f"S3 bucket: {bucket}", AGENT)
    log(f"S3 prefix: {prefix}", AGENT)
    log(f"S3 endpoint URL: {params.get('S3_ENDPOINT_URL')}", AGENT)
    reward_function = load_reward_function(s3, bucket, str(params.get("REWARD_FILE_S3_KEY")))
    metadata_key = str(params["MODEL_METADATA_FILE_S3_KEY"][0])
    metadata = get_json(s3, bucket, metadata_key)
    if metadata is None:
        fail(f"[s3] Unable to download model metadata from s3 key {metadata_key}: Not Found")
    log(f"[s3] Successfully downloaded model metadata                  from s3 key {metadata_key} to local "
        "./custom_files/agent/model_metadata.json.", AGENT)
    log(sensor_line(metadata), AGENT)
    log(f"Action space from file: {metadata.get('action_space')}", AGENT)
    wait_for(lambda: get_bytes(s3, bucket, f"{prefix}/ip/done") is not None, "the trainer's ip/done")
    log(f"[s3] Successfully downloaded ip config from                  s3 key {prefix}/ip/ip.json to local "
        "./custom_files/ip.json.", AGENT)
    redis = str((get_json(s3, bucket, f"{prefix}/ip/ip.json") or {}).get("IP"))
    if not ping_redis(redis):
        fail(f"Failed to connect to the trainer's Redis at {redis}:6379", function="rollout_worker",
             error_code="500", event_type="system_error")
    log(f"Connected to the trainer's Redis at {redis}:6379", AGENT)
    hyperparameters = get_json(s3, bucket, f"{prefix}/ip/hyperparameters.json") or {}
    log(f"[s3] Successfully downloaded hyperparameters from                      s3 key {prefix}/ip/"
        "hyperparameters.json to local ./custom_files/agent/hyperparameters.json.", AGENT)
    log("Using the following hyper-parameters", AGENT)
    log(json.dumps(hyperparameters, indent=2, sort_keys=True), AGENT)
    # The agent loads the track's route when it builds its environment, after the trainer's hand-off.
    world = params["WORLD_NAME"]
    if world not in TRACKS:
        fail(f"Failed to load the track {world}: {ROUTES}/{world}.npy does not exist", function="track_data")
    Rollout(index, params, s3, metadata, hyperparameters, reward_function).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
