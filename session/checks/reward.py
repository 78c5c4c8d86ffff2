"""Checks of a reward function before GPU time is spent on it.

Two stages. Static (nothing of the user's runs): the file reads and compiles, defines a top-level
`reward_function(params)`, imports only modules the simulator image has, reads only keys that `params` has.
Then a dry run in a separate Python process with a time limit: the module is imported once, as the simulator
does, and `reward_function` is called hundreds of times with params built from a real track exactly as the
simulator builds them (types included: `steps` a float, `waypoints` a list of tuples, ...), along and off the
centre line, in both directions, to the finish, off track and (with objects) crashed. The simulator converts
each result with `float()` and stops training on an exception, NaN, ±inf or a value outside [-1e5, 1e5]
(FORMATS.md §1.1); so do we.

An error means "this breaks training". What only the retired DeepRacer console or DeepRacer on AWS refuses (its
validator's module allow-list, forbidden calls and words) is a warning naming that rule: the simulator imports the
file with no such rule (simapp 6.0.4 bundle/markov/boto/s3/files/reward_function.py, `get_reward_function`:
a plain `__import__`), so the dry run still runs after such a warning.
"""

from __future__ import annotations

import ast
import bisect
import difflib
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from session.checks.tracks import Nearest, Point, Track, TrackView, inside_ring
from session.core.problems import Problem

# The console/DRoA validator's allow-list (simapp 6.0.4 docker/files/ml-code/reward_func_validator/constants.py,
# ALLOWLIST_IMPORTS); the training simulator does not apply it.
ALLOWED_MODULES = ("math", "random", "numpy", "scipy", "shapely")
# Third-party import names the simulator's Python has: simapp 6.0.4 bundle/configs/environment.yml (the
# sagemaker_env conda environment, Python 3.12) and what those packages bring. The standard library comes on top.
IMAGE_MODULES = ALLOWED_MODULES + (
    "cv2", "annoy", "PIL", "matplotlib", "pandas", "OpenGL", "skimage", "boto3", "botocore", "minio", "cryptography",
    "kubernetes", "bokeh", "rl_coach", "retrying", "eventlet", "flask", "gevent", "gunicorn", "h5py", "pytest",
    "tensorflow", "tensorflow_probability", "google", "pyparsing", "requests", "urllib3", "docutils", "rospkg",
    "yaml", "pytz", "dateutil", "kiwisolver", "pluggy", "em", "jsonschema", "typeguard", "lark", "catkin_pkg",
    "telegraf", "argcomplete", "pygame", "setuptools", "pkg_resources", "markov",
    # ... and what those bring with them (tensorflow, scikit-image, matplotlib, flask, boto3)
    "keras", "absl", "ml_dtypes", "opt_einsum", "gast", "wrapt", "termcolor", "flatbuffers", "tensorboard",
    "grpc", "tree", "cloudpickle", "decorator", "six", "packaging", "networkx", "imageio", "tifffile",
    "lazy_loader", "contourpy", "cycler", "fontTools", "tzdata", "jinja2", "markupsafe", "werkzeug", "click",
    "itsdangerous", "blinker", "greenlet", "certifi", "idna", "charset_normalizer", "s3transfer", "jmespath")
# Standard-library modules Python 3.12 (the simulator's) no longer has.
REMOVED_IN_SIMULATOR_PYTHON = ("asynchat", "asyncore", "distutils", "imp", "smtpd")
FORBIDDEN_CALLS = ("open", "exec", "eval", "compile", "input", "__import__")
_CONSOLE_RULE = "the DeepRacer console and DeepRacer on AWS refuse that (the simulator runs it)"
# The console/DRoA validator rejects any source containing these, even inside comments or longer names.
VALIDATOR_BANNED_WORDS = ("__import__", "fromfile", "genfromtxt", "loadtxt", "tofile", "savez", "savetxt",
                          "memmap", "load", "save")
MAX_ABS_REWARD = 1e5
SOURCE_LIMIT = 140_000  # characters the DRoA console accepts

PARAM_KEYS = (
    "all_wheels_on_track", "x", "y", "heading", "distance_from_center", "projection_distance", "progress",
    "steps", "speed", "steering_angle", "track_width", "track_length", "waypoints", "closest_waypoints",
    "is_left_of_center", "is_reversed", "is_offtrack", "is_crashed", "closest_objects", "objects_location",
    "objects_left_of_center", "objects_speed", "objects_heading", "objects_distance",
    "objects_distance_from_center", "object_in_camera", "sim_time",
)
RACE_TYPES = ("TIME_TRIAL", "OBJECT_AVOIDANCE", "HEAD_TO_BOT", "HEAD_TO_MODEL", "F1")

_STEPS_PER_SECOND = 15.0        # the simulator's step rate (camera-paced)
_FRONT_OFFSET = 0.14            # x, y are this far ahead of the car's origin
_WHEELS = ((0.08, 0.08), (0.08, -0.08), (-0.08, 0.08), (-0.08, -0.08))  # approximate, car frame (m)
_BOT_CAR_SPEED = 0.2            # DRfC's default DR_H2B_BOT_CAR_SPEED
_MAX_FAILURE_KINDS = 6


@dataclass(frozen=True)
class DryRunStats:
    calls: int                  # calls planned
    completed: int              # calls that returned or raised before the run ended
    mean_call_ms: float
    max_call_ms: float
    import_ms: float
    reward_min: Optional[float]
    reward_max: Optional[float]
    reward_mean: Optional[float]


@dataclass(frozen=True)
class RewardCheck:
    problems: List[Problem]
    stats: Optional[DryRunStats]  # None when the dry run did not happen
    values: Tuple[Optional[float], ...] = ()  # the dry run's float(result) per case; None where it failed

    @property
    def ok(self) -> bool:
        return not any(problem.is_error for problem in self.problems)


# --- static checks ------------------------------------------------------------------------------------------


def check_reward_source(path: Path) -> List[Problem]:
    """Problems found by reading the file; none of its code runs."""
    path = Path(path)
    name = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [Problem(name, "", f"not found at {path}")]
    except OSError as ex:
        return [Problem(name, "", f"cannot be read: {ex.strerror or ex}")]
    try:
        source = raw.decode("utf-8-sig")
    except UnicodeDecodeError as ex:
        line = raw[: ex.start].count(b"\n") + 1
        return [Problem(name, f"line {line}", "is not UTF-8 text; save the file as UTF-8")]
    if not source.strip():
        return [Problem(name, "", "is empty; it must define reward_function(params)")]
    try:
        tree = ast.parse(source, filename=name)
        compile(tree, name, "exec", dont_inherit=True)
    except SyntaxError as ex:
        where = f"line {ex.lineno}" + (f" column {ex.offset}" if ex.offset else "") if ex.lineno else ""
        text = f": {ex.text.strip()}" if ex.text and ex.text.strip() else ""
        return [Problem(name, where, f"{type(ex).__name__}: {ex.msg}{text}")]

    problems: List[Problem] = []
    if len(source) > SOURCE_LIMIT:
        problems.append(Problem(name, "", f"has {len(source)} characters; the DeepRacer console accepts at most "
                                          f"{SOURCE_LIMIT}", "warning"))
    problems += _check_imports_and_calls(name, tree)
    function, function_problems = _find_reward_function(name, tree)
    problems += function_problems
    if function is not None:
        problems += _check_params_keys(name, function)
    problems += _check_banned_words(name, source)
    return problems


def _check_imports_and_calls(name: str, tree: ast.Module) -> List[Problem]:
    problems: List[Problem] = []
    allowed = ", ".join(ALLOWED_MODULES)

    def visit(node: ast.AST, nested: bool) -> None:
        modules: List[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                problems.append(Problem(name, f"line {node.lineno}", "relative import; the simulator downloads "
                                        "the reward function alone, so there is nothing beside it to import"))
            elif node.module != "__future__":
                modules = [node.module or ""]
        for module in modules:
            problem = _import_problem(name, node.lineno, module, nested, allowed)  # type: ignore[attr-defined]  # an import
            if problem is not None:
                problems.append(problem)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            problems.append(Problem(name, f"line {node.lineno}", f"calls {node.func.id}(); the console/DRoA "
                                    f"validator forbids {', '.join(FORBIDDEN_CALLS)}: {_CONSOLE_RULE}",
                                    "warning"))
        inner = nested or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return problems


def _import_problem(name: str, line: int, module: str, nested: bool, allowed: str) -> Optional[Problem]:
    """An error only for a module the simulator's Python cannot import; the console's rules are warnings."""
    top = module.split(".")[0]
    where = f"line {line}"
    if top in REMOVED_IN_SIMULATOR_PYTHON:
        return Problem(name, where, f"imports {module}, which Python 3.12 (the simulator's) no longer has")
    if top not in IMAGE_MODULES and top not in sys.stdlib_module_names:
        return Problem(name, where, f"imports {module}, which the simulator image does not have (its Python has "
                                    f"the standard library, {allowed} and the simulator's own packages)")
    if top not in ALLOWED_MODULES:
        return Problem(name, where, f"imports {module}; the DeepRacer console and DeepRacer on AWS allow only "
                                    f"{allowed} (the simulator imports any module it has)", "warning")
    if nested:
        return Problem(name, where, f"imports {module} inside a function; {_CONSOLE_RULE}: import it at the top "
                                    f"of the file", "warning")
    return None


def _find_reward_function(name: str, tree: ast.Module) -> Tuple[Optional[ast.FunctionDef], List[Problem]]:
    definitions = [node for node in tree.body
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "reward_function"]
    assigned = any(isinstance(node, (ast.Assign, ast.AnnAssign, ast.Import, ast.ImportFrom))
                   and "reward_function" in _bound_names(node) for node in tree.body)
    if not definitions:
        if assigned:
            return None, []  # e.g. reward_function = make_reward(); the dry run tells whether it works
        nested = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.name == "reward_function"]
        if nested:
            return None, [Problem(name, f"line {nested[0].lineno}", "reward_function is defined inside another "
                                  "block; the simulator needs it at the top level of the file")]
        candidates = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        close = difflib.get_close_matches("reward_function", candidates, n=1, cutoff=0.5)
        close = close or [c for c in candidates if "reward" in c.lower()][:1]
        hint = f"; did you mean to name {close[0]!r} reward_function?" if close else ""
        return None, [Problem(name, "", f"defines no top-level reward_function(params){hint}")]

    problems: List[Problem] = []
    function = definitions[-1]
    where = f"line {function.lineno}"
    if len(definitions) > 1:
        problems.append(Problem(name, where, f"reward_function is defined {len(definitions)} times; only the last "
                                             f"one (line {function.lineno}) is used", "warning"))
    if isinstance(function, ast.AsyncFunctionDef):
        problems.append(Problem(name, where, "reward_function is async; the simulator calls it as a plain function"))
        return None, problems
    args = function.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    required = positional[: len(positional) - len(args.defaults)]
    required_keywords = [a.arg for a, default in zip(args.kwonlyargs, args.kw_defaults) if default is None]
    if not positional and args.vararg is None:
        problems.append(Problem(name, where, "reward_function takes no argument; the simulator calls "
                                             "reward_function(params)"))
    elif len(required) > 1:
        problems.append(Problem(name, where, f"reward_function requires {len(required)} arguments "
                                             f"({', '.join(required)}); the simulator passes only params"))
    if required_keywords:
        problems.append(Problem(name, where, f"reward_function requires keyword arguments "
                                             f"({', '.join(required_keywords)}); the simulator passes only params"))
    if not any(isinstance(node, ast.Return) and node.value is not None for node in _own_nodes(function)):
        problems.append(Problem(name, where, "reward_function never returns a value (so it returns None); "
                                             "it must return a number"))
    return function, problems


def _bound_names(node: ast.stmt) -> List[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [alias.asname or alias.name for alias in node.names]
    return []


def _own_nodes(function: ast.AST) -> List[ast.AST]:
    """Nodes of a function's body, not descending into nested functions, lambdas or classes."""
    found: List[ast.AST] = []
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        found.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return found


def _check_params_keys(name: str, function: ast.FunctionDef) -> List[Problem]:
    """`params["distnace_from_center"]` fails on every call; `params.get("...")` silently returns its default."""
    arguments = function.args.posonlyargs + function.args.args
    if not arguments:
        return []
    params = arguments[0].arg
    problems: List[Problem] = []
    seen = set()
    for node in ast.walk(function):
        key, how = None, ""
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == params
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            key, how = node.slice.value, "subscript"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and isinstance(node.func.value, ast.Name) and node.func.value.id == params and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            key, how = node.args[0].value, "get"
        if key is None or key in PARAM_KEYS or (key, how) in seen:
            continue
        seen.add((key, how))
        hint = _key_hint(key)
        line = f"line {node.lineno}"  # type: ignore[attr-defined]  # a Subscript or a Call: they have lines
        if how == "subscript":
            problems.append(Problem(name, line, f"{params}[{key!r}]: params has no key {key!r}, "
                                                                 f"so every call raises KeyError{hint}"))
        else:
            problems.append(Problem(name, line, f"{params}.get({key!r}): params has no key "
                                                                 f"{key!r}, so this is always the default{hint}"))
    return problems


def _key_hint(key: str) -> str:
    close = difflib.get_close_matches(key, PARAM_KEYS, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_banned_words(name: str, source: str) -> List[Problem]:
    lowered = source.lower()
    for word in VALIDATOR_BANNED_WORDS:
        at = lowered.find(word)
        if at >= 0:
            line = source.count("\n", 0, at) + 1
            start = source.rfind("\n", 0, at) + 1
            end = source.find("\n", at)
            context = source[start: end if end >= 0 else None].strip()[:60]
            return [Problem(name, f"line {line}", f"contains {word!r} ({context!r}); the console/DRoA validator "
                                                  f"rejects any source containing it, even in comments or names "
                                                  f"(this simulator runs it)", "warning")]
    return []


# --- the params the simulator passes -------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamCases:
    """The calls of a dry run: `cases[i]` is params without `waypoints`, which is `waypoints[cases[i]["_route"]]`
    (one shared list per direction, as the simulator's)."""

    track: str
    waypoints: Dict[str, List[Point]]
    cases: List[Dict[str, Any]]

    def __len__(self) -> int:
        return len(self.cases)

    def params(self, index: int) -> Dict[str, Any]:
        """The full params of call `index`, as the simulator passes them."""
        case = dict(self.cases[index])
        case["waypoints"] = list(self.waypoints[case.pop("_route")])
        return case


ActionSpace = Union[List[Dict[str, Any]], Dict[str, Any], None]


def build_cases(track: Track, *, calls: int = 500, seed: int = 0, reverse: Optional[bool] = None,
                race_type: str = "TIME_TRIAL", action_space: ActionSpace = None, dedup: bool = True,
                with_sim_time: bool = True) -> ParamCases:
    """Params for `calls` calls over a sequence of episodes on `track`.

    Episodes start at spread-out waypoints on the centre line (steps 2.0, progress 0), drift left and right,
    and end in turn normally, off track, at the finish (progress 100) or, with objects, crashed. `reverse`:
    False forward only, True reversed only, None alternating (ALTERNATE_DRIVING_DIRECTION). `action_space` is
    model_metadata.json's value (list: discrete, object: continuous; None: the full legal ranges).
    `dedup` follows community simapp >= 6.0.2, which drops duplicated centre points from the waypoints.
    """
    if calls < 1:
        raise ValueError("calls must be at least 1")
    race_type = race_type.upper()
    rng = random.Random(seed)
    views = {"forward": track.view(False, dedup), "reversed": track.view(True, dedup)}
    routes = ["reversed"] if reverse is True else ["forward"] if reverse is False else ["forward", "reversed"]
    with_objects = race_type in ("OBJECT_AVOIDANCE", "HEAD_TO_BOT", "HEAD_TO_MODEL")
    bots = race_type in ("HEAD_TO_BOT", "HEAD_TO_MODEL")
    kinds = ["lap", "offtrack", "normal"] + (["crash"] if with_objects else [])
    pick_action = _action_sampler(action_space, rng)

    cases: List[Dict[str, Any]] = []
    episode, clock = 0, 0.0
    while len(cases) < calls:
        route = routes[episode % len(routes)]
        view = views[route]
        remaining = calls - len(cases)
        samples = min(remaining, rng.randint(12, 40))
        # Progress is wrap-corrected step to step, so samples must stay well under half a lap apart.
        kind = kinds[episode % len(kinds)] if samples >= 6 else "short"
        cases += _episode(view, route, kind, samples, episode, rng, pick_action, clock,
                          _objects(view, rng, bots) if with_objects else None, with_sim_time)
        clock += 600.0
        episode += 1
    return ParamCases(track=track.name, waypoints={k: v.waypoints for k, v in views.items()}, cases=cases[:calls])


def _action_sampler(action_space: ActionSpace, rng: random.Random):
    if isinstance(action_space, list):
        actions = [(float(a["steering_angle"]), float(a["speed"])) for a in action_space
                   if isinstance(a, dict) and _is_number(a.get("steering_angle")) and _is_number(a.get("speed"))]
        if actions:
            return lambda first: rng.choice(actions)
    steering, speed = (-30.0, 30.0), (0.1, 4.0)
    if isinstance(action_space, dict):
        try:
            s, v = action_space["steering_angle"], action_space["speed"]
            if all(_is_number(x) for x in (s["low"], s["high"], v["low"], v["high"])):
                steering, speed = (float(s["low"]), float(s["high"])), (float(v["low"]), float(v["high"]))
        except (KeyError, TypeError):
            pass

    def sample(first: bool) -> Tuple[float, float]:
        if first and steering[0] <= 0.0 <= steering[1]:
            return 0.0, speed[0]
        edge = rng.random()
        angle = steering[0] if edge < 0.05 else steering[1] if edge < 0.1 else rng.uniform(*steering)
        return angle, speed[1] if edge > 0.95 else rng.uniform(*speed)

    return sample


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _objects(view: TrackView, rng: random.Random, bots: bool) -> List[Dict[str, Any]]:
    count = 3
    objects = []
    for k in range(count):
        distance = view.length * (k + rng.uniform(0.2, 0.8)) / count
        lane = rng.choice((-0.25, 0.25))
        objects.append({"distance": distance, "lane": lane, "speed": _BOT_CAR_SPEED if bots else 0.0})
    return objects


def _episode(view: TrackView, route: str, kind: str, samples: int, episode: int, rng: random.Random,
             pick_action, clock: float, objects: Optional[List[Dict[str, Any]]],
             with_sim_time: bool) -> List[Dict[str, Any]]:
    length = view.length
    n_waypoints = len(view.centre.coords) - (1 if view.closed else 0)
    start_index = 0 if (episode < 2 or not view.closed) else int(((episode * 0.618034) % 1.0) * n_waypoints)
    start = view.centre.vertex_distances[start_index]
    # The simulator's start line is where the car's projection lands at the start, so progress starts at 0.
    start_ndist = view.centre.project(view.place(start, 0.0)[0], normalized=True)
    if kind == "lap":
        travel = length if view.closed else length - start
    elif kind == "crash" and objects:
        ahead = min(((o["distance"] - start) % length for o in objects if (o["distance"] - start) % length > 1.0),
                    default=length / 2)
        travel = ahead - 0.15
    elif kind == "short":
        travel = length * 0.05
    else:
        travel = length * rng.uniform(0.15, 0.6)
    cruise = rng.uniform(0.5, 3.0)
    offset, prev_progress, steps = 0.0, 0.0, 1.0
    cases = []
    for k in range(samples):
        last = k == samples - 1
        along = travel * k / (samples - 1) if samples > 1 else 0.0
        if kind == "lap" and k == samples - 2 and k > 0:
            along = travel - 0.02  # just before the finish: the last segment, closest_waypoints [n-2, n-1]
        distance = start + along
        half = _half_width(view, distance)
        if k == 0:
            offset = 0.0
        elif kind == "offtrack" and k >= samples - 2:
            side = 1.0 if offset >= 0 else -1.0
            offset = side * (half + (0.35 if last else 0.03))
        elif kind == "crash" and last and objects:
            offset = min(objects, key=lambda o: (o["distance"] - distance) % length)["lane"] * half * 2
        elif k % 9 == 0:
            offset = 0.0
        else:
            offset = max(-0.9 * half, min(0.9 * half, offset + rng.gauss(0.0, 0.25 * half)))
        point, heading = view.place(distance, offset)
        heading = _wrap_degrees(heading + (0.0 if k == 0 else rng.gauss(0.0, 8.0)))
        steps = 2.0 if k == 0 else max(steps + 1.0, 2.0 + round(along / (cruise / _STEPS_PER_SECOND)))
        steering, speed = pick_action(k == 0)
        params = _params(view, point, heading, steps, speed, steering, start_ndist, prev_progress)
        if kind == "lap" and last:
            params["progress"] = 100.0  # the simulator reports a completed lap as exactly 100, whatever the geometry
        params["_route"] = route
        if with_sim_time:
            params["sim_time"] = round(clock + steps / _STEPS_PER_SECOND, 3)
        wheels_on = _wheels_on_road(view, point, heading, params["distance_from_center"], params["track_width"])
        params["all_wheels_on_track"] = all(wheels_on)
        params["is_offtrack"] = not any(wheels_on)
        if objects is not None:
            elapsed = (steps - 2.0) / _STEPS_PER_SECOND
            params.update(_object_params(view, point, heading, objects, elapsed))
            params["is_crashed"] = bool(kind == "crash" and last)
        prev_progress = params["progress"]
        cases.append(params)
        if params["is_offtrack"]:
            break  # the episode ends on this step
    return cases


def _half_width(view: TrackView, distance: float) -> float:
    point, _ = view.place(distance, 0.0)
    return view.nearest(point).track_width / 2.0


def _wrap_degrees(angle: float) -> float:
    angle = math.fmod(angle + 180.0, 360.0)
    return angle + 180.0 if angle <= 0.0 else angle - 180.0


def _progress(current: float, previous: float) -> float:
    """The simapp's wrap-corrected progress (`compute_current_prog`)."""
    current = 100 * current
    if current <= 0:
        current += 100
    if previous > current + 50.0:
        current += 100.0
    if current > previous + 50.0:
        current -= 100.0
    return min(current, 100)


def _params(view: TrackView, point: Point, heading: float, steps: float, speed: float, steering: float,
            start_ndist: float, prev_progress: float) -> Dict[str, Any]:
    nearest = view.nearest(point)
    progress = _progress(nearest.ndist - start_ndist, prev_progress)
    return step_params(view, point, heading, steps=steps, speed=speed, steering=steering, progress=progress,
                       nearest=nearest)


def step_params(view: TrackView, point: Point, heading: float, *, steps: float, speed: float, steering: float,
                progress: float, on_track: bool = True, offtrack: bool = False, crashed: bool = False,
                nearest: Optional[Nearest] = None) -> Dict[str, Any]:
    """params (without `waypoints`) for the car at `point` heading `heading` degrees, the geometry worked out as
    the simulator does (agent_ctrl/utils.py); a time trial's object keys empty. The dry run and the re-scoring of
    logged steps (session.insight.rescore) both build them here."""
    nearest = nearest or view.nearest(point)
    return {
        "all_wheels_on_track": bool(on_track),
        "x": float(point[0]),
        "y": float(point[1]),
        "heading": float(heading),
        "distance_from_center": nearest.distance_from_center,
        "projection_distance": nearest.ndist * view.length,
        "progress": float(progress),
        "steps": float(steps),
        "speed": float(speed),
        "steering_angle": float(steering),
        "track_width": nearest.track_width,
        "track_length": view.length,
        "closest_waypoints": list(nearest.closest_waypoints),
        "is_left_of_center": nearest.is_left_of_center,
        "is_reversed": view.reversed,
        "is_offtrack": bool(offtrack),
        "is_crashed": bool(crashed),
        "closest_objects": [0, 0],
        "objects_location": [],
        "objects_left_of_center": [],
        "objects_speed": [],
        "objects_heading": [],
        "objects_distance": [],
        "objects_distance_from_center": [],
        "object_in_camera": False,
    }


def _wheels_on_road(view: TrackView, point: Point, heading: float, from_centre: float,
                    width: float) -> List[bool]:
    if from_centre + 0.25 < width / 2:
        return [True] * len(_WHEELS)
    if from_centre - 0.25 > width / 2:
        return [False] * len(_WHEELS)
    h = math.radians(heading)
    cos_h, sin_h = math.cos(h), math.sin(h)
    ox, oy = point[0] - _FRONT_OFFSET * cos_h, point[1] - _FRONT_OFFSET * sin_h
    return [view.on_road((ox + dx * cos_h - dy * sin_h, oy + dx * sin_h + dy * cos_h)) for dx, dy in _WHEELS]


def _object_params(view: TrackView, car: Point, heading: float, objects: List[Dict[str, Any]],
                   elapsed: float) -> Dict[str, Any]:
    locations, headings = [], []
    for o in objects:
        distance = o["distance"] + o["speed"] * elapsed
        half = _half_width(view, distance)
        point, yaw = view.place(distance, o["lane"] * half * 2)
        locations.append([point[0], point[1]])
        headings.append(math.radians(yaw) if o["speed"] else 0.0)  # bot-car yaw is in radians
    pdists = [view.centre.project((x, y)) for x, y in locations]
    order = sorted(range(len(pdists)), key=lambda i: pdists[i])
    ordered = [pdists[i] for i in order]
    car_pdist = view.centre.project(car)
    next_i = bisect.bisect_right(ordered, car_pdist)
    prev_i = next_i - 1 if next_i > 0 else len(ordered) - 1
    next_i = 0 if next_i == len(ordered) else next_i
    prev_object, next_object = order[prev_i], order[next_i]
    centre_ring = list(view.centre.coords[:-1]) if view.closed else list(view.centre.coords)
    inner_ring = list(view.inner.coords[:-1]) if view.closed else []
    if not view.closed:
        centre_ring += list(reversed(view.inner.coords))

    def inner_half(p: Point) -> bool:
        return inside_ring(p, centre_ring) != (inside_ring(p, inner_ring) if inner_ring else False)

    nx, ny = locations[next_object]
    bearing = math.degrees(math.atan2(ny - car[1], nx - car[0]))
    in_camera = math.dist(car, (nx, ny)) < 3.0 and abs(_wrap_degrees(bearing - heading)) < 60.0
    return {
        "closest_objects": [prev_object, next_object],
        "objects_location": locations,
        "objects_left_of_center": [inner_half((x, y)) ^ (not view.is_ccw) for x, y in locations],
        "objects_speed": [float(o["speed"]) for o in objects],
        "objects_heading": headings,
        "objects_distance_from_center": [view.centre.distance((x, y)) for x, y in locations],
        "objects_distance": pdists,
        "object_in_camera": in_camera,
    }


# --- the dry run ------------------------------------------------------------------------------------------------

# Runs in the child process, with nothing of ours importable: it imports the user's file once and calls
# reward_function on every case, writing one JSON line per event, flushed, so a killed run still tells how far
# it got. User output goes to /dev/null.
_HARNESS = r"""
import copy, json, math, os, sys, time, traceback, importlib.util

reward_path, cases_path, out_path = sys.argv[1:4]
with open(cases_path) as f:
    spec = json.load(f)
routes = {k: [tuple(p) for p in v] for k, v in spec["waypoints"].items()}
out = open(out_path, "w", buffering=1)
sys.stdout = open(os.devnull, "w")

def emit(event):
    out.write(json.dumps(event) + "\n")

def failure(ex):
    line, code = None, None
    for frame in traceback.extract_tb(ex.__traceback__):
        if frame.filename == reward_path:
            line, code = frame.lineno, frame.line
    message = str(ex) if not isinstance(ex, KeyError) else repr(ex.args[0]) if ex.args else ""
    return {"type": type(ex).__name__, "message": message[:300], "line": line, "code": (code or "")[:120],
            "module": getattr(ex, "name", None) if isinstance(ex, ImportError) else None}

started = time.perf_counter()
try:
    module_spec = importlib.util.spec_from_file_location("customer_reward_function", reward_path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    function = module.reward_function
    if not callable(function):
        raise TypeError("reward_function is not a function")
except BaseException as ex:
    emit({"event": "import", "ms": (time.perf_counter() - started) * 1e3, "error": failure(ex)})
    sys.exit(0)
emit({"event": "import", "ms": (time.perf_counter() - started) * 1e3, "error": None})

for index, case in enumerate(spec["cases"]):
    params = dict(case)
    params["waypoints"] = routes[params.pop("_route")]
    params = copy.deepcopy(params)
    started = time.perf_counter()
    try:
        result = function(params)
    except BaseException as ex:
        emit({"event": "call", "i": index, "ms": (time.perf_counter() - started) * 1e3, "error": failure(ex)})
        continue
    elapsed = (time.perf_counter() - started) * 1e3
    kind = type(result)
    type_name = kind.__name__ if kind.__module__ == "builtins" else kind.__module__ + "." + kind.__qualname__
    try:
        value, float_error = float(result), None
    except BaseException as ex:
        value, float_error = None, type(ex).__name__ + ": " + str(ex)[:200]
    try:
        shown = repr(result)[:80]
    except BaseException:
        shown = "<unprintable>"
    emit({"event": "call", "i": index, "ms": elapsed, "error": None, "type": type_name, "repr": shown,
          "value": value, "float_error": float_error})
emit({"event": "done"})
"""


def dry_run(path: Path, cases: ParamCases, *, timeout: float = 30.0, python: Optional[str] = None,
            slow_call_ms: float = 5.0) -> RewardCheck:
    """Import `path` and call its reward_function on every case in a separate Python process (`python`,
    default this interpreter) that is killed after `timeout` seconds."""
    path = Path(path).resolve()
    name = path.name
    with tempfile.TemporaryDirectory(prefix="reward-check-") as scratch:
        cases_file = Path(scratch, "cases.json")
        events_file = Path(scratch, "events.jsonl")
        stderr_file = Path(scratch, "stderr.txt")
        cases_file.write_text(json.dumps({"waypoints": cases.waypoints, "cases": cases.cases}))
        interpreter = python or sys.executable
        try:
            timed_out = _run_child(interpreter, [str(path), str(cases_file), str(events_file)], scratch,
                                   stderr_file, timeout)
        except OSError as ex:
            return RewardCheck([Problem(name, "", f"cannot start Python for the dry run ({interpreter}): "
                                                  f"{ex.strerror or ex}")], None)
        events = _read_events(events_file)
        stderr_tail = stderr_file.read_text(errors="replace")[-300:].strip() if stderr_file.exists() else ""
    return _judge(name, cases, events, timed_out, timeout, stderr_tail, slow_call_ms)


def _run_child(python: str, arguments: List[str], cwd: str, stderr_file: Path, timeout: float) -> bool:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(stderr_file, "wb") as stderr:
        # stdout is a pipe the harness never writes to: communicate() returns the moment the child exits
        # (waiting on the process itself would poll).
        # -B: importing the user's file must not leave __pycache__ in their custom_files folder.
        child = subprocess.Popen([python, "-I", "-B", "-c", _HARNESS, *arguments], cwd=cwd, env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                                 start_new_session=True)
        try:
            child.communicate(timeout=timeout)
            return False
        except subprocess.TimeoutExpired:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.communicate()
            return True


def _read_events(events_file: Path) -> List[Dict[str, Any]]:
    events = []
    if events_file.exists():
        for line in events_file.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                break  # the line being written when the process was killed
    return events


def _judge(name: str, cases: ParamCases, events: List[Dict[str, Any]], timed_out: bool, timeout: float,
           stderr_tail: str, slow_call_ms: float) -> RewardCheck:
    total = len(cases)
    imported = next((e for e in events if e.get("event") == "import"), None)
    calls = [e for e in events if e.get("event") == "call"]
    finished = any(e.get("event") == "done" for e in events)

    if imported is None:
        if timed_out:
            return RewardCheck([Problem(name, "", f"importing the file did not finish within {timeout:g} s "
                                                  f"(an endless loop at the top level?)")], None)
        detail = f": {stderr_tail.splitlines()[-1]}" if stderr_tail else ""
        return RewardCheck([Problem(name, "", f"the dry run's Python process died before importing the "
                                              f"file{detail}")], None)
    if imported["error"] is not None:
        error = imported["error"]
        if error["type"] in ("ModuleNotFoundError", "ImportError") and \
                (error.get("module") or "").split(".")[0] in IMAGE_MODULES:
            return RewardCheck([Problem(name, _line(error), f"not dry-run: this host's Python has no "
                                        f"{error['module']}, which the simulator has; install it here to dry-run "
                                        f"the reward function", "warning")], None)
        return RewardCheck([Problem(name, _line(error), f"importing the file failed: {_describe(error)}")], None)

    problems: List[Problem] = []
    durations = [c["ms"] for c in calls]
    values = [c["value"] for c in calls if c["error"] is None and c["value"] is not None
              and math.isfinite(c["value"])]
    stats = DryRunStats(
        calls=total, completed=len(calls),
        mean_call_ms=sum(durations) / len(durations) if durations else 0.0,
        max_call_ms=max(durations, default=0.0), import_ms=imported["ms"],
        reward_min=min(values) if values else None, reward_max=max(values) if values else None,
        reward_mean=sum(values) / len(values) if values else None)

    if timed_out or not finished:
        stuck = len(calls)
        where = f"call {stuck + 1} of {total} ({_summary(cases.params(stuck))})" if stuck < total else "the end"
        if timed_out:
            # Time left for the call that never returned, against the calls that did.
            stuck_ms = timeout * 1e3 - imported["ms"] - sum(durations)
            looping = not calls or stuck_ms > max(500.0, 20 * stats.max_call_ms)
            reason = (f"reward_function did not return within {timeout:g} s at {where} (an endless loop?)" if looping
                      else f"the dry run did not finish within {timeout:g} s: {len(calls)} of {total} calls took "
                           f"{stats.mean_call_ms:.1f} ms each on average; the next was {where}")
        else:
            detail = f" ({stderr_tail.splitlines()[-1]})" if stderr_tail else ""
            reason = f"the dry run's Python process died{detail} at {where}"
        problems.append(Problem(name, "", reason))

    groups: Dict[Tuple[str, ...], List[Dict[str, Any]]] = {}
    for call in calls:
        groups.setdefault(_failure_key(call), []).append(call)
    failures = [(key, members) for key, members in groups.items() if key[0] != "ok"]
    for key, members in failures[:_MAX_FAILURE_KINDS]:
        first = members[0]
        summary = f"on {len(members)} of {len(calls)} calls (first: {_summary(cases.params(first['i']))})"
        problems.append(_failure_problem(name, key, first, summary))

    if len(failures) > _MAX_FAILURE_KINDS:
        problems.append(Problem(name, "", f"and {len(failures) - _MAX_FAILURE_KINDS} more kinds of failure"))
    if stats.completed and stats.mean_call_ms > slow_call_ms:
        problems.append(Problem(name, "", f"reward_function takes {stats.mean_call_ms:.1f} ms per call on average "
                                          f"(max {stats.max_call_ms:.1f} ms); it runs on every step, about "
                                          f"{_STEPS_PER_SECOND:g} times per simulated second per worker: keep it "
                                          f"under {slow_call_ms:g} ms", "warning"))
    if len(values) >= 20 and len(values) == len(calls) and min(values) == max(values):
        problems.append(Problem(name, "", f"returned the same reward ({values[0]:g}) on all {len(values)} calls; "
                                          f"the car cannot learn from a constant reward", "warning"))
    per_case: List[Optional[float]] = [None] * total
    for call in calls:
        if call["error"] is None and call["value"] is not None and math.isfinite(call["value"]):
            per_case[call["i"]] = call["value"]
    return RewardCheck(problems, stats, tuple(per_case))


def _failure_key(call: Dict[str, Any]) -> Tuple[str, ...]:
    error = call["error"]
    if error is not None:
        # One line raising one type is one fault, whatever the value in the message (KeyError: 121, 125, ...).
        detail = "" if error["line"] else error["message"]
        return ("exception", error["type"], detail, str(error["line"]))
    if call["float_error"] is not None:
        return ("not-a-number", call["type"])
    value = call["value"]
    if math.isnan(value):
        return ("nan",)
    if math.isinf(value):
        return ("inf",)
    if abs(value) > MAX_ABS_REWARD:
        return ("range",)
    if call["type"] == "bool":
        return ("bool",)
    if call["type"] == "str":
        return ("str",)
    if call["type"] not in ("int", "float") and not _numpy_scalar(call["type"]):
        return ("odd-type", call["type"])
    return ("ok",)


def _numpy_scalar(type_name: str) -> bool:
    return type_name.startswith("numpy.") and type_name.split(".")[-1].rstrip("0123456789") in (
        "float", "int", "uint", "longdouble", "double", "single", "half", "longlong", "ulonglong", "intc", "uintc")


def _failure_problem(name: str, key: Tuple[str, ...], first: Dict[str, Any], summary: str) -> Problem:
    kind = key[0]
    stops = "the simulator stops training on that"
    if kind == "exception":
        error = first["error"]
        hint = ""
        # Only a missing string key can be a misspelt params key (KeyError: 121 is some other dict's).
        if error["type"] == "KeyError" and error["message"][:1] in "'\"" and error["message"] \
                and error["message"].strip("'\"") not in PARAM_KEYS:
            hint = f"; params has no key {error['message']}{_key_hint(error['message'].strip(chr(39) + chr(34)))}"
        return Problem(name, _line(error), f"reward_function raised {_describe(error)} {summary}{hint}")
    if kind == "not-a-number":
        return Problem(name, "", f"reward_function returned {first['repr']} ({first['type']}), which is not a "
                                 f"number ({first['float_error']}) {summary}; {stops}")
    if kind in ("nan", "inf"):
        return Problem(name, "", f"reward_function returned {first['repr']} {summary}; {stops}")
    if kind == "range":
        return Problem(name, "", f"reward_function returned {first['value']:g}, outside [-{MAX_ABS_REWARD:g}, "
                                 f"{MAX_ABS_REWARD:g}], {summary}; {stops}")
    what = {"bool": "a bool", "str": "a string"}.get(kind, first["type"])
    return Problem(name, "", f"reward_function returned {what} ({first['repr']}) {summary}; the simulator "
                             f"converts it with float(), but return a float", "warning")


def _line(error: Dict[str, Any]) -> str:
    return f"line {error['line']}" if error.get("line") else ""


def _describe(error: Dict[str, Any]) -> str:
    text = f"{error['type']}: {error['message']}" if error["message"] else error["type"]
    return f"{text} (`{error['code']}`)" if error.get("code") else text


def _summary(params: Dict[str, Any]) -> str:
    text = (f"steps={params['steps']!r}, progress={params['progress']:.1f}, "
            f"distance_from_center={params['distance_from_center']:.3f}, track_width={params['track_width']:.3f}, "
            f"closest_waypoints={params['closest_waypoints']} of {len(params['waypoints'])} waypoints, "
            f"speed={params['speed']:.2f}, steering_angle={params['steering_angle']:.1f}, "
            f"heading={params['heading']:.1f}, is_reversed={params['is_reversed']}, "
            f"all_wheels_on_track={params['all_wheels_on_track']}, is_offtrack={params['is_offtrack']}")
    if params["objects_location"]:
        text += f", is_crashed={params['is_crashed']}, {len(params['objects_location'])} objects"
    return text


def check_reward_function(path: Path, track: Optional[Track], *, calls: int = 500, seed: int = 0,
                          timeout: float = 30.0, reverse: Optional[bool] = None, race_type: str = "TIME_TRIAL",
                          action_space: ActionSpace = None, python: Optional[str] = None,
                          slow_call_ms: float = 5.0) -> RewardCheck:
    """Static checks, then (when they found no error and a track is given) the dry run."""
    problems = check_reward_source(path)
    if track is None or any(problem.is_error for problem in problems):
        return RewardCheck(problems, None)
    cases = build_cases(track, calls=calls, seed=seed, reverse=reverse, race_type=race_type,
                        action_space=action_space)
    result = dry_run(path, cases, timeout=timeout, python=python, slow_call_ms=slow_call_ms)
    return RewardCheck(problems + result.problems, result.stats)


__all__ = [
    "ALLOWED_MODULES", "PARAM_KEYS", "RACE_TYPES", "DryRunStats", "ParamCases", "RewardCheck", "build_cases",
    "check_reward_function", "check_reward_source", "dry_run", "step_params",
]
