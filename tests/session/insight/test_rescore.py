"""`report --reward`: the logged steps replayed through another reward function (session.insight.rescore).

The DRfC single-worker run in ../shared/data was trained with the simulator's default reward function (the
centre-line example of the DeepRacer docs): replaying its steps through that function must give back every
logged reward, which checks the rebuilt params (distance from centre, track width, off track) against the real
simulator's. Other candidates are checked against sums worked out here from the CSV files with the csv module.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from session.cli.main import main
from session.insight.report import ReportError, build, run
from session.insight.rescore import MAX_STEPS, RescoreError, for_report, rescore
from tests.session.insight.test_report_views import save_doc_picture
from tests.shared_data import LOGS, TRACKS

DRFC_1 = LOGS / "drfc-2022-single-worker"
ITERATIONS = ("0", "1", "2", "3")
CENTRE_LINE = '''
def reward_function(params):
    track_width = params["track_width"]
    distance_from_center = params["distance_from_center"]
    marker_1, marker_2, marker_3 = 0.1 * track_width, 0.25 * track_width, 0.5 * track_width
    if distance_from_center <= marker_1:
        reward = 1.0
    elif distance_from_center <= marker_2:
        reward = 0.5
    elif distance_from_center <= marker_3:
        reward = 0.1
    else:
        reward = 1e-3
    return float(reward)
'''
SPEED = "def reward_function(params):\n    return params['speed'] * (0.0 if params['is_offtrack'] else 1.0)\n"


@pytest.fixture(scope="module")
def part(tmp_path_factory):
    """The run's first four iterations (about 4,700 steps), as the simulator wrote them."""
    folder = tmp_path_factory.mktemp("run") / "training-simtrace"
    folder.mkdir()
    for n in ITERATIONS:
        shutil.copy(DRFC_1 / "training-simtrace" / f"{n}-iteration.csv", folder)
    return folder.parent


@pytest.fixture(scope="module")
def report(part):
    return build(part, track="reinvent_base", tracks=TRACKS)


def candidate(tmp_path: Path, source: str, name: str = "candidate.py") -> Path:
    path = tmp_path / name
    path.write_text(source)
    return path


def csv_episodes(folder: Path):
    rows = defaultdict(list)
    for path in sorted(folder.glob("training-simtrace/*-iteration.csv")):
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                rows[(int(path.name.split("-")[0]), int(row["episode"]))].append(row)
    return rows


def test_the_runs_own_reward_function_gives_back_every_logged_reward(report, part, tmp_path):
    found = for_report(report, candidate(tmp_path, CENTRE_LINE))
    assert found.steps == sum(1 for rows in csv_episodes(part).values() for row in rows
                              if row["episode_status"] != "prepare")
    assert found.episodes_replayed == found.episodes_total == 80
    differences = (found.episodes["old"] - found.episodes["new"]).abs()
    assert differences.max() < 1e-6  # the CSV keeps every reward it logged to 4 decimals: 1.0, 0.5, 0.1, 0.001
    data = found.as_json()
    assert data["correlation"] == 1.0
    assert all(row["old"] == row["new"] for row in data["per_waypoint"] if row["old"] is not None)


def test_another_candidate_gets_what_it_would_have_given(report, part, tmp_path):
    expected = {}
    for (iteration, episode), rows in csv_episodes(part).items():
        expected[(iteration, episode)] = sum(float(r["throttle"]) for r in rows
                                             if r["episode_status"] not in ("prepare", "off_track"))
    found = for_report(report, candidate(tmp_path, SPEED))
    got = {(int(row.iteration), int(row.unique_episode)): row.new for row in found.episodes.itertuples()}
    assert len(got) == len(expected) == 80
    assert sorted(round(v, 6) for v in got.values()) == sorted(round(v, 6) for v in expected.values())
    assert found.as_json()["correlation"] < 0.99  # not the run's function


def test_steps_without_a_status_are_all_replayed(report, part, tmp_path):
    """A 2019 line (15 fields) has no episode_status: nothing tells its prepare step apart, so every step is
    replayed and counted, not none."""
    import pandas as pd

    from session.insight.analysis.along_track import waypoint_count
    from session.insight.rescore import driven_view

    steps = report.steps[report.steps["phase"] == report.phase]
    unknown = steps.assign(episode_status=pd.Categorical([None] * len(steps)))
    view = driven_view(report.track.track, unknown)
    found = rescore(unknown, view, candidate(tmp_path, SPEED), waypoints=waypoint_count(view, unknown))
    assert found.steps == len(steps) == sum(len(rows) for rows in csv_episodes(part).values())
    assert found.per_waypoint["old"].notna().any()


def test_a_candidate_that_fails_is_one_line_naming_it(report, tmp_path):
    broken = candidate(tmp_path, "def reward_function(params):\n    return params['no_such_key']\n", "broken.py")
    with pytest.raises(RescoreError, match=r"^--reward .*broken\.py: .*no_such_key"):
        for_report(report, broken)
    not_python = candidate(tmp_path, "def reward_function(params)\n    return 1\n", "syntax.py")
    with pytest.raises(RescoreError, match=r"^--reward .*syntax\.py: "):
        for_report(report, not_python)
    with pytest.raises(RescoreError, match="no such file"):
        for_report(report, tmp_path / "missing.py")


def test_without_the_runs_route_there_is_nothing_to_replay_on(part, tmp_path):
    bare = build(part)  # no track files, no name: no route
    with pytest.raises(RescoreError, match="needs the route file"):
        for_report(bare, candidate(tmp_path, SPEED))


def test_a_route_the_steps_do_not_fit_is_refused(report, tmp_path):
    from session.checks.tracks import Track

    steps = report.steps
    other = Track.load(TRACKS / "Oval_track.npy")
    from session.insight.rescore import driven_view

    with pytest.raises(RescoreError, match="do not match route Oval_track"):
        driven_view(other, steps)


def test_a_long_run_is_replayed_in_whole_episodes_evenly(report, tmp_path):
    from session.insight.rescore import driven_view

    steps = report.steps[report.steps["phase"] == "training"]
    found = rescore(steps, driven_view(report.track.track, steps), candidate(tmp_path, SPEED), waypoints=118,
                    max_steps=1000)
    assert 0 < found.episodes_replayed < found.episodes_total == 80
    assert found.notes and "evenly across the run" in found.notes[0]
    assert MAX_STEPS >= 100_000


def test_the_command_writes_the_plot_and_the_numbers_and_exits_2_on_a_bad_candidate(part, tmp_path, capsys):
    good = candidate(tmp_path, SPEED)
    out = tmp_path / "out"
    assert main(["report", str(part), "--tracks", str(TRACKS), "--track", "reinvent_base", "--reward", str(good),
                 "--out", str(out)]) == 0
    assert (out / "rescore.png").read_bytes()[:4] == b"\x89PNG"
    save_doc_picture("rescore.png", (out / "rescore.png").read_bytes())  # the docs show this one
    data = json.loads((out / "report.json").read_text())
    assert data["rescore"]["reward_file"] == "candidate.py" and len(data["rescore"]["per_iteration"]) == 4
    assert "re-scored       " in capsys.readouterr().out
    bad = candidate(tmp_path, "def reward_function(params):\n    return float('nan')\n", "nan.py")
    assert main(["report", str(part), "--tracks", str(TRACKS), "--track", "reinvent_base", "--reward", str(bad),
                 "--out", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "nan.py" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_metrics_alone_cannot_be_re_scored(tmp_path):
    with pytest.raises(ReportError, match="no steps to replay"):
        run([str(DRFC_1 / "metrics")], lambda: None, tracks=str(TRACKS), reward=str(candidate(tmp_path, SPEED)),
            out=str(tmp_path / "o"))
