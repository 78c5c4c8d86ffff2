"""What DeepRacer on AWS (DRoA) refuses when it imports a model, checked before anything is uploaded.

DRoA (github.com/aws-solutions/deepracer-on-aws, v1.2.5) judges an import in two places, both after the upload:

- its ImportModel handler answers HTTP 400 on the car (shell and colour), the track and its direction, object
  avoidance, SAC with a discrete action space or with `num_episodes_between_training` other than the number 1,
  and a continuous action space whose low is not below its high
  (source/libs/lambda/src/api/handlers/importModel.ts, source/libs/lambda/src/api/utils/validation.ts,
  source/libs/lambda/src/import-workflow/utils/ImportHelper.ts);
- its import workflow then runs the reward-function validation Lambda, and a finding ends the model in ERROR
  with "Reward Function Validation <message>" (source/apps/infra/lib/constructs/import-workflow/importWorkflow.ts,
  source/libs/lambda/src/import-workflow/handlers/importModelCompletion.ts). That Lambda
  (source/libs/reward-function-validation/lib/reward_func_validator/test_reward_function.py, constants.py,
  requirements.txt) runs flake8 7.3.0 (`--select=E,F --ignore=E5,E226,E261`: that ignore list replaces flake8's
  default one, so E121/E123/E126/E24/E704 count too), allows only the modules math, random, numpy, scipy and
  shapely, refuses calls of open/exec/eval/compile/input, refuses these substrings anywhere in the text
  (comments and longer names included, case-sensitive), and needs a one-parameter `reward_function`.

The training simulator applies none of these rules (session/checks/reward.py: a finding here is at most a
warning of `validate`); only DRoA refuses. `check_import` reports every finding at once, one line each, as
errors; `models.droa` refuses to upload while there is one. Its runtime tests (calling the function with its
own params on its own routes, a float return) are not repeated here: `validate`'s dry run covers most of that.
"""

from __future__ import annotations

import ast
import difflib
import math
import os
import subprocess
import sys
import tempfile
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from session.core.problems import Problem

REWARD_FILE = "reward_function.py"
PARAMS_FILE = "training_params.yaml"
METADATA_FILE = "model_metadata.json"
HYPERPARAMETERS_FILE = "ip/hyperparameters.json"

# reward_func_validator/constants.py: ALLOWLIST_IMPORTS, FORBID_ACCESS (the calls its static test refuses),
# FORBID_STRINGS (checked with `in` on the file's text).
ALLOWED_IMPORTS = ("math", "random", "numpy", "scipy", "shapely")
FORBIDDEN_CALLS = ("open", "exec", "eval", "compile", "input")
FORBIDDEN_STRINGS = ("__import__", "load", "fromfile", "genfromtxt", "loadtxt", "tofile", "savez", "save",
                     "savetxt", "memmap")
# reward_func_validator/test_reward_function.py, run_flake8(); the version is requirements.txt's pin.
FLAKE8_OPTIONS = ("--select=E,F", "--ignore=E5,E226,E261")
FLAKE8_VERSION = "7.3.0"
_FLAKE8_RULE = "DRoA's validator runs flake8 (E and F codes; only E5, E226 and E261 ignored) and refuses any finding"

# source/libs/config/src/data/tracks.json: each track and the directions DRoA enables for it. A track with one
# direction is imported in that direction whatever TRACK_DIRECTION_CLOCKWISE says (ImportHelper.getTrackConfig).
CLOCKWISE, COUNTER_CLOCKWISE = "CLOCKWISE", "COUNTER_CLOCKWISE"
_BOTH = (CLOCKWISE, COUNTER_CLOCKWISE)
TRACK_DIRECTIONS: Mapping[str, Tuple[str, ...]] = {
    **{track: _BOTH for track in (
        "2024_reinvent_champ", "2022_april_open", "2022_april_pro", "2022_august_open", "2022_august_pro",
        "2022_july_pro", "2022_june_open", "2022_june_pro", "2022_march_open", "2022_march_pro", "2022_may_open",
        "2022_may_pro", "2022_october_open", "2022_october_pro", "2022_reinvent_champ", "2022_september_open",
        "2022_september_pro", "2022_summit_speedway", "arctic_open", "arctic_pro", "dubai_open",
        "jyllandsringen_open", "jyllandsringen_pro", "penbay_open", "penbay_pro", "red_star_pro",
        "reInvent2019_track", "reInvent2019_wide", "thunder_hill_pro")},
    **{track: (CLOCKWISE,) for track in (
        "Albert", "Aragon", "Belille", "FS_June2020", "July_2020", "Monaco", "Monaco_building", "Spain_track")},
    **{track: (COUNTER_CLOCKWISE,) for track in (
        "2022_july_open", "AmericasGeneratedInclStart", "Austin", "Bowtie_track", "caecer_gp", "caecer_loop",
        "Canada_Training", "China_track", "dubai_pro", "hamption_open", "hamption_pro", "LGSWide", "Mexico_track",
        "morgan_open", "morgan_pro", "New_York_Track", "Oval_track", "red_star_open", "reinvent_base", "Singapore",
        "Singapore_building", "thunder_hill_open", "Tokyo_Training_track", "Vegas_track",
        "Virtual_May19_Train_track")},
}

# source/libs/model/src/main/smithy/types/model.smithy (enum CarColor) and
# source/libs/lambda/src/workflow/constants/simulation.ts (SimAppCarShells: shell and colour -> the simulator's
# BODY_SHELL_TYPE). The import reads BODY_SHELL_TYPE back into a shell and colour: `deepracer` takes its colour
# from CAR_COLOR (upper-cased; a name outside CarColor stays WHITE), any other known id names both, and an
# unknown id becomes DEEPRACER/WHITE. Only a `deepracer` colour DRoA's DeepRacer shell lacks is refused.
CAR_COLORS = ("BLACK", "BLUE", "BROWN", "GOLDEN", "GOLDENPINK", "GREEN", "GREY", "ORANGE", "PINK", "PURPLE", "RED",
              "SKY_BLUE", "TEAL", "WHITE", "YELLOW")
DEEPRACER_SHELL = "deepracer"
DEEPRACER_COLORS = ("BLACK", "BLUE", "GREY", "ORANGE", "PURPLE", "RED", "WHITE")
CAR_SHELLS = {  # BODY_SHELL_TYPE -> (DRoA's CarShell, CarColor)
    "f1_car_mercedes_08": ("AGATHA", "GREY"),
    "f1_amazon_van_purple_with_wheel": ("AMAZON_EDV", "PURPLE"),
    "f1_amazon_van_white_with_wheel": ("AMAZON_EDV", "WHITE"),
    "f1_baja_truck_05": ("BAJA_TRUCK", "TEAL"), "f1_baja_truck_03": ("BAJA_TRUCK", "ORANGE"),
    "f1_car_banana_01": ("BANANA", "BLACK"),
    "f1_august_bike_02_with_wheel": ("BIKE", "BLUE"), "f1_august_bike_01_with_wheel": ("BIKE", "RED"),
    "f1_september_bug_01_with_wheel": ("BUGGY", "WHITE"), "f1_september_bug_02_with_wheel": ("BUGGY", "PURPLE"),
    "f1_car_clown_01": ("CLOWN", "YELLOW"),
    "f1_june_car_01": ("COMPACT", "RED"), "f1_june_car_02": ("COMPACT", "PURPLE"),
    "f1_dog_van": ("DOG_VAN", "BROWN"), "f1_dragon": ("DRAGON", "BROWN"),
    "f1_dune_buggy_01": ("DUNE_BUGGY", "RED"), "f1_dune_buggy_07": ("DUNE_BUGGY", "GOLDEN"),
    "f1_2021": ("F1", "RED"),
    "f1_nudie_purple_with_wheel": ("F1_NUDIE", "PURPLE"), "f1_nudie_orange_with_wheel": ("F1_NUDIE", "ORANGE"),
    "f1_nudie_white_with_wheel": ("F1_NUDIE", "WHITE"),
    "f1_october_wagon_01_with_wheel": ("FAMILY_WAGON", "GREEN"),
    "f1_october_wagon_02_with_wheel": ("FAMILY_WAGON", "PURPLE"),
    "f1_december_car_01_with_wheel": ("GT", "PURPLE"), "f1_december_car_02_with_wheel": ("GT", "RED"),
    "f1_hotrod_03": ("HOT_ROD", "PURPLE"), "fl_hotrod_02": ("HOT_ROD", "ORANGE"),
    "f1_kart": ("KART", "RED"), "f1_lorry_01": ("LORRY", "PURPLE"),
    "f1_lunar_rover": ("LUNAR_ROVER", "BROWN"), "f1_july_car_03_with_wheel": ("LUNAR_ROVER", "GOLDEN"),
    "f1_mars_rover_with_wheel": ("MARS_ROVER", "WHITE"), "f1_monster_truck_01": ("MONSTER_TRUCK", "PURPLE"),
    "f1_mustang_eleanor_01": ("NELL", "RED"), "f1_mustang_eleanor_02": ("NELL", "BLACK"),
    "f1_mustang_eleanor_03": ("NELL", "YELLOW"),
    "f1_car_retro_01": ("RETRO_FUTURISTIC", "PURPLE"), "f1_rogue_01": ("ROGUE_ROD", "ORANGE"),
    "f1_snail": ("SNAIL", "PINK"),
    "f1_car_tron_01": ("TRON", "BLUE"), "f1_car_tron_02": ("TRON", "RED"), "f1_car_tron_03": ("TRON", "GOLDEN"),
    "f1_car_tron_04": ("TRON", "WHITE"), "f1_car_tron_05": ("TRON", "SKY_BLUE"), "f1_car_tron_06": ("TRON", "GREEN"),
    "f1_car_tron_07": ("TRON", "PURPLE"), "f1_car_tron_08": ("TRON", "YELLOW"), "f1_car_tron_09": ("TRON", "GREY"),
    "f1_car_tron_10": ("TRON", "GOLDENPINK"),
    "f1_july_car_01_with_wheel": ("WAGON", "PINK"), "f1_july_car_02_with_wheel": ("WAGON", "BLUE"),
}

# validation.ts, validateObjectAvoidanceConfig: 1 to 6 objects; fixed positions (fractions of the lap) one per
# object, the first at 0.07 or later, the last at 0.9 or earlier, each 0.13 or more after the one before.
MAX_OBJECTS = 6
FIRST_OBJECT_AT, LAST_OBJECT_AT, MIN_OBJECT_GAP = 0.07, 0.9, 0.13


# --- the reward function --------------------------------------------------------------------------------------


def check_reward_function(source: str, *, name: str = REWARD_FILE, python: Optional[str] = None) -> List[Problem]:
    """Every finding of DRoA's static reward-function tests (flake8, imports, calls, strings, signature).

    DRoA stops at its first finding and names only that one; this lists them all. `python` runs flake8
    (default: this interpreter, which has it as a dependency of the session package)."""
    problems = run_flake8(source, name=name, python=python)
    try:
        tree: Optional[ast.Module] = ast.parse(source)
    except (SyntaxError, ValueError):
        tree = None  # flake8 has named it (E999)
    if tree is not None:
        problems += _imports(name, tree)
        problems += _calls(name, tree)
    problems += _strings(name, source)
    if tree is not None:
        problems += _signature(name, tree)
    return problems


def run_flake8(source: str, *, name: str = REWARD_FILE, python: Optional[str] = None) -> List[Problem]:
    """flake8's findings with DRoA's options; `--isolated`, so no configuration file of this host changes them."""
    with tempfile.TemporaryDirectory(prefix="droa-flake8-") as scratch:
        path = os.path.join(scratch, REWARD_FILE)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
        command = [python or sys.executable, "-I", "-m", "flake8", "--isolated", *FLAKE8_OPTIONS,
                   "--format=%(row)d\t%(col)d\t%(code)s\t%(text)s", path]
        try:
            done = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as error:
            return [Problem(name, "", f"cannot run flake8 ({error}), which DRoA's validator runs on it: install the "
                                      f"session package's dependencies (flake8=={FLAKE8_VERSION})")]
    problems: List[Problem] = []
    for line in done.stdout.splitlines():
        parts = line.split("\t", 3)
        if len(parts) == 4 and parts[0].isdigit():
            row, _, code, text = parts
            problems.append(Problem(name, f"line {row}", f"flake8 {code} {text.strip()}: {_FLAKE8_RULE}"))
    if done.returncode not in (0, 1) or (done.returncode == 1 and not problems):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return [Problem(name, "", f"flake8, which DRoA's validator runs on it, failed here ({tail}): install the "
                                  f"session package's dependencies (flake8=={FLAKE8_VERSION})")]
    return problems


def _imports(name: str, tree: ast.Module) -> List[Problem]:
    """DRoA's allow-list applies to every import statement, wherever it is; and an import that runs while
    reward_function is called fails its test that calls the function with `__import__` replaced."""
    problems: List[Problem] = []
    allowed = ", ".join(ALLOWED_IMPORTS)

    def visit(node: ast.AST, in_function: bool) -> None:
        modules: List[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [("." * node.level) + (node.module or "")]
        where = f"line {getattr(node, 'lineno', 0)}"
        for module in modules:
            top = module.split(".")[0]
            if top not in ALLOWED_IMPORTS:
                problems.append(Problem(name, where, f"imports {module or '.'}; DRoA allows only {allowed}"))
            elif in_function:
                problems.append(Problem(name, where, f"imports {module} inside a function; DRoA refuses imports "
                                                     "that run when reward_function is called: import it at the "
                                                     "top of the file"))
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return problems


def _calls(name: str, tree: ast.Module) -> List[Problem]:
    """DRoA's builtins test names every call and attribute by its dotted chain (`math.sqrt`) and refuses the
    forbidden calls. Its walk follows a chain only through names, calls and attributes: a call or attribute on
    anything else (`", ".join(x)`, `params["waypoints"].index(w)`, `(a + b).real`) makes it fail with
    "can only join an iterable", which refuses the file too."""
    problems: List[Problem] = []
    forbidden = ", ".join(FORBIDDEN_CALLS)

    def chain(node: ast.AST, tail: List[str]) -> Optional[List[str]]:
        if isinstance(node, ast.Name):
            return [node.id] + tail
        if isinstance(node, ast.Call):
            for argument in node.args:
                walk(argument)
            return chain(node.func, tail)
        if isinstance(node, ast.Attribute):
            return chain(node.value, [node.attr] + tail)
        return None

    def walk(node: ast.AST) -> None:
        if isinstance(node, (ast.Call, ast.Attribute)):
            names = chain(node, [])
            where = f"line {getattr(node, 'lineno', 0)}"
            if names is None:
                code = _source_of(node)
                problems.append(Problem(name, where, f"`{code}`: a call or attribute on something other than a "
                                                     "name; DRoA's validator fails on it (\"can only join an "
                                                     "iterable\") and refuses the file: assign it to a name first"))
            elif ".".join(names) in FORBIDDEN_CALLS:
                problems.append(Problem(name, where, f"calls {names[0]}(); DRoA refuses calls of {forbidden}"))
            return
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(tree)
    return problems


def _source_of(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - only a label for the message
        return type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _strings(name: str, source: str) -> List[Problem]:
    problems: List[Problem] = []
    for word in FORBIDDEN_STRINGS:
        at = source.find(word)
        if at < 0:
            continue
        line = source.count("\n", 0, at) + 1
        start = source.rfind("\n", 0, at) + 1
        end = source.find("\n", at)
        context = source[start: end if end >= 0 else None].strip()[:60]
        problems.append(Problem(name, f"line {line}", f"contains {word!r} ({context!r}); DRoA refuses any reward "
                                                      "function whose text contains it, in comments and longer "
                                                      "names too"))
    return problems


def _signature(name: str, tree: ast.Module) -> List[Problem]:
    definitions = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "reward_function"]
    if not definitions:
        return []
    args = definitions[-1].args
    count = (len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs) + (args.vararg is not None)
             + (args.kwarg is not None))
    if count == 1:
        return []
    return [Problem(name, f"line {definitions[-1].lineno}", f"reward_function has {count} parameters; DRoA needs "
                                                             "exactly one: def reward_function(params)")]


# --- training_params.yaml, model_metadata.json, ip/hyperparameters.json --------------------------------------


def track_direction(params: Mapping[str, Any]) -> Tuple[str, str]:
    """(track, direction) as DRoA's import reads them from training_params.yaml."""
    track = str(params.get("WORLD_NAME") or "")
    directions = TRACK_DIRECTIONS.get(track, ())
    if len(directions) == 1:
        return track, directions[0]
    return track, CLOCKWISE if params.get("TRACK_DIRECTION_CLOCKWISE") is True else COUNTER_CLOCKWISE


def check_training_params(params: Mapping[str, Any]) -> List[Problem]:
    """The track, car and object-avoidance rules of DRoA's import, on training_params.yaml as it is uploaded
    (models.droa.droa_training_params: WORLD_NAME without _cw/_ccw, TRACK_DIRECTION_CLOCKWISE a boolean)."""
    return _track(params) + _car(params) + _objects(params)


def _track(params: Mapping[str, Any]) -> List[Problem]:
    track, direction = track_direction(params)
    directions = TRACK_DIRECTIONS.get(track)
    if directions is None:
        close = difflib.get_close_matches(track, list(TRACK_DIRECTIONS), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return [Problem(PARAMS_FILE, "WORLD_NAME", f"DRoA has no track {track!r}{hint}; expected one of its "
                                                   f"{len(TRACK_DIRECTIONS)} tracks (it refuses the import)")]
    if direction not in directions:
        return [Problem(PARAMS_FILE, "TRACK_DIRECTION_CLOCKWISE", f"{track} is trained {direction} here; DRoA "
                                                                  f"enables it only {' and '.join(directions)}")]
    return []


def _car(params: Mapping[str, Any]) -> List[Problem]:
    shell = params.get("BODY_SHELL_TYPE")
    if shell != DEEPRACER_SHELL:
        if shell and shell not in CAR_SHELLS:
            return [Problem(PARAMS_FILE, "BODY_SHELL_TYPE", f"{shell!r} is no shell DRoA knows; it imports the car "
                                                            "as DEEPRACER in WHITE", "warning")]
        return []
    color = params.get("CAR_COLOR")
    if color in (None, ""):
        return []
    if not isinstance(color, str):
        return [Problem(PARAMS_FILE, "CAR_COLOR", f"expected a colour name, got {color!r}; DRoA's import fails on "
                                                  "anything but text")]
    upper = color.upper()
    if upper in CAR_COLORS and upper not in DEEPRACER_COLORS:
        return [Problem(PARAMS_FILE, "CAR_COLOR", f"{color}: DRoA's DEEPRACER shell comes only in "
                                                  f"{', '.join(c.title() for c in DEEPRACER_COLORS)} (it refuses "
                                                  f"the import: car shell DEEPRACER is not available in colour "
                                                  f"{upper})")]
    if upper not in CAR_COLORS:
        return [Problem(PARAMS_FILE, "CAR_COLOR", f"{color!r} is no colour DRoA knows; it imports the car in "
                                                  "WHITE", "warning")]
    return []


def _objects(params: Mapping[str, Any]) -> List[Problem]:
    if params.get("RACE_TYPE") != "OBJECT_AVOIDANCE":
        return []
    problems: List[Problem] = []
    count = params.get("NUMBER_OF_OBSTACLES")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_OBJECTS:
        problems.append(Problem(PARAMS_FILE, "NUMBER_OF_OBSTACLES", f"expected a whole number from 1 to "
                                                                    f"{MAX_OBJECTS} for OBJECT_AVOIDANCE, got "
                                                                    f"{count!r} (DRoA refuses the import)"))
        count = None
    positions = params.get("OBJECT_POSITIONS")
    if params.get("RANDOMIZE_OBSTACLE_LOCATIONS") is True or not positions:
        return problems
    if not isinstance(positions, list) or not all(isinstance(item, str) for item in positions):
        return problems + [Problem(PARAMS_FILE, "OBJECT_POSITIONS", f"expected a list of \"fraction,lane\" texts, "
                                                                    f"got {positions!r} (DRoA's import fails on it)")]
    fractions: List[float] = []
    for index, item in enumerate(positions):
        text = item.split(",")[0].strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            problems.append(Problem(PARAMS_FILE, f"OBJECT_POSITIONS[{index}]", f"expected \"fraction,lane\", got "
                                                                               f"{item!r}"))
        else:
            fractions.append(value)
    if len(fractions) != len(positions):
        return problems
    if count is not None and count != len(positions):
        problems.append(Problem(PARAMS_FILE, "OBJECT_POSITIONS", f"{len(positions)} positions for {count} objects; "
                                                                 "DRoA needs one position per object"))
    fractions.sort()
    if fractions[0] < FIRST_OBJECT_AT:
        problems.append(Problem(PARAMS_FILE, "OBJECT_POSITIONS", f"the first object is at {fractions[0]:g} of the "
                                                                 f"lap; DRoA needs {FIRST_OBJECT_AT:g} or later"))
    if fractions[-1] > LAST_OBJECT_AT:
        problems.append(Problem(PARAMS_FILE, "OBJECT_POSITIONS", f"the last object is at {fractions[-1]:g} of the "
                                                                 f"lap; DRoA needs {LAST_OBJECT_AT:g} or earlier"))
    gaps = [(a, b) for a, b in zip(fractions, fractions[1:]) if b - a < MIN_OBJECT_GAP - 1e-9]
    if gaps:
        a, b = gaps[0]
        problems.append(Problem(PARAMS_FILE, "OBJECT_POSITIONS", f"objects at {a:g} and {b:g} are {b - a:.2f} of "
                                                                 f"the lap apart; DRoA needs {MIN_OBJECT_GAP:g} or "
                                                                 "more between neighbours"))
    return problems


def check_model_metadata(metadata: Mapping[str, Any], hyperparameters: Mapping[str, Any]) -> List[Problem]:
    """SAC's rules and the continuous action space, as DRoA's ImportModel handler checks them."""
    problems: List[Problem] = []
    algorithm = metadata.get("training_algorithm")
    space_type = metadata.get("action_space_type")
    if algorithm == "sac" and space_type == "discrete":
        problems.append(Problem(METADATA_FILE, "action_space_type", "SAC needs a continuous action space; DRoA "
                                                                    "refuses SAC with a discrete one"))
    episodes = hyperparameters.get("num_episodes_between_training")
    if algorithm == "sac" and (isinstance(episodes, bool) or not isinstance(episodes, (int, float))
                               or episodes != 1):
        problems.append(Problem(HYPERPARAMETERS_FILE, "num_episodes_between_training",
                                f"expected the number 1 for SAC, got {episodes!r} (DRoA compares it with 1 "
                                "strictly and refuses the import)"))
    space = metadata.get("action_space")
    if space_type == "continuous" and isinstance(space, Mapping):
        for key in ("speed", "steering_angle"):
            bounds = space.get(key)
            if not isinstance(bounds, Mapping):
                problems.append(Problem(METADATA_FILE, f"action_space.{key}", "expected {low, high} for a "
                                                                              "continuous action space (DRoA's "
                                                                              "import fails without it)"))
                continue
            low, high = bounds.get("low"), bounds.get("high")
            if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low >= high:
                problems.append(Problem(METADATA_FILE, f"action_space.{key}", f"low {low} is not below high {high}; "
                                                                              "DRoA refuses the import"))
    return problems


def check_import(reward_source: str, params: Mapping[str, Any], metadata: Mapping[str, Any],
                 hyperparameters: Mapping[str, Any], *, python: Optional[str] = None) -> List[Problem]:
    """Every rule of DRoA's import on an exported model's files (training_params.yaml as it is uploaded)."""
    return (check_reward_function(reward_source, python=python) + check_training_params(params)
            + check_model_metadata(metadata, hyperparameters))


__all__: Sequence[str] = [
    "ALLOWED_IMPORTS", "CAR_SHELLS", "FORBIDDEN_CALLS", "FORBIDDEN_STRINGS", "TRACK_DIRECTIONS",
    "check_import", "check_model_metadata", "check_reward_function", "check_training_params", "run_flake8",
    "track_direction",
]
