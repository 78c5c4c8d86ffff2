"""The report's views on the real logs in ../shared/data: where episodes ended (exits), reward and speed per
waypoint, and step timing. Each number is worked out again here from the files with the csv module and plain
Python, not with the loader, then compared with what the views say."""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from session.insight.analysis import episodes, load
from session.insight.analysis.along_track import by_waypoint, exits, exits_by_section, sections, waypoint_count
from session.insight.analysis.timing import step_timing
from session.insight.report import as_json, build, write
from tests.shared_data import LOGS, TRACKS

DRFC_1 = LOGS / "drfc-2022-single-worker"
DRFC_3 = LOGS / "drfc-2022-three-workers"
REINVENT_BASE_WAYPOINTS = 118  # reinvent_base.npy: 119 rows, a loop whose last row repeats the first


def csv_rows(folder: Path) -> list[dict]:
    """Every simtrace row of a DRfC model folder, with its worker (the folder 0/, 1/ ... or 0) and iteration."""
    rows = []
    for path in sorted(folder.rglob("training-simtrace/*-iteration.csv")):
        worker = int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append({**row, "worker": worker, "iteration": int(path.name.split("-")[0])})
    return rows


def by_episode(rows: list[dict]) -> dict[tuple, list[dict]]:
    found: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        found[(row["worker"], row["iteration"], int(row["episode"]))].append(row)
    for steps in found.values():
        steps.sort(key=lambda row: float(row["steps"]))
    return found


@pytest.fixture(scope="module")
def single():
    return build(DRFC_1, tracks=TRACKS)


def test_exits_are_the_last_steps_of_the_episodes_that_left_the_track(single):
    episodes_ = by_episode(csv_rows(DRFC_1))
    ended = sorted((float(steps[-1]["X"]), float(steps[-1]["Y"]), int(steps[-1]["closest_waypoint"]))
                   for steps in episodes_.values() if steps[-1]["episode_status"] == "off_track")
    table = single.views.exits
    assert len(table) == len(ended) == 498
    assert set(table["status"]) == {"off_track"}
    ours = sorted(zip(table["x"].round(4), table["y"].round(4), table["closest_waypoint"]))
    assert ours == sorted((round(x, 4), round(y, 4), w) for x, y, w in ended)


def test_exits_are_counted_per_run_of_waypoints_in_driving_order(single):
    episodes_ = by_episode(csv_rows(DRFC_1))
    counts = [0] * 20
    for steps in episodes_.values():
        if steps[-1]["episode_status"] == "off_track":
            waypoint = int(steps[-1]["closest_waypoint"]) % REINVENT_BASE_WAYPOINTS  # 118 is waypoint 0 again
            # 20 runs of 118 waypoints: 5.9 each, edges rounded: 0, 6, 12, 18, 24, 30, 35, 41, ...
            counts[next(i for i in range(20) if waypoint <= round((i + 1) * 118 / 20) - 1)] += 1
    found = single.views.sections
    assert [s["exits"] for s in found] == counts and sum(counts) == 498
    assert (found[9]["first"], found[9]["last"], found[9]["exits"]) == (53, 58, 50)  # the worst: the hairpin
    assert found[0]["first"] == 0 and found[-1]["last"] == 117
    assert [(s["first"], s["last"]) for s in found] == sections(118, 20)
    assert all(b["first"] == a["last"] + 1 for a, b in zip(found, found[1:]))


def test_reward_and_speed_per_waypoint_leave_out_the_prepare_step(single):
    total, speed, count = defaultdict(float), defaultdict(float), defaultdict(int)
    for row in csv_rows(DRFC_1):
        if row["episode_status"] == "prepare":
            continue
        waypoint = int(row["closest_waypoint"]) % REINVENT_BASE_WAYPOINTS
        total[waypoint] += float(row["reward"])
        speed[waypoint] += float(row["throttle"])
        count[waypoint] += 1
    places = single.views.places
    assert list(places["waypoint"]) == list(range(REINVENT_BASE_WAYPOINTS))
    assert list(places["steps"]) == [count[w] for w in range(REINVENT_BASE_WAYPOINTS)]
    for w in range(REINVENT_BASE_WAYPOINTS):
        assert math.isclose(places["mean_reward"][w], total[w] / count[w], rel_tol=1e-9)
        assert math.isclose(places["mean_speed"][w], speed[w] / count[w], rel_tol=1e-9)


def test_a_waypoint_nobody_reached_is_empty_not_zero():
    steps = pd.DataFrame({"closest_waypoint": [0, 0, 2], "reward": [1.0, 3.0, 5.0], "speed": [1.0, 1.0, 2.0],
                          "x": [0.0, 0.0, 1.0], "y": [0.0, 0.0, 1.0],
                          "episode_status": ["prepare", "in_progress", "in_progress"]})
    table = by_waypoint(steps, 4)
    assert list(table["steps"]) == [1, 0, 1, 0]
    assert table["mean_reward"][0] == 3.0 and math.isnan(table["mean_reward"][1])
    # a loop's closing vertex (index 4 of 4 waypoints) is waypoint 0
    closing = steps.assign(closest_waypoint=[4, 4, 4])
    assert list(by_waypoint(closing, 4)["steps"]) == [2, 0, 0, 0]
    # the loader's categorical status is read by its codes: the same table, with or without `prepare` among the
    # categories
    categorical = steps.astype({"episode_status": "category"})
    pd.testing.assert_frame_equal(by_waypoint(categorical, 4), table)
    no_prepare = steps.assign(episode_status=pd.Categorical(["in_progress", "in_progress", "off_track"]))
    assert list(by_waypoint(no_prepare, 4)["steps"]) == [2, 0, 1, 0]
    # a 2019 line has no status (NaN): its steps count, as text or as categories, rather than none at all
    for unknown in (steps.assign(episode_status=[None, None, None]),
                    steps.assign(episode_status=pd.Categorical([None, None, None])),
                    steps.assign(episode_status=pd.Categorical([None, "prepare", None]))):
        assert list(by_waypoint(unknown, 4)["steps"]) == ([2, 0, 1, 0] if unknown["episode_status"].isna().all()
                                                          else [1, 0, 1, 0])


def test_step_timing_matches_the_intervals_between_steps_of_each_episode():
    rows = csv_rows(DRFC_3)
    intervals = defaultdict(list)
    for (worker, _, _), steps in by_episode(rows).items():
        times = [float(row["tstamp"]) for row in steps]
        intervals[worker] += [b - a for a, b in zip(times, times[1:]) if b - a > 0]
    table = step_timing(load(DRFC_3).steps).set_index("worker")
    assert sorted(table.index) == [0, 1, 2]
    for worker, values in intervals.items():
        row = table.loc[worker]
        assert row["intervals"] == len(values)
        assert math.isclose(row["mean_ms"], statistics.fmean(values) * 1000, rel_tol=1e-9)
        assert math.isclose(row["steps_per_sim_s"], 1 / statistics.fmean(values), rel_tol=1e-9)
        assert math.isclose(row["p95_ms"], float(np.percentile(values, 95)) * 1000, rel_tol=1e-9)
        assert math.isclose(row["max_ms"], max(values) * 1000, rel_tol=1e-9)
        late = sum(1 for v in values if v > 0.1) / len(values)
        assert math.isclose(row["late_share"], late, rel_tol=1e-9)
        assert row["flags"] == ()  # a real, healthy run: 15.0 steps a second, 1-3 % late
        assert 14.9 < row["steps_per_sim_s"] < 15.1 and 0.01 < late < 0.04


def test_the_real_time_factor_comes_from_the_wall_clock_of_simapp_6_logs():
    """DRoA 2026 (community simapp 6) writes wall_clock: 10,393 intervals at ~0.089 s of wall time each."""
    table = step_timing(load(LOGS / "droa-2026-continuous-ppo-training" / "simulation-robomaker.log").steps)
    row = table.iloc[0]
    assert row["intervals"] == 10_393
    assert 0.70 < row["real_time_factor"] < 0.78 and 11.0 < row["steps_per_wall_s"] < 11.5
    assert row["flags"] == ()  # DRoA's own service runs like this: not flagged


def synthetic(interval: float, wall_interval: float, steps: int = 200) -> pd.DataFrame:
    t = np.arange(steps) * interval
    return pd.DataFrame({"source": "s", "phase": "training", "stream": "", "worker": 0, "unique_episode": 0,
                         "steps": np.arange(steps) + 1, "tstamp": t, "wall_clock": 1.7e9 + np.arange(steps) * wall_interval})


def test_dropped_frames_and_a_slow_simulation_are_flagged_apart():
    assert step_timing(synthetic(1 / 15, 1 / 15))["flags"][0] == ()
    dropped = step_timing(synthetic(2 / 15, 2 / 15))
    assert dropped["flags"][0] == ("dropped frames",) and dropped["late_share"][0] == 1.0
    slow = step_timing(synthetic(1 / 15, 2 / 15))
    assert slow["flags"][0] == ("slower than real time",) and math.isclose(slow["real_time_factor"][0], 0.5, rel_tol=1e-6)
    # without wall_clock (simapp before 6) nothing is said about real time
    older = synthetic(1 / 15, 2 / 15).assign(wall_clock=np.nan)
    assert step_timing(older)["flags"][0] == () and math.isnan(step_timing(older)["real_time_factor"][0])


def test_the_report_json_carries_the_views_and_the_text_names_the_worst_section(single, tmp_path):
    names = write(single, tmp_path / "out", dpi=40)
    assert {"exits.png", "along_track.png", "timing.png"} <= set(names)
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data == json.loads(json.dumps(as_json(single, names)))
    assert data["exits"]["total"] == 498 and len(data["exits"]["by_section"]) == 20
    assert len(data["along_track"]) == REINVENT_BASE_WAYPOINTS
    assert data["step_timing"][0]["flags"] == [] and data["step_timing"][0]["worker"] == 0
    assert data["exits"]["by_section"][9] == {"first": 53, "last": 58, "exits": 50, "share": round(50 / 498, 6)}


def test_without_a_route_file_the_waypoints_are_those_seen():
    steps = load(DRFC_1).steps
    assert waypoint_count(None, steps) == 119  # 0..118 seen: nothing says 118 is the closing vertex
    table = exits(steps, episodes(steps))
    assert sum(s["exits"] for s in exits_by_section(table, 119)) == len(table)


DOC_PICTURES = Path(__file__).resolve().parents[3] / "docs" / "img" / "report"


def save_doc_picture(name: str, data: bytes) -> None:
    """Write a picture the docs show, only when it changed (a checkout stays clean when nothing did)."""
    DOC_PICTURES.mkdir(parents=True, exist_ok=True)
    target = DOC_PICTURES / name
    if not target.is_file() or target.read_bytes() != data:
        target.write_bytes(data)


def test_the_pictures_in_the_docs_are_the_ones_the_report_draws(single):
    """docs/training.md shows these; written here, from the real single-worker run, so the docs cannot drift."""
    from session.insight import report_views

    for plot in report_views.render(single, single.views, dpi=80):
        save_doc_picture(plot.name, plot.png)
        assert (DOC_PICTURES / plot.name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"along_track.png", "exits.png", "timing.png"} <= {p.name for p in DOC_PICTURES.glob("*.png")}


def test_an_evaluations_trials_agree_with_the_simulators_own_evaluation_metrics(tmp_path):
    """DRoA 2026's evaluation: its evaluation-metrics.json (the simulator's count per trial) against the trace."""
    folder = LOGS / "droa-2026-evaluation"
    report = build(folder, tracks=TRACKS)
    metrics = json.loads((folder / "evaluation-metrics.json").read_text())["metrics"]
    data = as_json(report)
    assert report.phase == "evaluation" and len(data["trials"]) == len(metrics) == 3
    for trial, truth in zip(data["trials"], sorted(metrics, key=lambda m: m["trial"])):
        assert trial["trial"] == truth["trial"]
        assert trial["off_track"] == truth["off_track_count"] and trial["crashed"] == truth["crash_count"]
        assert abs(trial["lap_s"] - truth["elapsed_time_in_milliseconds"] / 1000) < 0.1  # sim time of the steps
        assert trial["progress"] == truth["completion_percentage"] == 100
    assert [t["off_track"] for t in data["trials"]] == [1, 0, 0]
    from session.insight.report import render_text

    text = render_text(report)
    assert "  TRIAL   LAP TIME  PROGRESS  OFF TRACK  CRASHES" in text
    assert "          1   30.825 s   100.0 %          1        0" in text
    write(report, tmp_path / "out", dpi=40)
    assert "<h2>Trials</h2>" in (tmp_path / "out" / "index.html").read_text()


def test_progress_shows_only_on_a_terminal_and_only_once_the_report_has_taken_a_while():
    from session.insight.report_progress import SHOW_AFTER_S, ReportProgress

    now = [100.0]
    quiet = ReportProgress(clock=lambda: now[0], terminal=False)
    now[0] += 5
    quiet(1, 10)
    quiet.step("drawing plots")
    assert not quiet.shown  # no terminal: nothing, however long
    shown = ReportProgress(clock=lambda: now[0], terminal=True)
    shown(1, 10)
    assert not shown.shown  # quick so far
    now[0] += SHOW_AFTER_S + 0.1
    with shown:
        shown(2, 10)
        task = shown._shown.tasks[0]
        assert shown.shown and (task.description, task.completed, task.total) == ("reading logs", 2, 10)
        shown.step("working out the views")
        task = shown._shown.tasks[0]
        assert (task.description, task.total, task.fields["count"]) == ("working out the views", None, "")
        shown.step("drawing plots")
        shown.drew("progress.png")
        shown.drew("track.png")
        task = shown._shown.tasks[0]
        assert (task.description, task.completed, task.fields["count"]) == ("drawing plots", 2,
                                                                            "2 drawn, the last track.png")
    assert not shown._shown.live.is_started  # gone at the end


def test_a_report_tells_its_progress_what_it_is_doing_from_the_load_to_the_last_plot(tmp_path):
    from session.insight.report_progress import ReportProgress

    seen: list[str] = []

    class Recorded(ReportProgress):
        def _update(self, what, done, total, count):
            super()._update(what, done, total, count)
            line = f"{what}: {count}" if what == "drawing plots" else what
            if not seen or seen[-1] != line:
                seen.append(line)

    progress = Recorded(terminal=False)
    report = build(DRFC_1, tracks=TRACKS, progress=progress)
    names = write(report, tmp_path / "out", dpi=40, progress=progress)
    plots = [name for name in names if name.endswith(".png")]
    assert seen == ["reading logs", "working out the numbers", "working out the views", "drawing plots: ",
                    *(f"drawing plots: {n} drawn, the last {name}" for n, name in enumerate(plots, start=1))]
    assert len(plots) == 8


def test_unused_actions_are_shown_as_unused_from_the_model_metadata(tmp_path):
    from session.insight.report_plots import action_counts
    from session.insight.report_sources import discrete_actions

    folder = tmp_path / "run"
    shutil.copytree(DRFC_1, folder)
    metadata = json.loads((folder / "model" / "model_metadata.json").read_text())
    declared = len(metadata["action_space"])
    metadata["action_space"].append({"steering_angle": 0.0, "speed": 3.5, "index": declared})  # never chosen
    (folder / "model" / "model_metadata.json").write_text(json.dumps(metadata))
    report = build(folder, tracks=TRACKS)
    assert report.actions is not None and len(report.actions) == declared + 1
    steps = report.steps[(report.steps["phase"] == "training") & (report.steps["action"] >= 0)]
    counts = action_counts(steps, report.actions)
    assert len(counts) == declared + 1 and counts.loc[declared, "n"] == 0 and counts.loc[declared, "speed"] == 3.5
    by_hand = defaultdict(int)
    for row in csv_rows(DRFC_1):
        by_hand[int(row["action"])] += 1
    assert {int(k): int(v) for k, v in counts["n"].items() if v} == dict(by_hand)
    assert discrete_actions(b'{"action_space": {"steering_angle": {"low": -30}}}') is None  # continuous
    assert discrete_actions(b"not json") is None
