"""Checks of `model_metadata.json` and `hyperparameters.json` against what the simulator and trainer accept
(FORMATS.md §2 and §3).

An error means the simulator or trainer would stop, or would silently use something other than what the file
says (a misspelt key, a value it clips or replaces). A warning means it runs but is outside what the
DeepRacer console/DRoA allow, or is probably not what was meant.
"""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from session.core.problems import Problem

MODEL_METADATA = "model_metadata.json"
HYPERPARAMETERS = "hyperparameters.json"

# The simulator clamps every action to these before driving (simapp 6.0.4 bundle/markov/agent_ctrl/constants.py
# MIN_ANGLE/MAX_ANGLE, MIN_SPEED/MAX_SPEED; applied in rollout_agent_ctrl.py `send_action` and `_update_speed`).
STEERING_RANGE = (-30.0, 30.0)   # degrees
SPEED_RANGE = (0.1, 4.0)         # m/s
_UNITS = {"steering_angle": "°", "speed": " m/s"}
ACTION_SPACE_TYPES = ("discrete", "continuous")
TRAINING_ALGORITHMS = ("clipped_ppo", "sac")
CAMERAS = ("FRONT_FACING_CAMERA", "STEREO_CAMERAS", "LEFT_CAMERA", "observation")
LIDARS = ("LIDAR", "SECTOR_LIDAR", "DISCRETIZED_SECTOR_LIDAR")
SENSORS = CAMERAS + LIDARS + ("IMU",)
NEURAL_NETWORKS = ("DEEP_CONVOLUTIONAL_NETWORK_SHALLOW", "DEEP_CONVOLUTIONAL_NETWORK",
                   "DEEP_CONVOLUTIONAL_NETWORK_DEEP")
METADATA_KEYS = ("action_space", "action_space_type", "training_algorithm", "sensor", "neural_network", "version",
                 "lidar_config")
CURRENT_VERSION = "5"
_LIDAR_SAMPLES = 64
_ALIASES = {"ppo": "clipped_ppo", "clippedppo": "clipped_ppo", "mse": "mean squared error",
            "learning_rate": "lr", "gamma": "discount_factor", "epochs": "num_epochs", "entropy": "beta_entropy",
            "episodes": "num_episodes_between_training", "alpha": "sac_alpha", "sensors": "sensor"}
# Keys the training tooling itself adds to the SageMaker job's hyperparameters; harmless in the file.
_JOB_KEYS = ("s3_bucket", "s3_prefix", "aws_region", "model_metadata_s3_key", "pretrained_s3_bucket",
             "pretrained_s3_prefix", "pretrained_checkpoint")


# --- reading JSON ---------------------------------------------------------------------------------------------


def load_json(path: Path) -> Tuple[Any, List[Problem]]:
    """The parsed file, or None with the problem (line and column for a syntax error). Duplicate keys, which
    JSON allows and Python resolves silently (the last wins), are warnings."""
    path = Path(path)
    name = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, [Problem(name, "", f"not found at {path}")]
    except OSError as ex:
        return None, [Problem(name, "", f"cannot be read: {ex.strerror or ex}")]
    if raw.startswith(b"\xef\xbb\xbf"):
        return None, [Problem(name, "", "starts with a byte-order mark, which the simulator's JSON reader "
                                        "rejects; save it as UTF-8 without BOM")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as ex:
        line = raw[: ex.start].count(b"\n") + 1
        return None, [Problem(name, f"line {line}", "is not UTF-8 text")]
    if not text.strip():
        return None, [Problem(name, "", "is empty; it must hold a JSON object")]
    duplicates: List[str] = []

    def pairs(items: List[Tuple[str, Any]]) -> Dict[str, Any]:
        seen: Dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as ex:
        return None, [Problem(name, f"line {ex.lineno} column {ex.colno}",
                              f"invalid JSON: {ex.msg}{_json_hint(ex.msg)}")]
    return data, [Problem(name, key, "appears more than once in the same object; the last value wins", "warning")
                  for key in dict.fromkeys(duplicates)]


def _json_hint(message: str) -> str:
    if message.startswith("Expecting property name"):
        return " (a trailing comma, a comment or single quotes?)"
    if message.startswith("Expecting value"):
        return " (a trailing comma, a missing value or single quotes?)"
    if message.startswith("Extra data"):
        return " (something after the closing brace?)"
    if message.startswith("Expecting ',' delimiter"):
        return " (a missing comma between two entries?)"
    return ""


# --- small value checks ---------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)


def _number_between(file: str, where: str, value: Any, low: float, high: float) -> Optional[Problem]:
    expected = f"expected a number between {float(low)} and {float(high)}"
    if not _is_number(value) or not math.isfinite(value):
        kind = " (a string)" if isinstance(value, str) else ""
        return Problem(file, where, f"{expected}, got {_show(value)}{kind}")
    if not low <= value <= high:
        return Problem(file, where, f"{expected}, got {_show(value)}")
    return None


def _suggest(value: str, choices: Sequence[str]) -> str:
    lowered = {choice.lower(): choice for choice in choices}
    alias = _ALIASES.get(value.lower().replace("-", "_").replace(" ", "_"))
    if alias in choices:
        return f"; did you mean {alias!r}?"
    words = set(value.lower().replace("-", "_").split("_")) - {""}
    containing = [choice for choice in choices if words and words <= set(choice.lower().split("_"))]
    if len(containing) == 1:
        return f"; did you mean {containing[0]!r}?"
    close = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


def _action_value(file: str, where: str, key: str, value: Any) -> Optional[Problem]:
    """An action's steering angle or speed: not a number stops the simulator (an error); a number outside the
    range it clamps to is a warning saying what the car really does."""
    low, high = STEERING_RANGE if key == "steering_angle" else SPEED_RANGE
    problem = _number_between(file, where, value, low, high)
    if problem is None or not _is_number(value) or not math.isfinite(value):
        return problem
    unit = _UNITS[key]
    clamped = min(max(value, low), high)
    return Problem(file, where, f"is {_show(value)}; the simulator clamps {key} to {low:g}{unit} .. {high:g}{unit}, "
                                f"so the car uses {clamped:g}{unit}", "warning")


def _choice(value: Any, choices: Sequence[str]) -> Optional[str]:
    """The value as the simulator reads it (`.lower().strip()`), or None when it is not one of `choices`."""
    if not isinstance(value, str):
        return None
    candidate = value.lower().strip()
    return candidate if candidate in choices else None


def _choice_problem(file: str, where: str, value: Any, choices: Sequence[str]) -> Problem:
    hint = _suggest(value, choices) if isinstance(value, str) else ""
    return Problem(file, where, f"expected one of {', '.join(choices)}, got {_show(value)}{hint}")


def _unknown_keys(file: str, data: Dict[str, Any], known: Sequence[str], prefix: str = "",
                  ignored: Sequence[str] = ()) -> List[Problem]:
    problems = []
    for key in data:
        if key in known:
            continue
        where = f"{prefix}{key}"
        if key in ignored:
            problems.append(Problem(file, where, "is set by the training tooling and ignored in this file", "warning"))
            continue
        hint = _suggest(key, [k for k in known if k not in data])
        if hint:
            problems.append(Problem(file, where, f"unknown key, so the setting is not used{hint}"))
        else:
            problems.append(Problem(file, where, f"unknown key, ignored (known keys: {', '.join(known)})",
                                    "warning"))
    return problems


# --- model_metadata.json --------------------------------------------------------------------------------------


def check_model_metadata(path: Path) -> List[Problem]:
    """Problems in a model_metadata.json file."""
    data, problems = load_json(path)
    if data is None:
        return problems
    return problems + validate_model_metadata(data, file=Path(path).name)


def training_algorithm_of(data: Any) -> str:
    """The training algorithm the simulator will use for this metadata (`clipped_ppo` when absent or invalid)."""
    if isinstance(data, dict):
        value = data.get("training_algorithm")
        if isinstance(value, str) and value.lower().strip() in TRAINING_ALGORITHMS:
            return value.lower().strip()
    return "clipped_ppo"


def validate_model_metadata(data: Any, file: str = MODEL_METADATA) -> List[Problem]:
    """Problems in parsed model_metadata.json content."""
    if not isinstance(data, dict):
        return [Problem(file, "", f"expected a JSON object {{...}}, got a {type(data).__name__}")]
    problems = _unknown_keys(file, data, METADATA_KEYS)

    space_type = "discrete"
    if "action_space_type" in data:
        space_type = _choice(data["action_space_type"], ACTION_SPACE_TYPES) or ""
        if not space_type:
            problems.append(_choice_problem(file, "action_space_type", data["action_space_type"], ACTION_SPACE_TYPES))
    algorithm = "clipped_ppo"
    if "training_algorithm" in data:
        algorithm = _choice(data["training_algorithm"], TRAINING_ALGORITHMS) or ""
        if not algorithm:
            problems.append(_choice_problem(file, "training_algorithm", data["training_algorithm"],
                                            TRAINING_ALGORITHMS))
    if algorithm == "sac" and space_type == "discrete":
        problems.append(Problem(file, "training_algorithm", "sac needs \"action_space_type\": \"continuous\" "
                                                            "(SAC cannot train a discrete action space)"))

    if "action_space" not in data:
        problems.append(Problem(file, "action_space", "missing; the simulator requires it"))
    elif space_type:
        problems += _check_action_space(file, data["action_space"], space_type)

    version, version_problems = _check_version(file, data)
    problems += version_problems
    problems += _check_sensors(file, data, version)
    if "neural_network" in data and data["neural_network"] not in NEURAL_NETWORKS:
        problems.append(_choice_problem(file, "neural_network", data["neural_network"], NEURAL_NETWORKS))
    if "lidar_config" in data:
        problems += _check_lidar_config(file, data["lidar_config"])
    return problems


def _check_action_space(file: str, space: Any, space_type: str) -> List[Problem]:
    if space_type == "discrete":
        if isinstance(space, dict):
            return [Problem(file, "action_space", "is an object of low/high ranges (a continuous action space) "
                                                  "but action_space_type is discrete; set \"action_space_type\": "
                                                  "\"continuous\" or list the actions")]
        if not isinstance(space, list):
            return [Problem(file, "action_space", f"expected a list of {{\"steering_angle\", \"speed\"}} "
                                                  f"actions, got {_show(space)}")]
        return _check_discrete(file, space)
    if isinstance(space, list):
        return [Problem(file, "action_space", "is a list of actions (a discrete action space) but "
                                              "action_space_type is continuous; give {\"steering_angle\": {\"low\", "
                                              "\"high\"}, \"speed\": {\"low\", \"high\"}}")]
    if not isinstance(space, dict):
        return [Problem(file, "action_space", f"expected {{\"steering_angle\": {{\"low\", \"high\"}}, \"speed\": "
                                              f"{{\"low\", \"high\"}}}}, got {_show(space)}")]
    return _check_continuous(file, space)


def _check_discrete(file: str, actions: List[Any]) -> List[Problem]:
    if not actions:
        return [Problem(file, "action_space", "is empty; list at least two actions")]
    problems: List[Problem] = []
    seen: Dict[Tuple[Any, Any], int] = {}
    for i, action in enumerate(actions):
        where = f"action_space[{i}]"
        if not isinstance(action, dict):
            problems.append(Problem(file, where, f"expected {{\"steering_angle\": ..., \"speed\": ...}}, "
                                                 f"got {_show(action)}"))
            continue
        valid = True
        for key in ("steering_angle", "speed"):
            if key not in action:
                problems.append(Problem(file, f"{where}.{key}", "missing"))
                valid = False
                continue
            problem = _action_value(file, f"{where}.{key}", key, action[key])
            if problem:
                problems.append(problem)
                valid = valid and not problem.is_error
        problems += _unknown_keys(file, action, ("steering_angle", "speed", "index"), prefix=f"{where}.")
        if "index" in action and action["index"] != i:
            problems.append(Problem(file, f"{where}.index", f"is {_show(action['index'])} at position {i}; the "
                                                            f"simulator uses the position", "warning"))
        if valid:
            pair = (float(action["steering_angle"]), float(action["speed"]))
            if pair in seen:
                problems.append(Problem(file, where, f"repeats action_space[{seen[pair]}] (steering "
                                                     f"{pair[0]:g}, speed {pair[1]:g})", "warning"))
            seen.setdefault(pair, i)
    if len(actions) == 1:
        problems.append(Problem(file, "action_space", "has a single action, so there is nothing to learn",
                                "warning"))
    elif len(actions) > 30:
        problems.append(Problem(file, "action_space", f"has {len(actions)} actions; the DeepRacer console allows "
                                                      f"at most 30", "warning"))
    return problems


def _check_continuous(file: str, space: Dict[str, Any]) -> List[Problem]:
    problems = _unknown_keys(file, space, ("steering_angle", "speed"), prefix="action_space.")
    for key in ("steering_angle", "speed"):
        where = f"action_space.{key}"
        bounds = space.get(key)
        if bounds is None:
            problems.append(Problem(file, where, "missing; expected {\"low\": ..., \"high\": ...}"))
            continue
        if not isinstance(bounds, dict):
            problems.append(Problem(file, where, f"expected {{\"low\": ..., \"high\": ...}}, got {_show(bounds)}"))
            continue
        problems += _unknown_keys(file, bounds, ("low", "high"), prefix=f"{where}.")
        ok = True
        for end in ("low", "high"):
            if end not in bounds:
                problems.append(Problem(file, f"{where}.{end}", "missing"))
                ok = False
                continue
            problem = _action_value(file, f"{where}.{end}", key, bounds[end])
            if problem:
                problems.append(problem)
                ok = ok and not problem.is_error
        if ok and bounds["low"] >= bounds["high"]:
            problems.append(Problem(file, where, f"low ({_show(bounds['low'])}) must be less than high "
                                                 f"({_show(bounds['high'])})"))
        elif ok and key == "steering_angle" and not bounds["low"] <= 0 <= bounds["high"]:
            problems.append(Problem(file, where, f"[{bounds['low']:g}, {bounds['high']:g}] excludes 0: the car "
                                                 f"can never drive straight", "warning"))
    return problems


def _check_version(file: str, data: Dict[str, Any]) -> Tuple[float, List[Problem]]:
    """The version the simulator will assume, and problems with the field."""
    if "version" not in data:
        assumed = 2.0 if "sensor" in data else 1.0
        return assumed, [Problem(file, "version", f"missing: the simulator then assumes version {assumed:g}, with "
                                                  f"older physics (speeds differ); set \"version\": "
                                                  f"\"{CURRENT_VERSION}\"", "warning")]
    value = data["version"]
    try:
        if isinstance(value, bool):
            raise ValueError
        version = float(value)
        if not math.isfinite(version):
            raise ValueError
    except (TypeError, ValueError):
        return 2.0, [Problem(file, "version", f"expected a version number such as \"{CURRENT_VERSION}\", "
                                              f"got {_show(value)}")]
    if version < 3:
        return version, [Problem(file, "version", f"{_show(value)} selects older physics (the car drives at other "
                                                  f"speeds for the same m/s); use \"{CURRENT_VERSION}\"", "warning")]
    return version, []


def _check_sensors(file: str, data: Dict[str, Any], version: float) -> List[Problem]:
    if version < 2:
        return []  # the simulator ignores `sensor` and uses the legacy camera
    if "sensor" not in data:
        return [Problem(file, "sensor", "missing; from version 2 the simulator requires it, e.g. "
                                        "[\"FRONT_FACING_CAMERA\"]")]
    sensors = data["sensor"]
    if not isinstance(sensors, list) or not all(isinstance(s, str) for s in sensors):
        return [Problem(file, "sensor", f"expected a list of sensor names such as [\"FRONT_FACING_CAMERA\"], "
                                        f"got {_show(sensors)}")]
    problems = [Problem(file, f"sensor[{i}]", f"unknown sensor {s!r}{_suggest(s, SENSORS)} (known: "
                                              f"{', '.join(SENSORS)})")
                for i, s in enumerate(sensors) if s not in SENSORS]
    cameras = [s for s in sensors if s in CAMERAS]
    if len(cameras) != 1:
        got = ", ".join(cameras) if cameras else "none"
        problems.append(Problem(file, "sensor", f"needs exactly one camera ({', '.join(CAMERAS)}), got {got}"))
    lidars = [s for s in sensors if s in LIDARS]
    if len(lidars) > 1:
        problems.append(Problem(file, "sensor", f"allows at most one lidar, got {', '.join(lidars)}"))
    if sensors.count("IMU") > 1:
        problems.append(Problem(file, "sensor", "allows at most one IMU"))
    return problems


def _check_lidar_config(file: str, config: Any) -> List[Problem]:
    if not isinstance(config, dict):
        return [Problem(file, "lidar_config", f"expected an object, got {_show(config)}")]
    problems = _unknown_keys(file, config, ("num_sectors", "num_values_per_sector", "clipping_dist"),
                             prefix="lidar_config.")
    sectors = config.get("num_sectors")
    if sectors is not None and (not _whole(sectors) or sectors <= 0 or _LIDAR_SAMPLES % int(sectors)):
        problems.append(Problem(file, "lidar_config.num_sectors", f"expected a whole number that divides "
                                                                  f"{_LIDAR_SAMPLES}, got {_show(sectors)}"))
    values = config.get("num_values_per_sector")
    if values is not None and (not _whole(values) or values < 1):
        problems.append(Problem(file, "lidar_config.num_values_per_sector",
                                f"expected a whole number of at least 1, got {_show(values)}"))
    if "clipping_dist" in config:
        problem = _number_between(file, "lidar_config.clipping_dist", config["clipping_dist"], 0.15, 12.0)
        if problem:
            problems.append(problem)
    return problems


def _whole(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value) and float(value).is_integer()


# --- hyperparameters.json -------------------------------------------------------------------------------------

_PPO_ONLY = ("num_epochs", "beta_entropy")  # the trainer reads these for clipped_ppo only
_SAC_ONLY = ("sac_alpha",)
LOSS_TYPES = ("huber", "mean squared error", "mean_squared_error")
EXPLORATION_TYPES = ("categorical", "e-greedy")


def _int_spec(minimum: int, console: Optional[Tuple[int, int]] = None, allowed: Sequence[int] = ()):
    return ("int", minimum, None, console, tuple(allowed))


def _float_spec(minimum: Optional[float], maximum: Optional[float], console: Optional[Tuple[float, float]] = None,
                above_minimum: bool = False):
    return ("float", minimum, maximum, console, above_minimum)


# key -> (kind, hard minimum, hard maximum, console range, extra)
HYPERPARAMETER_SPECS: Dict[str, tuple] = {
    "batch_size": _int_spec(1, allowed=(32, 64, 128, 256, 512)),
    "num_epochs": _int_spec(1, console=(3, 10)),
    "lr": _float_spec(0.0, 1.0, console=(1e-8, 1e-3), above_minimum=True),
    "beta_entropy": _float_spec(0.0, 1.0),
    "discount_factor": _float_spec(0.0, 1.0),
    "loss_type": ("choice", LOSS_TYPES),
    "num_episodes_between_training": _int_spec(1, console=(5, 100)),
    "exploration_type": ("choice", EXPLORATION_TYPES),
    "e_greedy_value": _float_spec(0.0, 1.0),
    "epsilon_steps": _int_spec(1),
    "stack_size": _int_spec(1),
    "term_cond_max_episodes": _int_spec(1),
    "term_cond_avg_score": _float_spec(None, None),
    "sac_alpha": _float_spec(0.0, 1.0),
}


def check_hyperparameters(path: Path, *, training_algorithm: str = "clipped_ppo") -> List[Problem]:
    """Problems in a hyperparameters.json file for a model trained with `training_algorithm`. How the episodes
    are shared among the workers is `session.checks.sizing`'s."""
    data, problems = load_json(path)
    if data is None:
        return problems
    return problems + validate_hyperparameters(data, training_algorithm=training_algorithm, file=Path(path).name)


def validate_hyperparameters(data: Any, *, training_algorithm: str = "clipped_ppo",
                             file: str = HYPERPARAMETERS) -> List[Problem]:
    """Problems in parsed hyperparameters.json content."""
    if not isinstance(data, dict):
        return [Problem(file, "", f"expected a JSON object {{...}}, got a {type(data).__name__}")]
    algorithm = training_algorithm.lower().strip()
    problems = _unknown_keys(file, data, list(HYPERPARAMETER_SPECS), ignored=_JOB_KEYS)
    for key, value in data.items():
        spec = HYPERPARAMETER_SPECS.get(key)
        if spec is None:
            continue
        if algorithm == "sac" and key in _PPO_ONLY:
            problems.append(Problem(file, key, "is used by clipped_ppo only; ignored with sac", "warning"))
            continue
        if algorithm == "sac" and key == "exploration_type":
            if not isinstance(value, str):  # still lower-cased, though SAC explores its own way
                problems.append(Problem(file, key, f"expected a string, got {_show(value)}"))
            continue
        if algorithm != "sac" and key in _SAC_ONLY:
            problems.append(Problem(file, key, f"is used by sac only; ignored with {algorithm}", "warning"))
            continue
        problems += _check_hyperparameter(file, key, value, spec, algorithm)
    return problems


def _check_hyperparameter(file: str, key: str, value: Any, spec: tuple, algorithm: str) -> List[Problem]:
    if spec[0] == "choice":
        choices = spec[1]
        if not isinstance(value, str):
            return [Problem(file, key, f"expected one of {', '.join(choices)}, got {_show(value)}")]
        if value.lower() not in choices:
            return [_choice_problem(file, key, value, choices)]
        return []

    kind, minimum, maximum, console, extra = spec
    problems: List[Problem] = []
    if isinstance(value, str):
        try:
            number = int(value) if kind == "int" else float(value)
        except ValueError:
            return [Problem(file, key, f"expected {'a whole number' if kind == 'int' else 'a number'}, "
                                       f"got {_show(value)}")]
        problems.append(Problem(file, key, f"is a string ({_show(value)}); the trainer converts it, but write a "
                                           f"number", "warning"))
        value = number
    if not _is_number(value) or not math.isfinite(value):
        return [Problem(file, key, f"expected {'a whole number' if kind == 'int' else 'a number'}, "
                                   f"got {_show(value)}")]
    if kind == "int" and not float(value).is_integer():
        return [Problem(file, key, f"expected a whole number, got {_show(value)} (the trainer would cut it to "
                                   f"{int(value)})")]

    above_minimum = kind == "float" and extra is True
    if minimum is not None and (value < minimum or (above_minimum and value == minimum)):
        relation = "greater than" if above_minimum else "at least"
        return problems + [Problem(file, key, f"expected a number {relation} {minimum:g}, got {_show(value)}")]
    if maximum is not None and value > maximum:
        return problems + [Problem(file, key, f"expected a number between {minimum:g} and {maximum:g}, "
                                              f"got {_show(value)}")]

    if key == "num_episodes_between_training" and algorithm == "sac":
        if value != 1:
            problems.append(Problem(file, key, f"is {_show(value)}; with sac it counts environment steps between "
                                               f"target-network updates and the DeepRacer console requires 1",
                                    "warning"))
        return problems
    if kind == "int" and extra and value not in extra:
        problems.append(Problem(file, key, f"is {_show(value)}; the DeepRacer console allows only "
                                           f"{', '.join(str(v) for v in extra)}", "warning"))
    if console is not None and not console[0] <= value <= console[1]:
        problems.append(Problem(file, key, f"is {_show(value)}, outside the DeepRacer console's range "
                                           f"{console[0]:g} to {console[1]:g}", "warning"))
    if key == "stack_size" and value != 1:
        problems.append(Problem(file, key, "is read but not used by the trainer", "warning"))
    return problems


# --- both files -----------------------------------------------------------------------------------------------


def check_custom_files(directory: Path) -> List[Problem]:
    """model_metadata.json and hyperparameters.json in `directory`, the latter judged for the training
    algorithm the former selects."""
    directory = Path(directory)
    metadata, problems = load_json(directory / MODEL_METADATA)
    if metadata is not None:
        problems += validate_model_metadata(metadata, file=MODEL_METADATA)
    problems += check_hyperparameters(directory / HYPERPARAMETERS, training_algorithm=training_algorithm_of(metadata))
    return problems


__all__ = [
    "HYPERPARAMETER_SPECS", "MODEL_METADATA", "HYPERPARAMETERS", "check_custom_files", "check_hyperparameters",
    "check_model_metadata", "load_json", "training_algorithm_of", "validate_hyperparameters", "validate_model_metadata",
]
