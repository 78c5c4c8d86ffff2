"""model_metadata.json and hyperparameters.json checks, and the Problem line a user reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from session.checks.custom_files import (
    HYPERPARAMETER_SPECS,
    check_custom_files,
    check_hyperparameters,
    check_model_metadata,
    load_json,
    training_algorithm_of,
    validate_hyperparameters,
    validate_model_metadata,
)
from session.checks.sizing import size_run
from session.core.config import load_config
from session.core.problems import Problem, errors, warnings
from tests.shared_data import LOGS

HERE = Path(__file__).resolve().parents[1]
BROKEN = HERE / "data" / "broken"
DEFAULTS = HERE.parents[1] / "session" / "defaults"
REAL_MODELS = ["drfc-2022-single-worker", "drfc-2022-three-workers", "console-2022-discrete-ppo"]

CONTINUOUS = {"action_space": {"steering_angle": {"low": -25, "high": 25}, "speed": {"low": 1, "high": 2}},
              "action_space_type": "continuous", "training_algorithm": "sac", "sensor": ["FRONT_FACING_CAMERA"],
              "neural_network": "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW", "version": 6}


# --- Problem -----------------------------------------------------------------------------------------------------


def test_a_problem_is_one_line_naming_file_and_key():
    problem = Problem("model_metadata.json", "action_space[2].speed", "expected a number between 0.1 and 4.0, got 7")
    assert str(problem) == "model_metadata.json: action_space[2].speed: expected a number between 0.1 and 4.0, got 7"
    assert problem.is_error
    warning = Problem("hyperparameters.json", "lr", "is high\nvery high", "warning")
    assert str(warning) == "hyperparameters.json: lr: warning: is high very high"
    assert str(Problem("reward_function.py", "", "is empty")) == "reward_function.py: is empty"
    assert errors([problem, warning]) == [problem] and warnings([problem, warning]) == [warning]
    with pytest.raises(ValueError):
        Problem("f", "", "m", "fatal")  # type: ignore[arg-type]


# --- files that must pass -------------------------------------------------------------------------------------


def test_the_default_custom_files_pass_every_check():
    assert check_custom_files(DEFAULTS) == []
    assert check_model_metadata(DEFAULTS / "model_metadata.json") == []
    assert check_hyperparameters(DEFAULTS / "hyperparameters.json") == []


@pytest.mark.parametrize("folder", REAL_MODELS)
def test_real_model_files_from_drfc_and_the_console_pass(folder):
    assert check_model_metadata(LOGS / folder / "model" / "model_metadata.json") == []
    assert check_hyperparameters(LOGS / folder / "ip" / "hyperparameters.json") == []


def test_a_continuous_sac_model_passes(tmp_path):
    assert validate_model_metadata(CONTINUOUS) == []
    (tmp_path / "model_metadata.json").write_text(json.dumps(CONTINUOUS))
    (tmp_path / "hyperparameters.json").write_text(json.dumps(
        {"batch_size": 64, "lr": 0.0003, "discount_factor": 0.99, "loss_type": "mean squared error",
         "num_episodes_between_training": 1, "sac_alpha": 0.2, "exploration_type": "additive_noise"}))
    assert check_custom_files(tmp_path) == []


def test_the_hyperparameters_are_judged_for_the_algorithm_in_the_metadata(tmp_path):
    (tmp_path / "model_metadata.json").write_text(json.dumps(CONTINUOUS))
    (tmp_path / "hyperparameters.json").write_text(json.dumps({"num_epochs": 5, "num_episodes_between_training": 1}))
    [problem] = check_custom_files(tmp_path)
    assert str(problem) == "hyperparameters.json: num_epochs: warning: is used by clipped_ppo only; ignored with sac"
    assert training_algorithm_of(CONTINUOUS) == "sac"
    assert training_algorithm_of({"training_algorithm": " Clipped_PPO "}) == "clipped_ppo"
    assert training_algorithm_of(None) == "clipped_ppo"


def test_missing_files_are_errors(tmp_path):
    problems = check_custom_files(tmp_path)
    assert [p.file for p in problems] == ["model_metadata.json", "hyperparameters.json"]
    assert all(p.is_error and p.message.startswith("not found at") for p in problems)


def test_values_are_read_the_way_the_simulator_reads_them():
    metadata = dict(CONTINUOUS, training_algorithm="SAC ", action_space_type="Continuous")
    assert validate_model_metadata(metadata) == []
    assert validate_model_metadata(dict(CONTINUOUS, version="4.0")) == []
    assert validate_hyperparameters({"loss_type": "Huber", "exploration_type": "E-Greedy", "batch_size": 64.0}) == []


def test_a_continuous_range_beyond_what_the_simulator_drives_is_a_clamp_warning():
    metadata = dict(CONTINUOUS, action_space={"steering_angle": {"low": -40, "high": 40},
                                              "speed": {"low": 0.5, "high": 5.5}})
    problems = validate_model_metadata(metadata)
    assert [(p.where, p.severity) for p in problems] == [
        ("action_space.steering_angle.low", "warning"), ("action_space.steering_angle.high", "warning"),
        ("action_space.speed.high", "warning")]
    assert problems[2].message == "is 5.5; the simulator clamps speed to 0.1 m/s .. 4 m/s, so the car uses 4 m/s"


# --- the corpus ---------------------------------------------------------------------------------------------------

# file -> (expected line, severity, hyperparameter options). The expected text is the whole `str(problem)`.
CORPUS = {
    # The simulator clamps actions (simapp agent_ctrl/constants.py): a warning saying what the car really does.
    "md_speed_too_high.json": ("md_speed_too_high.json: action_space[2].speed: warning: is 7; the simulator clamps "
                               "speed to 0.1 m/s .. 4 m/s, so the car uses 4 m/s", "warning", {}),
    "md_steering_out_of_range.json": ("md_steering_out_of_range.json: action_space[0].steering_angle: warning: is "
                                      "-45; the simulator clamps steering_angle to -30° .. 30°, so the car uses "
                                      "-30°", "warning", {}),
    "md_speed_string.json": ("md_speed_string.json: action_space[0].speed: expected a number between 0.1 and 4.0, "
                             "got '1.0' (a string)", "error", {}),
    "md_action_missing_speed.json": ("md_action_missing_speed.json: action_space[1].speed: missing", "error", {}),
    "md_missing_action_space.json": ("md_missing_action_space.json: action_space: missing; the simulator "
                                     "requires it", "error", {}),
    "md_empty_action_space.json": ("md_empty_action_space.json: action_space: is empty; list at least two actions",
                                   "error", {}),
    "md_sac_discrete.json": ("md_sac_discrete.json: training_algorithm: sac needs \"action_space_type\": "
                             "\"continuous\" (SAC cannot train a discrete action space)", "error", {}),
    "md_bad_action_space_type.json": ("md_bad_action_space_type.json: action_space_type: expected one of discrete, "
                                      "continuous, got 'continous'; did you mean 'continuous'?", "error", {}),
    "md_bad_algorithm.json": ("md_bad_algorithm.json: training_algorithm: expected one of clipped_ppo, sac, got "
                              "'ppo'; did you mean 'clipped_ppo'?", "error", {}),
    "md_continuous_low_ge_high.json": ("md_continuous_low_ge_high.json: action_space.speed: low (2) must be less "
                                       "than high (1)", "error", {}),
    "md_continuous_missing_high.json": ("md_continuous_missing_high.json: action_space.speed.high: missing",
                                        "error", {}),
    "md_continuous_as_list.json": ("md_continuous_as_list.json: action_space: is a list of actions (a discrete "
                                   "action space) but action_space_type is continuous", "error", {}),
    "md_discrete_as_object.json": ("md_discrete_as_object.json: action_space: is an object of low/high ranges (a "
                                   "continuous action space) but action_space_type is discrete", "error", {}),
    "md_two_cameras.json": ("md_two_cameras.json: sensor: needs exactly one camera", "error", {}),
    "md_no_camera.json": ("md_no_camera.json: sensor: needs exactly one camera (FRONT_FACING_CAMERA, "
                          "STEREO_CAMERAS, LEFT_CAMERA, observation), got none", "error", {}),
    "md_two_lidars.json": ("md_two_lidars.json: sensor: allows at most one lidar, got LIDAR, SECTOR_LIDAR",
                           "error", {}),
    "md_sensor_string.json": ("md_sensor_string.json: sensor: expected a list of sensor names", "error", {}),
    "md_unknown_sensor.json": ("md_unknown_sensor.json: sensor[0]: unknown sensor 'FRONT_CAMERA'; did you mean "
                               "'FRONT_FACING_CAMERA'?", "error", {}),
    "md_missing_sensor.json": ("md_missing_sensor.json: sensor: missing; from version 2 the simulator requires it",
                               "error", {}),
    "md_bad_network.json": ("md_bad_network.json: neural_network: expected one of DEEP_CONVOLUTIONAL_NETWORK_"
                            "SHALLOW, DEEP_CONVOLUTIONAL_NETWORK, DEEP_CONVOLUTIONAL_NETWORK_DEEP, got 'DEEP_"
                            "CONVOLUTIONAL_NETWORK_SHALOW'; did you mean 'DEEP_CONVOLUTIONAL_NETWORK_SHALLOW'?",
                            "error", {}),
    "md_bad_version.json": ("md_bad_version.json: version: expected a version number such as \"5\", got 'five'",
                            "error", {}),
    "md_lidar_sectors.json": ("md_lidar_sectors.json: lidar_config.num_sectors: expected a whole number that "
                              "divides 64, got 7", "error", {}),
    "md_misspelt_key.json": ("md_misspelt_key.json: trainig_algorithm: unknown key, so the setting is not used; "
                             "did you mean 'training_algorithm'?", "error", {}),
    "md_not_object.json": ("md_not_object.json: expected a JSON object {...}, got a list", "error", {}),
    "md_empty.json": ("md_empty.json: is empty; it must hold a JSON object", "error", {}),
    "md_bom.json": ("md_bom.json: starts with a byte-order mark", "error", {}),
    "md_trailing_comma.json": ("md_trailing_comma.json: line 8 column 1: invalid JSON: Expecting property name "
                               "enclosed in double quotes (a trailing comma, a comment or single quotes?)", "error",
                               {}),
    "md_old_version.json": ("md_old_version.json: version: warning: '2' selects older physics", "warning", {}),
    "md_no_version.json": ("md_no_version.json: version: warning: missing: the simulator then assumes version 2",
                           "warning", {}),
    "md_duplicate_key.json": ("md_duplicate_key.json: action_space: warning: appears more than once in the same "
                              "object; the last value wins", "warning", {}),
    "md_duplicate_action.json": ("md_duplicate_action.json: action_space[1]: warning: repeats action_space[0] "
                                 "(steering 0, speed 1)", "warning", {}),
    "hp_comment.json": ("hp_comment.json: line 2 column 5: invalid JSON: Expecting property name enclosed in double "
                        "quotes", "error", {}),
    "hp_lr_text.json": ("hp_lr_text.json: lr: expected a number, got 'fast'", "error", {}),
    "hp_lr_zero.json": ("hp_lr_zero.json: lr: expected a number greater than 0, got 0", "error", {}),
    "hp_lr_nan.json": ("hp_lr_nan.json: lr: expected a number, got nan", "error", {}),
    "hp_lr_high.json": ("hp_lr_high.json: lr: warning: is 0.01, outside the DeepRacer console's range 1e-08 to "
                        "0.001", "warning", {}),
    "hp_lr_numeric_string.json": ("hp_lr_numeric_string.json: lr: warning: is a string ('0.0003'); the trainer "
                                  "converts it, but write a number", "warning", {}),
    "hp_discount_above_one.json": ("hp_discount_above_one.json: discount_factor: expected a number between 0 and 1, "
                                   "got 1.5", "error", {}),
    "hp_beta_negative.json": ("hp_beta_negative.json: beta_entropy: expected a number at least 0, got -0.01",
                              "error", {}),
    "hp_batch_fraction.json": ("hp_batch_fraction.json: batch_size: expected a whole number, got 64.5 (the trainer "
                               "would cut it to 64)", "error", {}),
    "hp_batch_bool.json": ("hp_batch_bool.json: batch_size: expected a whole number, got true", "error", {}),
    "hp_batch_not_allowed.json": ("hp_batch_not_allowed.json: batch_size: warning: is 100; the DeepRacer console "
                                  "allows only 32, 64, 128, 256, 512", "warning", {}),
    "hp_learning_rate_key.json": ("hp_learning_rate_key.json: learning_rate: unknown key, so the setting is not "
                                  "used; did you mean 'lr'?", "error", {}),
    "hp_unknown_key.json": ("hp_unknown_key.json: use_gpu: warning: unknown key, ignored", "warning", {}),
    "hp_job_key.json": ("hp_job_key.json: s3_bucket: warning: is set by the training tooling", "warning", {}),
    "hp_loss_type.json": ("hp_loss_type.json: loss_type: expected one of huber, mean squared error, "
                          "mean_squared_error, got 'hubber'; did you mean 'huber'?", "error", {}),
    "hp_exploration.json": ("hp_exploration.json: exploration_type: expected one of categorical, e-greedy, got "
                            "'epsilon'", "error", {}),
    "hp_epochs_zero.json": ("hp_epochs_zero.json: num_epochs: expected a number at least 1, got 0", "error", {}),
    "hp_epochs_console.json": ("hp_epochs_console.json: num_epochs: warning: is 20, outside the DeepRacer console's "
                               "range 3 to 10", "warning", {}),
    "hp_sac_alpha_with_ppo.json": ("hp_sac_alpha_with_ppo.json: sac_alpha: warning: is used by sac only; ignored "
                                   "with clipped_ppo", "warning", {}),
    "hp_sac_episodes.json": ("hp_sac_episodes.json: num_episodes_between_training: warning: is 20; with sac it "
                             "counts environment steps", "warning", {"training_algorithm": "sac"}),
    "hp_sac_with_epochs.json": ("hp_sac_with_epochs.json: num_epochs: warning: is used by clipped_ppo only; ignored "
                                "with sac", "warning", {"training_algorithm": "sac"}),
    "hp_sac_alpha_high.json": ("hp_sac_alpha_high.json: sac_alpha: expected a number between 0 and 1, got 2.0",
                               "error", {"training_algorithm": "sac"}),
    "hp_episodes_workers.json": ("hp_episodes_workers.json: num_episodes_between_training: warning: is 20, not a "
                                 "multiple of the 3 workers", "warning",
                                 {"workers": 3}),
    "hp_not_object.json": ("hp_not_object.json: expected a JSON object {...}, got a list", "error", {}),
}


def test_the_corpus_table_covers_every_json_file():
    assert sorted(CORPUS) == sorted(p.name for p in BROKEN.glob("*.json"))


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_broken_custom_files(name, tmp_path):
    expected, severity, options = CORPUS[name]
    path = BROKEN / name
    problems = check_model_metadata(path) if name.startswith("md_") else check_hyperparameters(
        path, **{key: value for key, value in options.items() if key != "workers"})
    if "workers" in options:  # how the episodes are shared is the sizing's (session.checks.sizing)
        (tmp_path / "system.env").write_text(f"DR_CLOUD=aws\nDR_SIMAPP_VERSION=6.0.4-gpu\nDR_WORKERS={options['workers']}\n")
        (tmp_path / "run.env").write_text("")
        run = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={}).run
        problems += size_run(run, options["workers"], json.loads(path.read_text()), None,
                             hyperparameters_file=name).problems
    lines = [str(p) for p in problems]
    matching = [p for p in problems if str(p).startswith(expected)]
    assert matching, f"{expected!r} not among {lines}"
    assert matching[0].severity == severity
    if severity == "warning":
        assert not errors(problems), lines


def test_the_same_hyperparameters_pass_with_one_worker():
    assert check_hyperparameters(BROKEN / "hp_episodes_workers.json") == []


def test_json_syntax_errors_give_line_and_column(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_text('{\n  "lr": 0.0003\n  "batch_size": 64\n}\n')
    data, [problem] = load_json(path)
    assert data is None
    assert str(problem) == ("hyperparameters.json: line 3 column 3: invalid JSON: Expecting ',' delimiter (a missing "
                            "comma between two entries?)")


# --- the workers: session.checks.sizing (tests/session/checks/test_sizing.py) --------------------------------


def test_the_file_checks_leave_episodes_per_worker_to_the_sizing(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_text(json.dumps({"num_episodes_between_training": 7}))
    assert check_hyperparameters(path) == []


def test_every_hyperparameter_has_a_spec_and_a_failing_value():
    for key, spec in HYPERPARAMETER_SPECS.items():
        algorithm = "sac" if key == "sac_alpha" else "clipped_ppo"
        bad = "not a number" if spec[0] != "choice" else 7
        problems = validate_hyperparameters({key: bad}, training_algorithm=algorithm)
        assert errors(problems) and errors(problems)[0].where == key, key
