"""`session.checks.sizing`: episodes per worker, round robin and steps per iteration (issue 12).

Every expected number is worked out here from the simulator's rule (cited in sizing.py), not read off the code:
worker k plays E // N episodes plus one when k <= E mod N; a worker's start moves episodes x distance of a lap per
iteration; a lap is length / speed x 15 steps; the trainer keeps 10,000 steps (shallow network), 3,000 (deeper)
or DR_TRAIN_MAX_STEPS_PER_ITERATION.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from session.checks.sizing import action_speeds, episodes_per_worker, size_run, step_cap
from session.core.config import load_config

SYSTEM = "DR_CLOUD=aws\nDR_SIMAPP_VERSION=6.0.4-gpu\n"
TRACK = "reInvent2019_track"
LENGTHS = {TRACK: 20.0}  # a 20 m lap: 20 / 1 m/s x 15 = 300 steps; at 1.5 m/s 200; at 2 m/s 150


def run_config(tmp_path: Path, run_env: str = "", workers: int = 1, worker_files: Optional[dict[int, str]] = None):
    (tmp_path / "system.env").write_text(SYSTEM + f"DR_WORKERS={workers}\n")
    (tmp_path / "run.env").write_text(f"DR_WORLD_NAME={TRACK}\n" + run_env)
    for number, text in (worker_files or {}).items():
        (tmp_path / f"worker-{number}.env").write_text(text)
    return load_config(tmp_path / "run.env", tmp_path / "system.env", environ={}).run


def metadata(*speeds: float, network: str = "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW") -> dict:
    return {"action_space": [{"steering_angle": 0, "speed": s} for s in speeds], "neural_network": network}


def sized(tmp_path, episodes, workers, speeds=(1.0,), run_env="", algorithm="clipped_ppo", **kwargs):
    run = run_config(tmp_path, run_env, workers, kwargs.pop("worker_files", {}))
    return size_run(run, workers, {"num_episodes_between_training": episodes}, metadata(*speeds, **kwargs),
                    LENGTHS, algorithm=algorithm)


@pytest.mark.parametrize("episodes, workers, expected", [
    (30, 3, [10, 10, 10]),
    (20, 3, [7, 7, 6]),    # 20 = 3 x 6 + 2: the first two workers play one more
    (21, 4, [6, 5, 5, 5]),  # 21 = 4 x 5 + 1
    (2, 3, [1, 1, 0]),     # fewer episodes than workers: worker 3 plays none
    (1, 1, [1]),
])
def test_episodes_per_worker(episodes, workers, expected):
    assert episodes_per_worker(episodes, workers) == expected


def test_balanced_run_explains_itself_and_has_no_finding(tmp_path):
    sizing = sized(tmp_path, 30, 3, speeds=(1.0, 2.0), run_env="DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST=0.1\n")
    assert sizing.problems == ()
    lines = sizing.lines()
    assert lines[0] == "sizing: 3 workers x 10 episodes = 30 episodes per iteration"
    assert lines[1] == ("sizing: round-robin advance 0.1: each worker starts 10% of the lap further on after every "
                        "training episode, so 10 episodes per iteration move the start 100% of a lap (a full lap: "
                        "the evaluations after each iteration start at the same place)")
    assert "all 3 workers begin at DR_TRAIN_START_POSITION_OFFSET 0" in lines[2]
    # mean speed 1.5 m/s: 20 / 1.5 x 15 = 200 steps a lap; 30 laps = 6,000 steps
    assert "at the actions' mean speed 1.5 m/s is ~200 steps" in lines[3]
    assert "an iteration is ~6,000 steps; the trainer keeps at most 10,000" in lines[3]
    assert sizing.steps.fastest_lap_steps == 150  # 20 / 2 x 15
    assert sizing.as_dict()["per_worker"][2] == {
        "worker": 3, "episodes": 10, "world_name": TRACK, "round_robin_advance_dist": 0.1,
        "change_start_position": True, "start_position_offset": 0.0, "lap_moved_per_iteration": 1.0,
        "lap_steps": 200}


def test_fewer_episodes_than_workers_is_an_error_naming_the_idle_worker(tmp_path):
    sizing = sized(tmp_path, 2, 3, run_env="DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST=1\n")
    [problem] = [p for p in sizing.problems if p.is_error]
    assert problem.where == "num_episodes_between_training"
    assert "is 2, fewer than the 3 workers" in problem.message and "worker 3 would idle" in problem.message
    assert "Exiting excess worker" in problem.message
    assert sizing.idle == 1 and sizing.lines()[0].endswith("worker 3 would play none")


def test_as_many_episodes_as_workers_is_no_error(tmp_path):
    sizing = sized(tmp_path, 3, 3, run_env="DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST=1\n")
    assert sizing.problems == ()


def test_uneven_share_is_a_warning(tmp_path):
    sizing = sized(tmp_path, 20, 3, run_env="DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST=0.05\n")
    uneven = [p for p in sizing.problems if p.where == "num_episodes_between_training"]
    assert [p.severity for p in uneven] == ["warning"]
    assert "workers 1, 2 play 7 episodes, the others 6" in uneven[0].message and "e.g. 21" in uneven[0].message
    assert not any(p.is_error for p in sizing.problems)


def test_round_robin_that_is_not_one_lap_is_a_warning(tmp_path):
    sizing = sized(tmp_path, 30, 3)  # DRfC's default distance 0.05: 10 x 0.05 = half a lap
    [problem] = sizing.problems
    assert (problem.severity, problem.where) == ("warning", "DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST")
    assert "moves the start of worker 1 50% of a lap" in problem.message
    assert "a distance of 0.1" in problem.message


def test_without_change_start_there_is_no_round_robin(tmp_path):
    sizing = sized(tmp_path, 30, 3, run_env="DR_TRAIN_CHANGE_START_POSITION=False\n")
    assert sizing.problems == ()
    assert "every episode starts at 0% of the lap" in sizing.lines()[1]


def test_each_worker_config_is_judged_with_its_own_distance(tmp_path):
    sizing = sized(tmp_path, 20, 2, run_env="DR_TRAIN_MULTI_CONFIG=True\n",
                   worker_files={2: "DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST=0.1\n"})
    # worker 1: 10 x 0.05 = 0.5 lap (warned); worker 2: 10 x 0.1 = 1 lap (fine)
    [problem] = sizing.problems
    assert "0.05 with 10 episodes per iteration moves the start of worker 1 50%" in problem.message
    assert [share.advance for share in sizing.shares] == [0.05, 0.1]
    assert "worker 2 starts 10% of the lap further on" in sizing.lines()[2]


def test_sac_keeps_one_worker(tmp_path):
    sizing = sized(tmp_path, 20, 2, algorithm="sac")
    errors = [p for p in sizing.problems if p.is_error]
    assert [(p.file, p.where) for p in errors] == [("model_metadata.json", "training_algorithm")]
    assert "worker 2 would idle" in errors[0].message
    assert sizing.episodes == 1 and [s.episodes for s in sizing.shares] == [1, 0]
    assert not [p for p in sized(tmp_path, 20, 1, algorithm="sac", run_env="DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST=1\n"
                                 ).problems]


def test_more_steps_than_the_cap_is_a_warning_with_what_fits(tmp_path):
    # 1 m/s: 300 steps a lap; 40 laps = 12,000 > 10,000; 10,000 / 300 = 33.3: 33 episodes fit, 7 thrown away
    sizing = sized(tmp_path, 40, 2)
    [problem] = sizing.problems
    assert problem.severity == "warning" and "~12,000 steps" in problem.message
    assert "last ~7 episodes" in problem.message and "about 33 episodes fit" in problem.message


def test_deeper_networks_have_a_3000_step_cap(tmp_path):
    # 1 m/s: 300 steps a lap; 20 laps = 6,000 > 3,000; 3,000 / 300 = 10 fit
    sizing = sized(tmp_path, 20, 1, network="DEEP_CONVOLUTIONAL_NETWORK")
    [problem] = sizing.problems
    assert "over the 3,000 the trainer keeps" in problem.message and "about 10 episodes fit" in problem.message


@pytest.mark.parametrize("cap, network, expected", [
    (None, None, 10_000), (None, "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW", 10_000),
    (None, "DEEP_CONVOLUTIONAL_NETWORK", 3_000), (None, "DEEP_CONVOLUTIONAL_NETWORK_DEEP", 3_000),
    (5_000, "DEEP_CONVOLUTIONAL_NETWORK", 5_000),
])
def test_step_cap(cap, network, expected):
    assert step_cap(cap, network)[0] == expected


def test_a_cap_below_one_lap_is_an_error(tmp_path):
    # 1 m/s is also the top speed: 300 steps a lap, over a cap of 299; the first episode alone passes it
    sizing = sized(tmp_path, 20, 1, run_env="DR_TRAIN_MAX_STEPS_PER_ITERATION=299\n")
    [problem] = [p for p in sizing.problems if p.is_error]
    assert problem.where == "DR_TRAIN_MAX_STEPS_PER_ITERATION" and "run.env" in problem.file
    assert "~300 steps even at the top speed 1 m/s" in problem.message and "No rollout data" in problem.message


def test_a_cap_of_exactly_one_lap_is_a_warning_only(tmp_path):
    # cap 300 = one lap: the first episode fits, the other 19 (20 x 300 = 6,000 steps) are thrown away
    sizing = sized(tmp_path, 20, 1, run_env="DR_TRAIN_MAX_STEPS_PER_ITERATION=300\n")
    [problem] = sizing.problems
    assert problem.severity == "warning" and "last ~19 episodes" in problem.message


def test_a_raised_cap_above_ten_thousand_steps_warns_about_memory(tmp_path):
    sizing = sized(tmp_path, 40, 2, run_env="DR_TRAIN_MAX_STEPS_PER_ITERATION=20000\n")
    [problem] = sizing.problems  # 12,000 steps: within the raised cap, above the ~10,000 guide
    assert problem.severity == "warning" and "~12,000 steps" in problem.message and "memory" in problem.message


def test_no_track_length_means_no_estimate(tmp_path):
    run = run_config(tmp_path)
    sizing = size_run(run, 1, {"num_episodes_between_training": 20}, metadata(1.0), {})
    assert sizing.steps.per_iteration is None and sizing.problems == ()
    assert "not estimated (no track file for reInvent2019_track)" in sizing.lines()[-1]


def test_unusable_episode_counts_leave_the_sizing_to_the_file_checks(tmp_path):
    run = run_config(tmp_path)
    for bad in (0, 2.5, "x", None, True):
        assert size_run(run, 1, {"num_episodes_between_training": bad}, metadata(1.0), LENGTHS) is None
    assert size_run(run, 1, {}, metadata(1.0), LENGTHS).episodes == 20  # the simulator's default
    assert size_run(run, 1, None, metadata(1.0), LENGTHS).episodes == 20  # no file: the same default
    assert size_run(run, 1, ["not", "an", "object"], metadata(1.0), LENGTHS) is None


@pytest.mark.parametrize("data, expected", [
    (metadata(0.5, 1.0, 1.5), (1.0, 1.5)),
    (metadata(5.0), (4.0, 4.0)),  # the simulator clamps to 4 m/s
    ({"action_space": {"steering_angle": {"low": -30, "high": 30}, "speed": {"low": 0.5, "high": 3.5}}}, (2.0, 3.5)),
    ({"action_space": [{"speed": "fast"}]}, None),
    (None, None),
])
def test_action_speeds(data, expected):
    assert action_speeds(data) == expected
