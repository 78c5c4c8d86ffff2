"""Reward-function checks: static reading, the params the simulator passes, and the dry run in a subprocess."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import pytest

from session.checks.reward import (
    ALLOWED_MODULES,
    PARAM_KEYS,
    ParamCases,
    _progress,
    build_cases,
    check_reward_function,
    check_reward_source,
    dry_run,
)
from session.checks.tracks import TrackLibrary
from tests.shared_data import TRACKS

HERE = Path(__file__).resolve().parents[1]
BROKEN = HERE / "data" / "broken"
DEFAULT_REWARD = HERE.parents[1] / "session" / "defaults" / "reward_function.py"
LIBRARY = TrackLibrary(TRACKS)
CALLS = 120  # enough for every kind of episode (lap, off track, normal) in both directions


@functools.lru_cache(maxsize=None)
def cases(track: str = "reInvent2019_track", calls: int = CALLS, race_type: str = "TIME_TRIAL") -> ParamCases:
    return build_cases(LIBRARY.load(track), calls=calls, race_type=race_type)


def write(tmp_path: Path, source: str, name: str = "reward_function.py") -> Path:
    path = tmp_path / name
    path.write_text(source)
    return path


# --- the default reward function --------------------------------------------------------------------------------


@pytest.mark.parametrize("track", ["reInvent2019_track", "2024_reinvent_champ_cw", "Straight_track", "Albert"])
def test_the_default_reward_function_passes_every_check(track):
    result = check_reward_function(DEFAULT_REWARD, LIBRARY.load(track), calls=200)
    assert result.problems == []
    assert result.ok
    assert result.stats.completed == result.stats.calls == 200
    assert 0 < result.stats.reward_min < result.stats.reward_max <= 1.0
    assert result.stats.mean_call_ms < 5


def test_without_a_track_only_the_static_checks_run():
    result = check_reward_function(DEFAULT_REWARD, None)
    assert result.problems == [] and result.stats is None


# --- the params -------------------------------------------------------------------------------------------------


def test_params_have_every_key_with_the_simulators_types():
    built = cases()
    assert len(built) == CALLS
    n = len(built.waypoints["forward"])
    for i in range(len(built)):
        params = built.params(i)
        assert set(params) == set(PARAM_KEYS)
        for key in ("x", "y", "heading", "distance_from_center", "projection_distance", "progress", "steps",
                    "speed", "steering_angle", "track_width", "track_length", "sim_time"):
            assert type(params[key]) is float, key
        for key in ("all_wheels_on_track", "is_left_of_center", "is_reversed", "is_offtrack", "is_crashed",
                    "object_in_camera"):
            assert type(params[key]) is bool, key
        assert type(params["waypoints"]) is list and all(type(p) is tuple for p in params["waypoints"])
        prev_index, next_index = params["closest_waypoints"]
        assert type(prev_index) is int and type(next_index) is int and 0 <= prev_index < n and 0 <= next_index < n
        assert -180 < params["heading"] <= 180
        assert 0 <= params["progress"] <= 100
        assert params["steps"] >= 2.0 and params["steps"].is_integer()
        assert params["closest_objects"] == [0, 0] and params["objects_location"] == []


def test_params_cover_starts_finishes_off_track_both_directions_and_the_last_waypoint():
    built = cases()
    everything = [built.params(i) for i in range(len(built))]
    starts = [p for p in everything if p["steps"] == 2.0]
    assert len(starts) >= 4 and all(p["progress"] == 0.0 for p in starts)
    assert any(p["distance_from_center"] == 0.0 for p in starts)
    assert any(p["progress"] == 100.0 for p in everything)
    assert any(p["is_offtrack"] and not p["all_wheels_on_track"] for p in everything)
    assert any(not p["all_wheels_on_track"] and not p["is_offtrack"] for p in everything)
    assert {p["is_reversed"] for p in everything} == {True, False}
    assert {p["is_left_of_center"] for p in everything} == {True, False}
    n = len(built.waypoints["forward"])
    assert any(p["closest_waypoints"] == [n - 2, n - 1] for p in everything)
    assert any(p["steering_angle"] == 0.0 for p in everything)
    reversed_waypoints = next(p for p in everything if p["is_reversed"])["waypoints"]
    assert reversed_waypoints == built.waypoints["forward"][::-1]


def test_steps_grow_within_an_episode_and_the_offtrack_step_ends_it():
    everything = [cases().params(i) for i in range(CALLS)]
    for before, after in zip(everything, everything[1:]):
        if after["steps"] != 2.0:
            assert after["steps"] > before["steps"]
            assert not before["is_offtrack"]
            assert after["sim_time"] > before["sim_time"]


def test_params_are_deterministic_per_seed():
    track = LIBRARY.load("Oval_track")
    assert build_cases(track, calls=50, seed=3).cases == build_cases(track, calls=50, seed=3).cases
    assert build_cases(track, calls=50, seed=3).cases != build_cases(track, calls=50, seed=4).cases


def test_one_direction_only_and_the_action_space_are_respected():
    track = LIBRARY.load("reinvent_base")
    forward = build_cases(track, calls=80, reverse=False, action_space=[
        {"steering_angle": -15, "speed": 1.0}, {"steering_angle": 15, "speed": 2.5}])
    assert not any(c["is_reversed"] for c in forward.cases)
    assert {(c["steering_angle"], c["speed"]) for c in forward.cases} <= {(-15.0, 1.0), (15.0, 2.5)}
    backward = build_cases(track, calls=80, reverse=True, action_space={
        "steering_angle": {"low": -20, "high": 20}, "speed": {"low": 1.0, "high": 3.0}})
    assert all(c["is_reversed"] for c in backward.cases)
    assert all(-20 <= c["steering_angle"] <= 20 and 1.0 <= c["speed"] <= 3.0 for c in backward.cases)


def test_object_avoidance_params_describe_the_objects():
    built = cases(race_type="OBJECT_AVOIDANCE")
    everything = [built.params(i) for i in range(len(built))]
    for params in everything:
        count = len(params["objects_location"])
        assert count == 3
        for key in ("objects_left_of_center", "objects_speed", "objects_heading", "objects_distance",
                    "objects_distance_from_center"):
            assert len(params[key]) == count, key
        assert all(type(v) is list and len(v) == 2 for v in params["objects_location"])
        assert all(0 <= i < count for i in params["closest_objects"])
        assert params["objects_speed"] == [0.0] * 3 and params["objects_heading"] == [0.0] * 3
    assert any(p["is_crashed"] for p in everything)
    assert {v for p in everything for v in p["objects_left_of_center"]} == {True, False}
    bots = cases(race_type="HEAD_TO_BOT", calls=40)
    assert all(s > 0 for s in bots.params(5)["objects_speed"])
    assert any(h != 0.0 for h in bots.params(5)["objects_heading"])


@pytest.mark.parametrize("current, previous, expected", [
    (0.0, 0.0, 0.0),        # the start line
    (0.25, 20.0, 25.0),
    (-0.01, 98.0, 99.0),    # just before the finish, started ahead of waypoint 0
    (0.001, 99.5, 100.0),   # crossed the finish line: capped at 100
    (0.98, 1.0, -2.0),      # driving backwards over the start line
])
def test_progress_is_wrap_corrected_like_the_simulator(current, previous, expected):
    assert _progress(current, previous) == pytest.approx(expected)


def test_calls_must_be_positive():
    with pytest.raises(ValueError):
        build_cases(LIBRARY.load("Oval_track"), calls=0)


# --- static checks ----------------------------------------------------------------------------------------------


def test_a_missing_or_empty_file(tmp_path):
    assert "not found" in str(check_reward_source(tmp_path / "reward_function.py")[0])
    assert "is empty" in str(check_reward_source(write(tmp_path, "\n\n"))[0])
    (tmp_path / "latin1.py").write_bytes(b"def reward_function(params):\n    return 1.0  # \xe9\n")
    assert str(check_reward_source(tmp_path / "latin1.py")[0]) == "latin1.py: line 2: is not UTF-8 text; save " \
                                                                   "the file as UTF-8"


def test_a_syntax_error_names_its_line(tmp_path):
    path = write(tmp_path, "def reward_function(params):\n    x = (1,\n    return x\n")
    [problem] = check_reward_source(path)
    assert problem.where.startswith("line 2") and "SyntaxError" in problem.message


def test_allowed_imports_and_assigned_functions_pass(tmp_path):
    source = ("from __future__ import annotations\n" + "".join(f"import {m}\n" for m in ALLOWED_MODULES)
              + "from math import sqrt\n"
              + "def _make():\n    def f(params):\n        return sqrt(4.0)\n    return f\n"
              + "reward_function = _make()\n")
    assert check_reward_source(write(tmp_path, source)) == []


def test_a_standard_library_import_is_a_console_warning_and_the_dry_run_still_runs(tmp_path):
    # The simulator imports the file with no allow-list (simapp markov/boto/s3/files/reward_function.py); a fault
    # behind such an import must still be found.
    source = ("import bisect\nimport json\nimport logging\nimport time\nfrom collections import deque\n"
              "LAST = deque(maxlen=3)\n"
              "def reward_function(params):\n"
              "    LAST.append(params['progress'])\n"
              "    i = bisect.bisect_left([25.0, 50.0, 75.0], params['progress'])\n"
              "    return 2e5 if params['progress'] == 100 else float(i + 1)\n")
    result = check_reward_function(write(tmp_path, source), LIBRARY.load("Oval_track"), calls=60)
    warnings = [p for p in result.problems if not p.is_error]
    assert [p.where for p in warnings] == ["line 1", "line 2", "line 3", "line 4", "line 5"]
    assert all("the DeepRacer console and DeepRacer on AWS allow only math, random, numpy, scipy, shapely "
               "(the simulator imports any module it has)" in p.message for p in warnings)
    [error] = [p for p in result.problems if p.is_error]
    assert "returned 200000, outside [-100000, 100000]" in error.message
    assert result.stats is not None and result.stats.completed == 60


@pytest.mark.parametrize("module, expected", [
    ("sklearn", "imports sklearn, which the simulator image does not have"),
    ("my_racing_line", "imports my_racing_line, which the simulator image does not have"),
    ("imp", "imports imp, which Python 3.12 (the simulator's) no longer has"),
])
def test_a_module_the_simulator_cannot_import_is_still_an_error(tmp_path, module, expected):
    source = f"import {module}\ndef reward_function(params):\n    return 1.0\n"
    [problem] = check_reward_source(write(tmp_path, source))
    assert problem.is_error and problem.where == "line 1" and problem.message.startswith(expected)


def test_modules_of_the_simulator_image_beyond_the_allow_list_are_warnings(tmp_path):
    source = "import pandas\nfrom tensorflow import math as tfm\ndef reward_function(params):\n    return 1.0\n"
    problems = check_reward_source(write(tmp_path, source))
    assert [(p.where, p.severity) for p in problems] == [("line 1", "warning"), ("line 2", "warning")]


def test_the_dry_run_leaves_no_bytecode_beside_the_reward_function(tmp_path):
    custom_files = tmp_path / "custom_files"
    custom_files.mkdir()
    path = write(custom_files, "import json\ndef reward_function(params):\n    return 1.0 + params['progress']\n")
    result = check_reward_function(path, LIBRARY.load("Oval_track"), calls=5)
    assert result.ok and result.stats.completed == 5
    assert sorted(p.name for p in custom_files.iterdir()) == ["reward_function.py"]


def test_a_keyword_only_argument_without_default_is_an_error(tmp_path):
    [problem] = check_reward_source(write(tmp_path, "def reward_function(params, *, scale):\n    return 1.0\n"))
    assert "requires keyword arguments (scale)" in problem.message


def test_extra_arguments_with_defaults_are_fine(tmp_path):
    assert check_reward_source(write(tmp_path, "def reward_function(params, scale=2.0):\n    return scale\n")) == []


def test_a_function_nested_in_a_class_is_not_found(tmp_path):
    source = "class Reward:\n    def reward_function(self, params):\n        return 1.0\n"
    [problem] = check_reward_source(write(tmp_path, source))
    assert problem.where == "line 2" and "needs it at the top level" in problem.message


def test_a_huge_file_is_a_warning(tmp_path):
    source = "def reward_function(params):\n    return 1.0\n" + "# padding\n" * 15000
    [problem] = check_reward_source(write(tmp_path, source))
    assert problem.severity == "warning" and "at most 140000" in problem.message


# --- the dry run --------------------------------------------------------------------------------------------------


def test_user_code_runs_in_another_process(tmp_path):
    marker = tmp_path / "pid.txt"
    source = (f"import os\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\n"
              "def reward_function(params):\n    return 1.0 + params['progress'] / 100\n")
    result = dry_run(write(tmp_path, source), cases(calls=10), timeout=10)
    assert result.problems == [] and result.stats.completed == 10
    assert int(marker.read_text()) != os.getpid()


def test_printing_and_module_state_work_like_in_the_simulator(tmp_path):
    source = ("calls = []\n"
              "def reward_function(params):\n"
              "    print('step', params['steps'])\n"
              "    calls.append(params['steps'])\n"
              "    params['waypoints'].append((0.0, 0.0))  # a deep copy: the next call does not see it\n"
              "    return float(len(calls)) / 1000 + len(params['waypoints']) / 1e6\n")
    result = dry_run(write(tmp_path, source), cases(calls=30))
    assert result.problems == []
    assert result.stats.reward_max == pytest.approx(30 / 1000 + 155 / 1e6)


def test_an_endless_loop_is_stopped_and_the_call_named(tmp_path):
    source = ("def reward_function(params):\n"
              "    while params['is_offtrack']:\n"
              "        pass\n"
              "    return 1.0 - params['distance_from_center']\n")
    started = time.monotonic()
    result = dry_run(write(tmp_path, source), cases(), timeout=1.5)
    assert time.monotonic() - started < 5
    [problem] = result.problems
    assert "did not return within 1.5 s" in problem.message and "is_offtrack=True" in problem.message
    assert 0 < result.stats.completed < CALLS


def test_numpy_results_are_numbers(tmp_path):
    source = ("import numpy as np\n"
              "def reward_function(params):\n"
              "    points = np.array(params['waypoints'])\n"
              "    return np.float64(1.0 - params['distance_from_center'] / params['track_width']) + 0 * points.size\n")
    result = dry_run(write(tmp_path, source), cases(calls=20))
    assert result.problems == []


def test_a_reward_needing_a_module_this_host_lacks_is_a_warning_not_an_error(tmp_path):
    # A fresh venv without numpy plays a host that lacks it (this test environment has numpy installed).
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    source = "import numpy as np\ndef reward_function(params):\n    return float(np.mean([1.0, 2.0]))\n"
    result = check_reward_function(write(tmp_path, source), LIBRARY.load("Oval_track"), calls=10,
                                   python=str(tmp_path / "bare" / "bin" / "python"))
    [problem] = result.problems
    assert problem.severity == "warning" and "has no numpy" in problem.message
    assert result.ok and result.stats is None


def test_a_missing_or_dead_interpreter_is_reported(tmp_path):
    [problem] = dry_run(DEFAULT_REWARD, cases(calls=5), python=str(tmp_path / "no-python")).problems
    assert problem.is_error and "cannot start Python for the dry run" in problem.message
    [problem] = dry_run(DEFAULT_REWARD, cases(calls=5), python="/bin/false").problems
    assert problem.is_error and "process died before importing the file" in problem.message


# --- the broken corpus ----------------------------------------------------------------------------------------

# file -> (expected substring, severity, options). Static problems stop before the dry run.
REWARD_CORPUS = {
    "rf_syntax_error.py": ("line 1 column 28: SyntaxError: expected ':'", "error", {}),
    "rf_indentation_error.py": ("line 3 column 6: IndentationError: unexpected indent", "error", {}),
    "rf_wrong_name.py": ("defines no top-level reward_function(params); did you mean to name 'reward_func' "
                         "reward_function?", "error", {}),
    "rf_no_function.py": ("defines no top-level reward_function(params)", "error", {}),
    "rf_two_arguments.py": ("requires 2 arguments (params, track); the simulator passes only params", "error", {}),
    "rf_no_argument.py": ("takes no argument", "error", {}),
    "rf_async.py": ("reward_function is async", "error", {}),
    # The console's rules, which the simulator does not apply (issue 10): warnings, and the dry run still runs.
    "rf_import_os.py": ("line 1: warning: imports os; the DeepRacer console and DeepRacer on AWS allow only math, "
                        "random, numpy, scipy, shapely (the simulator imports any module it has)", "warning", {}),
    "rf_import_subprocess.py": ("line 1: warning: imports subprocess", "warning", {}),
    "rf_calls_open.py": ("line 2: warning: calls open()", "warning", {}),
    "rf_relative_import.py": ("line 1: relative import", "error", {}),
    "rf_misspelt_key.py": ("line 3: params['distance_from_centre']: params has no key 'distance_from_centre', so "
                           "every call raises KeyError; did you mean 'distance_from_center'?", "error", {}),
    "rf_misspelt_key_get.py": ("params.get('all_wheels_on_trak'): params has no key 'all_wheels_on_trak', so this "
                               "is always the default; did you mean 'all_wheels_on_track'?", "error", {}),
    "rf_never_returns.py": ("never returns a value", "error", {}),
    "rf_misspelt_key_runtime.py": ("line 3: reward_function raised KeyError: 'track_widht'", "error", {}),
    "rf_returns_none.py": ("reward_function returned None (NoneType), which is not a number", "error", {}),
    "rf_returns_string.py": ("returned 'slow' (str), which is not a number (ValueError: could not convert string "
                             "to float: 'slow')", "error", {}),
    "rf_returns_list.py": ("returned [", "error", {}),
    "rf_nan.py": ("reward_function returned nan on", "error", {}),
    "rf_inf.py": ("reward_function returned inf on", "error", {}),
    "rf_huge.py": ("returned 200001, outside [-100000, 100000]", "error", {}),
    "rf_zero_division_centre.py": ("raised ZeroDivisionError: float division by zero", "error", {}),
    "rf_zero_division_steering.py": ("raised ZeroDivisionError: float division by zero", "error", {}),
    "rf_infinite_loop.py": ("reward_function did not return within 1.5 s at call 1 of", "error", {"timeout": 1.5}),
    "rf_infinite_loop_at_import.py": ("importing the file did not finish within 1.5 s", "error",
                                      {"timeout": 1.5}),
    "rf_waypoints_as_numpy.py": ("raised TypeError: list indices must be integers or slices, not tuple",
                                 "error", {}),
    "rf_waypoint_no_wrap.py": ("raised IndexError: list index out of range (`ahead = waypoints[next_index + 1]`)",
                               "error", {}),
    "rf_objects_in_time_trial.py": ("raised IndexError: list index out of range", "error", {}),
    "rf_math_domain.py": ("raised ValueError: math domain error", "error", {}),
    "rf_steps_as_int.py": ("raised TypeError: 'float' object cannot be interpreted as an integer", "error", {}),
    "rf_import_time_error.py": ("line 1: importing the file failed: NameError: name 'params' is not defined",
                                "error", {}),
    "rf_exit.py": ("raised SystemExit: 1 (`exit(1)`)", "error", {}),
    "rf_returns_numeric_string.py": ("returned a string ('1.0')", "warning", {}),
    "rf_returns_bool.py": ("returned a bool (True)", "warning", {}),
    "rf_slow.py": ("ms per call on average", "warning", {"calls": 12}),
    "rf_constant.py": ("returned the same reward (1) on all 120 calls", "warning", {}),
    "rf_defined_twice.py": ("reward_function is defined 2 times; only the last one (line 5) is used", "warning",
                            {}),
    "rf_import_in_function.py": ("imports math inside a function", "warning", {}),
    "rf_banned_word.py": ("contains 'save'", "warning", {}),
}


def test_the_corpus_table_covers_every_reward_file():
    assert sorted(REWARD_CORPUS) == sorted(p.name for p in BROKEN.glob("rf_*.py"))


@pytest.mark.parametrize("name", sorted(REWARD_CORPUS))
def test_broken_reward_functions(name):
    expected, severity, options = REWARD_CORPUS[name]
    path = BROKEN / name
    problems = check_reward_source(path)
    if not any(p.is_error for p in problems):
        result = dry_run(path, cases(calls=options.get("calls", CALLS)), timeout=options.get("timeout", 10.0))
        problems += result.problems
    matching = [p for p in problems if expected in str(p)]
    assert matching, f"{expected!r} not in {[str(p) for p in problems]}"
    assert matching[0].severity == severity
    assert str(matching[0]).startswith(f"{name}: ")
    if severity == "warning":
        assert not any(p.is_error for p in problems), [str(p) for p in problems]


def test_runtime_failures_show_the_params_that_caused_them():
    result = dry_run(BROKEN / "rf_waypoint_no_wrap.py", cases())
    [problem] = result.problems
    n = len(cases().waypoints["forward"])
    assert f"closest_waypoints=[{n - 2}, {n - 1}] of {n} waypoints" in problem.message
    assert problem.where == "line 8"


def test_a_runtime_key_error_suggests_the_real_key():
    [problem] = dry_run(BROKEN / "rf_misspelt_key_runtime.py", cases(calls=10)).problems
    assert problem.message.endswith("params has no key 'track_widht'; did you mean 'track_width'?")


def test_objects_reward_works_in_object_avoidance():
    result = dry_run(BROKEN / "rf_objects_in_time_trial.py", cases(race_type="OBJECT_AVOIDANCE"))
    assert result.problems == []
    assert result.stats.reward_min == pytest.approx(1e-3) and result.stats.reward_max == 1.0


def test_failures_are_grouped_and_counted():
    [problem] = dry_run(BROKEN / "rf_returns_bool.py", cases()).problems
    assert f"on {CALLS} of {CALLS} calls" in problem.message
    offtrack = sum(case["is_offtrack"] for case in cases().cases)
    [problem] = dry_run(BROKEN / "rf_nan.py", cases()).problems
    assert offtrack >= 1 and f"returned nan on {offtrack} of {CALLS} calls" in problem.message


# --- the working corpus: reward functions in the styles real builders write ---------------------------------------

WORKING = HERE / "data" / "reward_corpus"
# Files that need objects on the track; the others run in a time trial.
RACE_TYPES = {"objects_same_lane.py": "OBJECT_AVOIDANCE", "objects_distance_heading.py": "OBJECT_AVOIDANCE",
              "head_to_bot_overtake.py": "HEAD_TO_BOT"}
# Broken on purpose -> what must be reported (an error each).
BROKEN_IN_CORPUS = {
    "broken_section_lookup.py": "line 9: reward_function raised KeyError: 121",
    "broken_exponential_behind_import.py": "outside [-100000, 100000]",
    "broken_returns_tuple.py": "(tuple), which is not a number",
}
WORKING_FILES = sorted(p.name for p in WORKING.glob("*.py") if p.name not in BROKEN_IN_CORPUS)
CONSOLE_RULES = ("the DeepRacer console and DeepRacer on AWS", "the console/DRoA validator")


def test_the_working_corpus_is_large_and_covers_the_styles():
    assert len(WORKING_FILES) >= 25
    sources = "\n".join((WORKING / name).read_text() for name in WORKING_FILES)
    for needle in ("import numpy", "from scipy", "from shapely", "import bisect", "import time", "import json",
                   "import logging", "from collections", "global ", "class ", "objects_location", "closest_objects"):
        assert needle in sources, needle
    assert max(len((WORKING / name).read_text().splitlines()) for name in WORKING_FILES) > 150  # a racing line


@pytest.mark.parametrize("name", WORKING_FILES)
def test_reward_functions_written_as_builders_write_them_pass(name):
    result = check_reward_function(WORKING / name, LIBRARY.load("reInvent2019_track"), calls=300,
                                   race_type=RACE_TYPES.get(name, "TIME_TRIAL"))
    assert result.ok, [str(p) for p in result.problems]
    assert result.stats is not None and result.stats.completed == 300
    # The only warnings allowed are the retired console's rules, which the simulator does not apply.
    assert all(any(rule in p.message for rule in CONSOLE_RULES) for p in result.problems), \
        [str(p) for p in result.problems]


@pytest.mark.parametrize("name", sorted(BROKEN_IN_CORPUS))
def test_broken_reward_functions_in_the_corpus_fail_for_the_right_reason(name):
    result = check_reward_function(WORKING / name, LIBRARY.load("reInvent2019_track"), calls=300)
    errors = [str(p) for p in result.problems if p.is_error]
    assert len(errors) == 1 and BROKEN_IN_CORPUS[name] in errors[0], errors
    assert errors[0].startswith(f"{name}: ")


def test_a_key_error_of_another_dict_is_not_blamed_on_params():
    result = check_reward_function(WORKING / "broken_section_lookup.py", LIBRARY.load("reInvent2019_track"),
                                   calls=300)
    [error] = [p for p in result.problems if p.is_error]
    assert "params has no key" not in error.message
