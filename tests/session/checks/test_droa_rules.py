"""DRoA's import rules (session/checks/droa_rules.py), each against the stand-in's own rendering of DRoA's rule
(tests/session/droa_standin.py, written separately from DRoA's source): what one refuses, the other must too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from session.checks import droa_rules
from tests.session.droa_standin import TRACKS, handler_refusal, reward_function_finding
from tests.shared_data import LOGS
from tests.shared_data import TRACKS as TRACK_FOLDER

TRACK_FILES = {path.stem: path.stem for path in TRACK_FOLDER.glob("*.npy")}  # the simulator's routes we have

DEFAULT_REWARD = (Path(__file__).resolve().parents[3] / "session" / "defaults" / "reward_function.py").read_text()
DRFC_METADATA = json.loads((LOGS / "drfc-2022-single-worker" / "model" / "model_metadata.json").read_text())
DRFC_HYPERPARAMETERS = json.loads((LOGS / "drfc-2022-single-worker" / "ip" / "hyperparameters.json").read_text())
CLEAN = "import math\n\n\ndef reward_function(params):\n    return float(math.fabs(params['speed']))\n"

# (reward function, a word the finding's line holds): each refused by DRoA's validator.
REFUSED_REWARDS = {
    "a banned word in a comment": (CLEAN + "# we load nothing\n", "'load'"),
    "a banned word inside a name": (CLEAN.replace("return", "saved = 1\n    return"), "'save'"),
    "a module off the allow-list": ("import os\n" + CLEAN, "imports os"),
    "a from-import off the allow-list": ("from collections import deque\n" + CLEAN, "imports collections"),
    "an unused import (flake8 F401)": ("import random\n" + CLEAN, "F401"),
    "one blank line before a def (flake8 E302)": (CLEAN.replace("\n\n\ndef", "\n\ndef"), "E302"),
    "no space after a comma (flake8 E231)": (CLEAN.replace("return", "x = [1,2]\n    return float(x[0])\n    "
                                                           "return"), "E231"),
    "an undefined name (flake8 F821)": (CLEAN.replace("math.fabs(", "fabs("), "F821"),
    "a continuation line flake8 ignores by default (E128)": (
        CLEAN.replace("return float(", "value = max(1,\n        2)\n    return value + float("), "E128"),
    "a forbidden call": (CLEAN.replace("return", "print(eval('1'))\n    return"), "calls eval()"),
    "a method of a literal": (CLEAN.replace("return", "name = ', '.join(['a'])\n    print(name)\n    return"),
                              "can only join an iterable"),
    "a method of a subscript": (CLEAN.replace("return", "at = params['waypoints'].index((0, 0))\n    print(at)\n"
                                              "    return"), "can only join an iterable"),
    "two parameters": (CLEAN.replace("(params)", "(params, extra=None)"), "2 parameters"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_REWARDS))
def test_reward_function_droa_refuses_is_an_error(case):
    source, expected = REFUSED_REWARDS[case]
    assert reward_function_finding(source), f"the stand-in (DRoA) accepts {case}"  # the case is real
    problems = droa_rules.check_reward_function(source)
    assert problems and all(p.is_error and p.file == "reward_function.py" for p in problems)
    assert any(expected in str(p) for p in problems), [str(p) for p in problems]
    assert all(p.where.startswith("line ") for p in problems)


@pytest.mark.parametrize("source", [CLEAN, DEFAULT_REWARD])
def test_reward_function_droa_accepts_has_no_finding(source):
    assert reward_function_finding(source) == ""
    assert droa_rules.check_reward_function(source) == []


def test_every_finding_is_listed_not_only_the_first():
    source = "import os\n\ndef reward_function(params, other):\n    # load\n    return eval('1')\n"
    text = "\n".join(str(p) for p in droa_rules.check_reward_function(source))
    for expected in ("imports os", "E302", "F401", "calls eval()", "'load'", "2 parameters"):
        assert expected in text, expected


def test_banned_words_are_case_sensitive_as_in_droa():
    source = CLEAN + "# Loaded and Saved differ from the banned words in case\n"
    assert reward_function_finding(source) == ""
    assert droa_rules.check_reward_function(source) == []


def test_flake8_runs_with_droas_options_not_this_hosts(tmp_path, monkeypatch):
    (tmp_path / "setup.cfg").write_text("[flake8]\nignore = E,F\n")
    monkeypatch.chdir(tmp_path)
    assert [p.message.split()[1] for p in droa_rules.run_flake8("import os\n")] == ["F401"]


def test_flake8_missing_is_an_error_not_a_pass(tmp_path):
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'No module named flake8' >&2\nexit 1\n")
    python.chmod(0o755)
    [problem] = droa_rules.run_flake8("import os\n", python=str(python))
    assert problem.is_error and "No module named flake8" in str(problem) and "flake8==7.3.0" in str(problem)


def params(**values):
    base = {"WORLD_NAME": "reInvent2019_wide", "TRACK_DIRECTION_CLOCKWISE": True, "BODY_SHELL_TYPE": "deepracer",
            "CAR_COLOR": "Red", "RACE_TYPE": "TIME_TRIAL"}
    base.update(values)
    return base


def test_the_track_list_is_droas():
    assert {track: set(directions) for track, directions in droa_rules.TRACK_DIRECTIONS.items()} == TRACKS
    assert len(droa_rules.TRACK_DIRECTIONS) == 62  # 29 both ways, 8 clockwise only, 25 counter-clockwise only


REFUSED_PARAMS = {
    "a simulator track DRoA does not have": (params(WORLD_NAME=TRACK_FILES["Straight_track"]), "WORLD_NAME"),
    "a misspelt track": (params(WORLD_NAME="reInvent2019_wlde"), "WORLD_NAME"),
    "a DeepRacer colour DRoA lacks": (params(CAR_COLOR="Pink"), "CAR_COLOR"),
    "too many objects": (params(RACE_TYPE="OBJECT_AVOIDANCE", NUMBER_OF_OBSTACLES=7), "NUMBER_OF_OBSTACLES"),
    "no objects": (params(RACE_TYPE="OBJECT_AVOIDANCE", NUMBER_OF_OBSTACLES=0), "NUMBER_OF_OBSTACLES"),
    "positions not one per object": (params(RACE_TYPE="OBJECT_AVOIDANCE", NUMBER_OF_OBSTACLES=3,
                                            OBJECT_POSITIONS=["0.2,1", "0.5,-1"]), "OBJECT_POSITIONS"),
    "the first object too early": (params(RACE_TYPE="OBJECT_AVOIDANCE", NUMBER_OF_OBSTACLES=2,
                                          OBJECT_POSITIONS=["0.05,1", "0.5,-1"]), "OBJECT_POSITIONS"),
    "the last object too late": (params(RACE_TYPE="OBJECT_AVOIDANCE", NUMBER_OF_OBSTACLES=2,
                                        OBJECT_POSITIONS=["0.2,1", "0.95,-1"]), "OBJECT_POSITIONS"),
    "objects too close": (params(RACE_TYPE="OBJECT_AVOIDANCE", NUMBER_OF_OBSTACLES=2,
                                 OBJECT_POSITIONS=["0.5,-1", "0.4,1"]), "OBJECT_POSITIONS"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_PARAMS))
def test_training_params_droa_refuses_are_errors(case):
    given, key = REFUSED_PARAMS[case]
    assert handler_refusal(given, DRFC_METADATA, DRFC_HYPERPARAMETERS), f"the stand-in (DRoA) accepts {case}"
    problems = [p for p in droa_rules.check_training_params(given) if p.is_error]
    assert problems and all(p.file == "training_params.yaml" for p in problems)
    assert any(p.where == key for p in problems), [str(p) for p in problems]


@pytest.mark.parametrize("given", [
    params(),
    params(WORLD_NAME="Mexico_track", TRACK_DIRECTION_CLOCKWISE=False),
    params(WORLD_NAME="Albert", TRACK_DIRECTION_CLOCKWISE=False),  # one direction: DRoA ignores the flag
    params(WORLD_NAME="2022_july_open", TRACK_DIRECTION_CLOCKWISE=True),
    params(BODY_SHELL_TYPE="f1_car_tron_05", CAR_COLOR="Pink"),  # another shell: the id names its colour
    params(RACE_TYPE="OBJECT_AVOIDANCE", NUMBER_OF_OBSTACLES=3, OBJECT_POSITIONS=["0.07,1", "0.2,-1", "0.9,1"]),
    params(RACE_TYPE="OBJECT_AVOIDANCE", NUMBER_OF_OBSTACLES=2, RANDOMIZE_OBSTACLE_LOCATIONS=True,
           OBJECT_POSITIONS=["0.01,1"]),
])
def test_training_params_droa_accepts_have_no_error(given):
    assert handler_refusal(given, DRFC_METADATA, DRFC_HYPERPARAMETERS) == ""
    assert [p for p in droa_rules.check_training_params(given) if p.is_error] == []


def test_what_droa_changes_silently_is_a_warning():
    problems = droa_rules.check_training_params(params(BODY_SHELL_TYPE="rocket"))
    assert [p.severity for p in problems] == ["warning"] and "DEEPRACER in WHITE" in str(problems[0])


SAC = {"training_algorithm": "sac", "action_space_type": "continuous",
       "action_space": {"speed": {"low": 0.5, "high": 3.0}, "steering_angle": {"low": -30, "high": 30}}}


@pytest.mark.parametrize("metadata, hyperparameters, where", [
    (SAC, {"num_episodes_between_training": "1"}, "num_episodes_between_training"),
    (SAC, {"num_episodes_between_training": 20}, "num_episodes_between_training"),
    (SAC, {}, "num_episodes_between_training"),
    ({**SAC, "action_space_type": "discrete", "action_space": []}, {"num_episodes_between_training": 1},
     "action_space_type"),
    ({**SAC, "action_space": {"speed": {"low": 3.0, "high": 1.0}, "steering_angle": {"low": -30, "high": 30}}},
     {"num_episodes_between_training": 1}, "action_space.speed"),
])
def test_sac_and_action_space_rules(metadata, hyperparameters, where):
    assert handler_refusal(params(), metadata, hyperparameters), "the stand-in (DRoA) accepts it"
    problems = droa_rules.check_model_metadata(metadata, hyperparameters)
    assert [p.where for p in problems] == [where]


@pytest.mark.parametrize("episodes", [1, 1.0])
def test_sac_with_one_episode_between_training_passes(episodes):
    hyperparameters = {**DRFC_HYPERPARAMETERS, "num_episodes_between_training": episodes}
    assert handler_refusal(params(), SAC, hyperparameters) == ""
    assert droa_rules.check_model_metadata(SAC, hyperparameters) == []
    assert droa_rules.check_model_metadata(DRFC_METADATA, DRFC_HYPERPARAMETERS) == []  # PPO: 20 is fine
