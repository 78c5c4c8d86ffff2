"""session.insight.analysis on the real logs in ../shared/data, against deepracer-utils on the same files.

Expected row counts are worked out here from the raw files by another route than the loader takes (lines
counted with Python's str methods, archives read with tarfile); per-episode numbers are deepracer-utils'
(`DeepRacerLog` + `AnalysisUtils.simulation_agg`) on the same files.
"""

from __future__ import annotations

import contextlib
import csv
import io
import random
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from session.insight.analysis import (
    EPISODE_COLUMNS,
    STEP_COLUMNS,
    AnalysisError,
    TraceTail,
    episodes,
    from_storage,
    load,
    summary,
)
from session.insight.analysis.problems import KEEP
from tests.shared_data import LOGS

DRFC_1 = LOGS / "drfc-2022-single-worker"
DRFC_3 = LOGS / "drfc-2022-three-workers"
DROA = LOGS / "droa-2026-continuous-ppo-training"
DROA_LOG = DROA / "simulation-robomaker.log"
DROA_TAR = DROA / "sample-continous-action-logs.tar.gz"
DROA_EVAL = LOGS / "droa-2026-evaluation"
CONSOLE = LOGS / "console-2022-discrete-ppo"
ROS1 = LOGS / "drfc-ros1-robomaker"
EXPORTS = sorted((LOGS / "console-exports-2022-2023").glob("*.tar.gz"))
TARBALLS = [*EXPORTS, DROA_TAR]
LOG_FILES = sorted(p for p in LOGS.rglob("*.log") if "sagemaker" not in p.name)


# --- counting by hand ---------------------------------------------------------------------------------------------


def csv_rows(data: bytes) -> int:
    return sum(1 for line in data.decode().splitlines()[1:] if line.strip())


def trace_lines(data: bytes) -> int:
    return sum(1 for line in data.decode().splitlines() if "SIM_TRACE_LOG:" in line)


def tar_files(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def folder_expected(folder: Path) -> int:
    """Rows of a sample folder: its simtrace CSVs, and the logs of a phase without CSVs (the loader prefers
    the CSVs, which repeat the log's steps at full precision)."""
    csvs = [p for p in folder.rglob("*.csv")]
    phases = {"evaluation" if "evaluation" in str(p.relative_to(folder)) else "training" for p in csvs}
    logs = [p for p in folder.rglob("*.log") if "sagemaker" not in p.name
            and ("evaluation" if "evaluation" in str(p.relative_to(folder)) else "training") not in phases]
    return sum(csv_rows(p.read_bytes()) for p in csvs) + sum(trace_lines(p.read_bytes()) for p in logs)


# --- deepracer-utils ----------------------------------------------------------------------------------------------


def theirs_episodes(steps: pd.DataFrame, *, evaluation: bool = False) -> pd.DataFrame:
    from deepracer.logs import AnalysisUtils

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if evaluation:
            return AnalysisUtils.simulation_agg(steps, "stream" if "stream" in steps else "iteration", "episode",
                                                is_eval=True)
        return AnalysisUtils.simulation_agg(steps, "iteration", "unique_episode")


def theirs_folder(folder: Path, how: str) -> pd.DataFrame:
    from deepracer.logs import DeepRacerLog

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        log = DeepRacerLog(str(folder))
        if how == "training":
            log.load_training_trace(ignore_metadata=True)
        elif how == "evaluation":
            log.load_evaluation_trace(ignore_metadata=True)
        else:
            log.load_robomaker_logs()
        return log.dataframe()


def theirs_log(path: Path) -> pd.DataFrame:
    from deepracer.logs import SimulationLogsIO

    return SimulationLogsIO.load_pandas(str(path))


def assert_agree(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    """episodes, completed laps, best lap time and mean progress as deepracer-utils has them."""
    assert len(ours) == len(theirs) > 0
    assert int(ours["complete"].sum()) == int((theirs["progress"] == 100).sum())
    their_laps = theirs.loc[theirs["progress"] == 100, "time"]
    if len(their_laps):
        assert ours["lap_time"].min() == pytest.approx(their_laps.min(), abs=1e-9)
    else:
        assert ours["lap_time"].isna().all()
    assert ours["progress"].mean() == pytest.approx(theirs["progress"].mean(), rel=1e-12)
    assert int(ours["steps"].sum()) == int(theirs["steps"].sum())
    assert float(ours["reward"].sum()) == pytest.approx(float(theirs["reward"].sum()) if "reward" in theirs
                                                        else float(ours["reward"].sum()))


def phase(table: pd.DataFrame, name: str) -> pd.DataFrame:
    return table[table["phase"] == name].reset_index(drop=True)


# --- every real log set loads -------------------------------------------------------------------------------------


FOLDERS = [DRFC_1, DRFC_3, DROA, DROA_EVAL, CONSOLE, ROS1]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_every_sample_folder_loads_every_row(folder):
    trace = load(folder)
    assert len(trace.steps) == folder_expected(folder) > 0
    assert list(trace.steps.columns) == list(STEP_COLUMNS)
    assert not trace.problems, trace.problems.summary()
    assert trace.files


@pytest.mark.parametrize("archive", TARBALLS, ids=lambda p: p.name[:30])
def test_every_tarball_loads_its_simtrace_in_memory(archive):
    files = tar_files(archive)
    expected = sum(csv_rows(data) for name, data in files.items() if name.endswith("-iteration.csv"))
    trace = load(archive)
    assert len(trace.steps) == expected > 0
    assert not trace.problems
    assert all(name.startswith(f"{archive}:") for name in trace.files)
    # the simulation log beside the CSVs is left out, and said so
    assert any("robomaker.log" in note or "simulation.log" in note for note in trace.notes)


@pytest.mark.parametrize("log", LOG_FILES, ids=lambda p: p.name[:40])
def test_every_log_file_loads_every_sim_trace_line(log):
    trace = load(log)
    assert len(trace.steps) == trace_lines(log.read_bytes()) > 0
    assert not trace.problems


@pytest.mark.parametrize("archive", TARBALLS, ids=lambda p: p.name[:30])
def test_the_logs_inside_every_tarball_load_as_bytes(archive):
    logs = {name: data for name, data in tar_files(archive).items()
            if name.endswith(("-robomaker.log", "-simulation.log"))}
    assert logs
    trace = load([(name, data) for name, data in logs.items()])
    assert len(trace.steps) == sum(trace_lines(data) for data in logs.values()) > 0


def test_a_mix_of_sources_keeps_them_apart():
    trace = load([DRFC_3, DROA_LOG, EXPORTS[0]])
    steps = trace.steps
    assert len(steps) == folder_expected(DRFC_3) + trace_lines(DROA_LOG.read_bytes()) + \
        sum(csv_rows(d) for n, d in tar_files(EXPORTS[0]).items() if n.endswith(".csv"))
    assert set(steps["source"].astype(str)) == {str(DRFC_3), str(DROA_LOG), str(EXPORTS[0])}
    assert steps["unique_episode"].is_monotonic_increasing
    table = episodes(steps)
    assert len(table) == steps["unique_episode"].nunique()
    # the same episode number in different sources is a different episode
    assert table.groupby("episode").size().max() > 1


def test_a_missing_source_is_an_error_naming_it(tmp_path):
    with pytest.raises(AnalysisError, match="nope: no such file or folder"):
        load(tmp_path / "nope")


# --- the same answers as deepracer-utils --------------------------------------------------------------------------


@pytest.mark.parametrize("folder", [DRFC_1, DRFC_3], ids=lambda p: p.name)
def test_training_episodes_agree_with_deepracer_utils(folder):
    steps = load(folder).steps
    theirs = theirs_folder(folder, "training")
    assert_agree(phase(episodes(steps), "training"), theirs_episodes(theirs))
    # the same steps, the same episode numbering
    ours = phase(steps, "training")
    assert len(ours) == len(theirs)
    assert (ours["unique_episode"].to_numpy() == theirs["unique_episode"].to_numpy()).all()
    for name in ("x", "y", "progress", "reward", "tstamp", "steps", "iteration", "worker"):
        assert np.allclose(ours[name].to_numpy(float), theirs[name].to_numpy(float)), name


def test_continuous_lap_evaluation_agrees_with_deepracer_utils():
    """DRfC's evaluation runs laps back to back: no `prepare` step between them, and a lap's time starts at
    the previous lap's finish."""
    table = phase(episodes(load(DRFC_1).steps), "evaluation")
    theirs = theirs_episodes(theirs_folder(DRFC_1, "evaluation"), evaluation=True)
    assert_agree(table, theirs)
    assert table["complete"].all() and table["stream"].astype(str).eq("20220709200242").all()


@pytest.mark.parametrize("archive", TARBALLS, ids=lambda p: p.name[:30])
def test_tarball_episodes_agree_with_deepracer_utils(archive, tmp_path):
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    root = next(tmp_path.iterdir())
    ours = phase(episodes(load(archive).steps), "training")
    assert_agree(ours, theirs_episodes(theirs_folder(root, "training")))
    # the robomaker/simulation log of the same archive, parsed by both
    log = next(p for p in root.rglob("*.log") if p.name.endswith(("-robomaker.log", "-simulation.log")))
    assert_agree(episodes(load(log).steps), theirs_episodes(theirs_folder(root, "logs")))


def test_console_training_csvs_agree_with_deepracer_utils(tmp_path):
    # deepracer-utils cannot detect this partial console folder (SOURCES.md); give it the CSVs in DRfC's layout
    shutil.copytree(CONSOLE / "sim-trace" / "training" / "training-simtrace", tmp_path / "training-simtrace")
    ours = phase(episodes(load(CONSOLE).steps), "training")
    assert_agree(ours, theirs_episodes(theirs_folder(tmp_path, "training")))


@pytest.mark.parametrize("log", [DROA_EVAL / "evaluation-simulation.log", *sorted(ROS1.glob("*.log")),
                                 *sorted((CONSOLE / "logs" / "evaluation").glob("*.log"))],
                         ids=lambda p: p.name[:40])
def test_single_log_episodes_agree_with_deepracer_utils(log):
    steps = theirs_log(log)
    steps["unique_episode"] = steps["episode"]
    assert_agree(episodes(load(log).steps), theirs_episodes(steps))


def test_a_deepracer_utils_frame_gives_the_same_episodes():
    theirs = theirs_folder(DRFC_3, "training")
    ours = phase(episodes(load(DRFC_3).steps), "training")
    again = episodes(theirs)
    assert len(again) == len(ours)
    assert np.allclose(again["time"], ours["time"]) and (again["complete"] == ours["complete"]).all()


# --- where rows come from -----------------------------------------------------------------------------------------


def test_workers_and_iterations_from_drfc_folders():
    steps = load(DRFC_3).steps
    assert sorted(steps["worker"].unique()) == [0, 1, 2]
    assert sorted(steps["iteration"].unique()) == [0, 22]
    for worker in (0, 1, 2):
        expected = csv_rows((DRFC_3 / str(worker) / "training-simtrace" / "22-iteration.csv").read_bytes())
        assert ((steps["worker"] == worker) & (steps["iteration"] == 22)).sum() == expected


def test_episode_numbers_when_workers_play_unequal_shares():
    """deepracer-utils' numbering, by hand: worker 0 plays 3 episodes an iteration and worker 1 plays 2, so an
    iteration holds 5 numbers, worker 0's first (episode % 3) and then worker 1's (3 + episode % 2)."""
    from session.insight.analysis.loader import _numbered_by_iteration

    iteration = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    worker = np.array([0, 0, 0, 1, 1, 0, 0, 0, 1, 1])
    episode = np.array([0, 1, 2, 0, 1, 3, 4, 5, 2, 3])
    numbers = _numbered_by_iteration(iteration, worker, episode)
    assert numbers.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    # the same episodes listed worker 1 first: the numbers follow the worker, not the order
    order = np.array([3, 4, 0, 1, 2, 8, 9, 5, 6, 7])
    assert _numbered_by_iteration(iteration[order], worker[order], episode[order]).tolist() == order.tolist()


def test_a_logs_iteration_comes_from_its_own_hyperparameters():
    """The DRoA log says 20 episodes per iteration; the tarball's CSVs say which iteration played which
    episode: they must agree for every step."""
    from_log = load(DROA_LOG).steps
    from_csv = load(DROA_TAR).steps
    assert (from_log["iteration"].to_numpy() == from_log["episode"].to_numpy() // 20).all()
    by_episode = from_csv.groupby("episode")["iteration"].first()
    assert (from_log["iteration"].to_numpy() == by_episode.loc[from_log["episode"]].to_numpy()).all()
    assert np.allclose(from_log["x"], from_csv["x"], atol=5e-5)


def test_ros1_robomaker_replicas_are_workers_and_four_workers_share_an_iteration():
    steps = load(ROS1).steps
    one = steps[steps["worker"] == 0]
    assert len(one) == trace_lines(next(ROS1.glob("*robomaker.1.*")).read_bytes())
    assert sorted(steps["worker"].unique()) == [0, 1]
    # 40 episodes between training over NUM_WORKERS 4: 10 a worker
    assert (steps["iteration"] == steps["episode"] // 10).all()


def test_evaluation_rows_are_their_own_phase_and_stream():
    steps = load(CONSOLE).steps
    evaluation = steps[steps["phase"] == "evaluation"]
    assert len(evaluation) == csv_rows(next((CONSOLE / "sim-trace" / "evaluation").rglob("*.csv")).read_bytes())
    assert set(evaluation["stream"].astype(str)) == {"20220612082523-IBZwYd0MRMqgwKlAe7bb0A"}
    assert set(steps.loc[steps["phase"] == "training", "iteration"]) == {0, 27}


def test_a_model_prefix_in_the_bucket_loads_like_the_folder(storage):
    for path in DRFC_3.rglob("*"):
        if path.is_file():
            storage.put_bytes(f"models/drfc-3/{path.relative_to(DRFC_3).as_posix()}", path.read_bytes())
    from_bucket = load(from_storage(storage, "models/drfc-3"))
    from_folder = load(DRFC_3)
    assert len(from_bucket.steps) == len(from_folder.steps) == folder_expected(DRFC_3)
    columns = [c for c in STEP_COLUMNS if c != "source"]
    pd.testing.assert_frame_equal(from_bucket.steps[columns].reset_index(drop=True),
                                  from_folder.steps[columns].reset_index(drop=True), check_categorical=False)
    assert all(name.startswith(f"s3://{storage.bucket}/models/drfc-3/") for name in from_bucket.files)


# --- the per-step and per-episode tables --------------------------------------------------------------------------


def test_steps_have_deepracer_utils_types_and_continuous_actions_are_minus_one():
    steps = load(DROA_LOG).steps
    assert steps["action"].eq(-1).all()
    assert steps["done"].dtype == bool and steps["on_track"].dtype == bool
    assert steps["steps"].dtype == np.int64 and steps["episode"].dtype == np.int64
    assert set(steps["episode_status"].astype(str)) <= {"prepare", "in_progress", "off_track", "lap_complete",
                                                        "crashed", "reversed", "immobilized", "time_up"}
    first = steps.iloc[1]  # the second line of the log, in FORMATS.md §5.1
    assert (first["x"], first["steering_angle"], first["speed"], first["tstamp"], first["wall_clock"]) == \
        (-1.4432, 4.99, 2.0, 36.231, 1773215987.7159)
    discrete = load(DRFC_1).steps
    assert discrete["action"].between(0, 20).all()


def test_episode_table_and_summary():
    table = episodes(load(DRFC_1).steps)
    assert list(table.columns) == list(EPISODE_COLUMNS)
    training = phase(table, "training")
    done = training[training["complete"]]
    assert (done["lap_time"] == done["time"]).all() and training.loc[~training["complete"], "lap_time"].isna().all()
    assert (done["status"].astype(str) == "lap_complete").all()
    assert (training["end_time"] >= training["start_time"]).all()
    numbers = summary(training)
    assert numbers["episodes"] == 540 and numbers["completed_laps"] == len(done) == 42
    assert numbers["best_lap_s"] == pytest.approx(done["lap_time"].min())
    assert numbers["mean_progress"] == pytest.approx(training["progress"].mean())
    assert [i["iteration"] for i in numbers["iterations"]] == list(range(27))
    assert sum(i["episodes"] for i in numbers["iterations"]) == 540
    assert numbers["workers"][0]["worker"] == 0 and numbers["workers"][0]["completed_laps"] == 42
    assert summary(table.iloc[:0])["best_lap_s"] is None



def test_summary_means_do_not_depend_on_the_order_of_the_episodes():
    """A run's files given one by one or as a folder come in another order; the means must agree to the last
    digit. Float addition is not associative: 1e16 + 1 - 1e16 is 0 one way and 1 another."""
    rewards = [1e16, 1.0, -1e16, 2.0]  # exact mean 0.75
    base = episodes(load(DRFC_1).steps).iloc[:4].copy()
    base["iteration"], base["worker"] = [0, 0, 1, 1], [0, 1, 0, 1]
    for order in ([0, 1, 2, 3], [0, 2, 1, 3], [2, 3, 0, 1]):
        table = base.iloc[order].copy()
        table["reward"] = [rewards[i] for i in order]
        numbers = summary(table)
        assert numbers["mean_reward"] == 0.75
        assert [w["mean_reward"] for w in numbers["workers"]] == [0.0, 1.5]  # (1e16 - 1e16) / 2, (1 + 2) / 2
        assert [i["mean_reward"] for i in numbers["iterations"]] == [5e15, -5e15 + 1.0]

# --- every field count, ROS 2 tags, and bad lines -----------------------------------------------------------------

REAL = [line.split("SIM_TRACE_LOG:", 1)[1] for line in DROA_LOG.read_text().splitlines()
        if "SIM_TRACE_LOG:" in line][:200]
PREFIX = "[download_params_and_roslaunch_agent_node-1] [agent-9] "


def log_of(payloads: list[str], prefix: str = "") -> bytes:
    noise = ["Reset agent", '{"simapp_exception": "not, really, one, of, the, steps"}', ""]
    lines = []
    for i, payload in enumerate(payloads):
        if i % 7 == 3:
            lines.append(prefix + noise[i % 3])
        lines.append(f"{prefix}SIM_TRACE_LOG:{payload}")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("count", [15, 16, 17, 18, 19])
@pytest.mark.parametrize("prefix", ["", PREFIX], ids=["plain", "ros2"])
def test_every_field_count_parses(count, prefix):
    payloads = [",".join(line.split(",")[:count]) for line in REAL]
    steps = load([("worker.log", log_of(payloads, prefix))]).steps
    assert len(steps) == len(REAL)
    fields = [p.split(",") for p in payloads]
    assert steps["progress"].tolist() == [float(f[11]) for f in fields]
    assert steps["tstamp"].tolist() == [float(f[14]) for f in fields]
    if count >= 16:
        assert steps["episode_status"].astype(str).tolist() == [f[15] for f in fields]
    else:
        assert steps["episode_status"].isna().all()
    for index, name in ((16, "pause_duration"), (17, "obstacle_crash_counter"), (18, "wall_clock")):
        if count > index:
            assert steps[name].tolist() == [float(f[index]) for f in fields]
        else:
            assert steps[name].isna().all()


@pytest.mark.parametrize("csv_file", [DRFC_1 / "training-simtrace" / "3-iteration.csv",
                                      next(DRFC_1.glob("evaluation-*/evaluation-simtrace/0-iteration.csv")),
                                      next(DROA_EVAL.glob("*.csv"))], ids=["17 columns", "18", "19"])
def test_csv_header_variants_and_no_header(csv_file):
    text = csv_file.read_text()
    header, body = text.split("\n", 1)
    renamed = header.replace("X,Y", "x,y").replace("steer,throttle", "steering_angle,speed") \
        .replace("all_wheels_on_track", "on_track")
    reordered = header.split(",")
    reordered[2], reordered[3] = reordered[3], reordered[2]  # by name, not by place
    swapped = "\n".join(",".join(f[:2] + [f[3], f[2]] + f[4:]) for f in
                        (line.split(",") for line in body.splitlines())) + "\n"
    frames = [load([(csv_file.name, data.encode())]).steps
              for data in (text, f"{renamed}\n{body}", body, ",".join(reordered) + "\n" + swapped)]
    assert len(frames[0]) == csv_rows(csv_file.read_bytes())
    columns = [c for c in STEP_COLUMNS if c not in ("iteration", "source")]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame[columns], frames[0][columns])
    assert frames[0]["x"].iloc[0] == float(body.split(",")[2])


def test_numpy_and_comma_continuous_actions_tabs_and_crlf():
    line = "0,1,0.6159,0.4622,131.5704,-24.62,0.97,[-24.62170029   0.97231483],0.0000,False,True,0.4212,0,33.28," \
           "35.279,prepare,0.00"
    comma = line.replace("[-24.62170029   0.97231483]", "[-24.62170029, 0.97231483]")
    data = (f"SIM_TRACE_LOG:{line}\r\nSIM_TRACE_LOG:{comma}\tand more\r\nSIM_TRACE_LOG:{line}\r\n").encode()
    trace = load([("robomaker.log", data)])
    assert len(trace.steps) == 3 and not trace.problems
    assert trace.steps["action"].eq(-1).all() and trace.steps["pause_duration"].eq(0.0).all()


def test_bad_lines_are_counted_with_their_line_and_the_rest_kept():
    good = REAL[:50]
    lines = [f"{PREFIX}SIM_TRACE_LOG:{p}" for p in good]
    lines.insert(10, f"{PREFIX}SIM_TRACE_LOG:{REAL[50][:40]}")  # cut short
    lines.insert(20, f"{PREFIX}SIM_TRACE_LOG:{REAL[51].replace(',', ',x', 3)}")  # not a number
    lines.insert(30, f"{PREFIX}SIM_TRACE_LOG:")  # empty
    lines.insert(35, f"{PREFIX}SIM_TRACE_LOG:{REAL[52]},1,2")  # too many fields
    lines.insert(40, f"{PREFIX}SIM_TRACE_LOG:{','.join(REAL[53].split(',')[:16])}")  # a valid count, cut
    data = ("\n".join(lines) + "\n").encode() + b"\xff\xfe garbage \x00\n" + \
        f"{PREFIX}SIM_TRACE_LOG:{REAL[54][:-30]}".encode()  # the last line, cut mid-field-list
    trace = load([("cut.log", data)])
    assert len(trace.steps) == 50
    assert trace.problems.count == 6
    where = {int(p.where.split()[1]): p.message for p in trace.problems.examples}
    assert sorted(where) == [11, 21, 31, 36, 41, 57]
    assert where[11].startswith("truncated line") and "not a number" in where[21]
    assert where[36].startswith("21 fields, expected 19")
    assert "cut.log" in str(trace.problems.examples[0]) and "6 lines skipped" in trace.problems.summary()


def test_a_bad_discrete_action_is_a_bad_line():
    lines = [line for line in next(ROS1.glob("*robomaker.1.*")).read_text().splitlines() if "SIM_TRACE_LOG:" in line]
    fields = lines[7].split(",")
    fields[7] = "7.5"
    lines[7] = ",".join(fields)
    trace = load([("robomaker.log", ("\n".join(lines) + "\n").encode())])
    assert len(trace.steps) == len(lines) - 1 and trace.steps["action"].between(0, 9).all()
    assert [(p.where, p.message) for p in trace.problems.examples] == [("line 8", "not an action: 7.5")]


def test_csv_bad_rows_quotes_and_headers(tmp_path):
    source = (DRFC_1 / "training-simtrace" / "0-iteration.csv").read_text().splitlines()
    header, rows = source[0], source[1:]
    bad = rows.copy()
    bad[5] = bad[5].replace(",", ",oops", 1)
    bad[9] = ",".join(bad[9].split(",")[:6])
    (tmp_path / "training-simtrace").mkdir()
    (tmp_path / "training-simtrace" / "0-iteration.csv").write_text("\n".join([header, *bad]) + "\n")
    fields = rows[3].split(",")
    fields[7] = '"[1.0, 2.0]"'  # a continuous action with a comma, quoted as csv.writer would
    quoted = rows[:3] + [",".join(fields)]
    (tmp_path / "training-simtrace" / "1-iteration.csv").write_text("\n".join([header, *quoted]) + "\n")
    (tmp_path / "training-simtrace" / "2-iteration.csv").write_text("no,header,here\n1,2,3\n")
    (tmp_path / "training-simtrace" / "3-iteration.csv").write_text("")
    trace = load(tmp_path)
    assert len(trace.steps) == len(rows) - 2 + 4
    assert trace.problems.count == 4
    lines = sorted((p.file.rsplit("/", 1)[1], p.where) for p in trace.problems.examples)
    assert lines == [("0-iteration.csv", "line 11"), ("0-iteration.csv", "line 7"), ("2-iteration.csv", "line 1"),
                     ("3-iteration.csv", "")]


def test_a_cut_tarball_keeps_what_it_read(tmp_path):
    data = DROA_TAR.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    trace = load(cut)
    assert trace.problems.count == 1 and "archive unreadable" in trace.problems.examples[0].message
    assert 0 < len(trace.steps) < 10693


def test_garbage_and_empty_files_do_not_crash(tmp_path):
    random_bytes = random.Random(6).randbytes(200_000)
    (tmp_path / "junk.log").write_bytes(random_bytes + b"SIM_TRACE_LOG:" + random_bytes[:500])
    (tmp_path / "empty.log").write_bytes(b"")
    (tmp_path / "0-iteration.csv").write_bytes(random_bytes)
    trace = load(tmp_path)
    assert len(trace.steps) == 0 and list(trace.steps.columns) == list(STEP_COLUMNS)
    assert trace.problems.count >= 2
    assert len(episodes(trace.steps)) == 0


def test_problems_are_all_counted_but_only_the_first_kept():
    lines = [f"SIM_TRACE_LOG:{REAL[0]}"] * 10 + ["SIM_TRACE_LOG:1,2,3"] * (KEEP + 50)
    trace = load([("many.log", ("\n".join(lines) + "\n").encode())])
    assert trace.problems.count == KEEP + 50 and len(trace.problems.examples) == KEEP
    assert len(trace.steps) == 10


@pytest.mark.parametrize("chunk", [64 << 10, 16 << 10], ids=["header in the first piece", "header in the third"])
def test_a_big_log_is_read_in_pieces_with_right_line_numbers(tmp_path, monkeypatch, chunk):
    """Pieces parsed apart, their rows added as they come: line numbers of the whole file, and every piece's
    iteration from the hyperparameters at the log's head (at byte 40,645), whichever piece holds them."""
    import session.insight.analysis.loader as loader

    monkeypatch.setattr(loader, "CHUNK", chunk)
    lines = DROA_LOG.read_text().splitlines()
    lines[9000] = "SIM_TRACE_LOG:1,2"
    path = tmp_path / "big.log"
    path.write_text("\n".join(lines) + "\n")
    trace = load(path)
    assert len(trace.steps) == trace_lines(DROA_LOG.read_bytes()) - 1
    assert [p.where for p in trace.problems.examples] == ["line 9001"]
    assert trace.steps["iteration"].max() == 14
    assert (trace.steps["iteration"] == trace.steps["episode"] // 20).all()


# --- a log that grows ---------------------------------------------------------------------------------------------


def test_trace_tail_reads_a_stream_in_any_pieces():
    lines = DROA_LOG.read_bytes().split(b"\n")
    cut = next(i for i in range(5000, len(lines)) if b"SIM_TRACE_LOG:" in lines[i])
    lines[cut] = b"SIM_TRACE_LOG:7,8"
    data = b"\n".join(lines)
    tail = TraceTail("worker-1")
    pieces, at, rng = [], 0, random.Random(6)
    while at < len(data):
        size = rng.randint(1, 300_000)
        pieces.append(tail.feed(data[at:at + size]))
        at += size
    pieces.append(tail.close())
    steps = pd.concat(pieces, ignore_index=True)
    whole = load(DROA_LOG).steps.drop(index=trace_lines(b"\n".join(lines[:cut]))).reset_index(drop=True)
    assert len(steps) == len(whole)
    for name in ("episode", "steps", "x", "reward", "wall_clock", "iteration"):
        assert np.array_equal(steps[name].to_numpy(), whole[name].to_numpy()), name
    assert [p.where for p in tail.problems.examples] == [f"line {cut + 1}"]


def test_a_bucket_prefixs_objects_are_fetched_at_once_not_one_by_one(storage):
    """Eight GETs must be in flight together for any to finish: read one by one, the barrier breaks."""
    import threading

    for path in sorted((DRFC_1 / "training-simtrace").glob("*.csv")):
        storage.put_bytes(f"models/drfc-1/training-simtrace/{path.name}", path.read_bytes())
    together = threading.Barrier(8, timeout=60)
    real_get = storage.get_bytes

    class Waiting:
        def __getattr__(self, name):
            return getattr(storage, name)

        def get_bytes(self, key):
            if key.endswith(("/0-iteration.csv", "/1-iteration.csv", "/2-iteration.csv", "/3-iteration.csv",
                             "/4-iteration.csv", "/5-iteration.csv", "/6-iteration.csv", "/7-iteration.csv")):
                together.wait()
            return real_get(key)

    trace = load(from_storage(Waiting(), "models/drfc-1"))
    assert not trace.problems and len(trace.steps) == 39_392  # the training simtrace alone
    assert not together.broken


def test_progress_is_told_file_by_file_up_to_all_of_them():
    seen = []
    trace = load(DRFC_3, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] == len(trace.files)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:])) and len({total for _, total in seen}) == 1


# --- simtrace CSVs read together, against the csv module -----------------------------------------------------------
# The simulator writes a simtrace CSV with `write_simtrace_to_local_file` (deepracer-simapp,
# bundle/markov/metrics/s3_metrics.py): the header once, when the file is created, then `",".join(str(value))`
# and "\n" per step, unquoted; a continuous action is written as "[steer speed]" (bundle/markov/agent_ctrl/utils.py).
# The odd files below are what else reaches the loader: a file cut while written, one edited on Windows (CRLF),
# files concatenated (a header again), a csv.writer's quoted "[a, b]".

_INTS = {"episode", "closest_waypoint"}
_TEXT = {"episode_status"}


def csv_module_steps(files: dict[str, bytes]) -> tuple[list[dict], int]:
    """Rows of simtrace CSVs as Python's csv module reads them, each with its file's iteration; and the count of
    lines that are no good row (a field count other than the header's, a value that is not of its column)."""
    from session.insight.analysis.columns import ALIASES

    rows, bad = [], 0
    for name, data in files.items():
        lines = list(csv.reader(io.StringIO(data.decode(), newline="")))
        header = [ALIASES[field] for field in lines[0]]
        for fields in lines[1:]:
            if not fields:
                continue
            if len(fields) != len(header):
                bad += 1
                continue
            try:
                row = {}
                for column, value in zip(header, fields):
                    if column == "action":
                        row[column] = -1 if value.startswith("[") else int(value)
                    elif column in ("done", "on_track"):
                        row[column] = {"True": True, "False": False}[value]
                    elif column in _TEXT:
                        row[column] = value if value else int("")
                    elif column in _INTS:
                        row[column] = int(value)
                    else:
                        row[column] = float(value)
            except (ValueError, KeyError):
                bad += 1
                continue
            row["steps"] = int(row["steps"])
            row["iteration"] = int(name.split("-")[0])
            rows.append(row)
    return rows, bad


def assert_steps_are(steps: pd.DataFrame, rows: list[dict]) -> None:
    assert len(steps) == len(rows)
    for column in rows[0]:
        ours = steps[column].astype(str if column in _TEXT else steps[column].dtype).tolist()
        assert ours == [row[column] for row in rows], column


def real_csv(iteration: int, rows: int) -> tuple[str, list[str]]:
    lines = (DRFC_1 / "training-simtrace" / f"{iteration}-iteration.csv").read_text().splitlines()
    return lines[0], lines[1:rows + 1]


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_clean_csvs_are_read_together_and_give_the_csv_modules_rows(tmp_path, monkeypatch, continuous):
    """The fast path (a unit's files read into one buffer, headers marked in place, one parse): the rows, values
    and each row's file (its iteration) are the csv module's; no file is read on its own."""
    import session.insight.analysis.loader as loader

    files = {}
    for iteration, rows in enumerate([300, 0, 120, 1, 250, 80]):
        header, lines = real_csv(iteration, rows)
        if continuous:  # actions as the simulator writes them for a continuous action space
            lines = [",".join(f[:7] + [f"[{f[5]} {f[6]}]"] + f[8:]) for f in (line.split(",") for line in lines)]
        ending = "" if iteration == 4 else "\n"  # the last line without its newline
        files[f"{iteration}-iteration.csv"] = ("\n".join([header, *lines]) + ending).encode()
    folder = tmp_path / "training-simtrace"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)

    def not_alone(data):
        raise AssertionError("a file was parsed on its own")

    monkeypatch.setattr(loader, "parse_csv", not_alone)
    monkeypatch.setattr(loader, "BATCH", 4)  # two units, so the second one's rows follow the first's
    trace = load(tmp_path)
    expected, bad = csv_module_steps(files)
    assert not trace.problems and bad == 0
    assert_steps_are(trace.steps, expected)
    assert trace.steps["action"].eq(-1).all() == continuous


def _odd(case: str, header: str, lines: list[str]) -> str:
    if case == "cut while written":
        return "\n".join([header, *lines]) + "\n" + lines[-1][:37]
    if case == "crlf":
        return "\r\n".join([header, *lines]) + "\r\n"
    if case == "header again":
        return "\n".join([header, *lines[:50], header, *lines[50:]]) + "\n"
    fields = lines[10].split(",")
    if case == "empty field":
        fields[4] = ""
    elif case == "quoted action":
        fields[7] = '"[-30.0, 0.5]"'
    elif case == "blank line":
        fields = []
    return "\n".join([header, *lines[:10], ",".join(fields), *lines[11:]]) + "\n"


@pytest.mark.parametrize("case, bad", [("cut while written", 1), ("crlf", 0), ("header again", 1),
                                       ("empty field", 1), ("quoted action", 0), ("blank line", 0)])
def test_odd_csvs_give_the_csv_modules_rows_and_count_the_rest(tmp_path, case, bad):
    """A unit with a file the fast path refuses (a cut last line, CRLF, a header again, an empty field, a quoted
    "[a, b]", a blank line) is read file by file: still the csv module's rows, and each line it cannot take
    counted as a problem, in its file."""
    files = {}
    for iteration in range(3):
        header, lines = real_csv(iteration, 100)
        text = _odd(case, header, lines) if iteration == 1 else "\n".join([header, *lines]) + "\n"
        files[f"{iteration}-iteration.csv"] = text.encode()
    folder = tmp_path / "training-simtrace"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    trace = load(tmp_path)
    expected, counted = csv_module_steps(files)
    assert counted == bad
    assert trace.problems.count == bad
    assert all(p.file.endswith("1-iteration.csv") for p in trace.problems.examples)
    assert_steps_are(trace.steps, expected)


def test_the_table_grows_past_a_low_guess_of_its_rows(tmp_path, monkeypatch):
    """The first unit's bytes per row promise far fewer rows than come (its rows are long): the columns grow."""
    import session.insight.analysis.loader as loader

    header, lines = real_csv(0, 20)
    long = [",".join(f[:2] + [f[2] + "0" * 3000] + f[3:]) for f in (line.split(",") for line in lines)]
    files = {"0-iteration.csv": ("\n".join([header, *long]) + "\n").encode()}
    for iteration in range(1, 4):
        header, lines = real_csv(iteration, 1000)
        files[f"{iteration}-iteration.csv"] = ("\n".join([header, *lines]) + "\n").encode()
    folder = tmp_path / "training-simtrace"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    monkeypatch.setattr(loader, "BATCH", 1)
    trace = load(tmp_path)
    expected, _ = csv_module_steps(files)
    assert_steps_are(trace.steps, expected)


def test_rows_read_out_of_file_order_are_put_back_and_statuses_coded_as_first_seen(tmp_path):
    """A training log is read only after the CSVs beside it turned out to give no rows, so its rows come after
    the evaluation CSV's: they are put back in file order (training first), and episode_status is coded in the
    order the rows show its values, as for rows that come in order."""
    (tmp_path / "training-simtrace").mkdir()
    (tmp_path / "training-simtrace" / "0-iteration.csv").write_text("episode,steps,X\n1,2\n")
    evaluation = tmp_path / "evaluation-x" / "evaluation-simtrace"
    evaluation.mkdir(parents=True)
    shutil.copy(next(DRFC_1.glob("evaluation-*/evaluation-simtrace/0-iteration.csv")), evaluation)
    (tmp_path / "logs").mkdir()
    shutil.copy(DROA_LOG, tmp_path / "logs" / "training-robomaker.log")
    steps = load(tmp_path).steps
    log, csv_steps = load(DROA_LOG).steps, load(evaluation / "0-iteration.csv").steps
    assert steps["phase"].astype(str).tolist() == ["training"] * len(log) + ["evaluation"] * len(csv_steps)
    assert steps["x"].tolist() == [*log["x"], *csv_steps["x"]]
    seen = list(dict.fromkeys(steps["episode_status"].astype(str)))
    assert list(steps["episode_status"].cat.categories) == seen
    assert steps["unique_episode"].is_monotonic_increasing


def test_the_parse_uses_as_many_threads_as_the_cpus_this_process_may_run_on(monkeypatch):
    """A container's cpuset or taskset limits the parse, not the machine's count (os.cpu_count)."""
    import os

    from session.insight.analysis import loader

    started: list[int] = []
    real = loader.ThreadPoolExecutor

    def recording(*args, max_workers=None, thread_name_prefix="", **kwargs):
        if thread_name_prefix == "trace":
            started.append(max_workers)
        return real(*args, max_workers=max_workers, thread_name_prefix=thread_name_prefix, **kwargs)

    monkeypatch.setattr(loader, "ThreadPoolExecutor", recording)
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})
        one = load(LOGS / "drfc-2022-three-workers")
    finally:
        os.sched_setaffinity(0, allowed)
    assert started and set(started) == {1}
    started.clear()
    assert len(one.steps) == len(load(LOGS / "drfc-2022-three-workers").steps)
    assert started and set(started) == {min(8, len(allowed))}
