"""session.insight.report (numbers, track, command), session.insight.report_plots (PNGs) and session.insight.report_html (the page) on
every real log set in ../shared/data.

PNGs are checked with the standard library alone (signature, chunk CRCs, IHDR size, IDAT inflated to exactly
the rows the size needs); the numbers against `summary(episodes(load(...)))` worked out here.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
import struct
import zlib
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from session.checks.tracks import TrackLibrary
from session.insight.analysis import episodes, load, summary
from session.insight.report import (
    HTML_NAME,
    JSON_NAME,
    as_json,
    build,
    render_text,
    run,
    write,
)
from session.insight.report_model import ReportError, TrackChoice
from session.insight.report_plots import SQUARE, WIDE
from session.insight.report_sources import (
    RunId,
    resolve_sources,
    run_from_log,
    run_from_params,
    world_from_log,
    world_from_params,
)
from session.insight.report_track import choose_track
from tests.shared_data import LOGS, TRACKS

DPI = 50  # small pictures: the checks are the same at any size, and the tests stay quick
DRFC_1 = LOGS / "drfc-2022-single-worker"
DRFC_3 = LOGS / "drfc-2022-three-workers"
DROA = LOGS / "droa-2026-continuous-ppo-training"
DROA_LOG = DROA / "simulation-robomaker.log"
DROA_EVAL = LOGS / "droa-2026-evaluation"
CONSOLE = LOGS / "console-2022-discrete-ppo"
ROS1 = LOGS / "drfc-ros1-robomaker"
TARBALLS = [*sorted((LOGS / "console-exports-2022-2023").glob("*.tar.gz")),
            DROA / "sample-continous-action-logs.tar.gz"]
SETS = [DRFC_1, DRFC_3, DROA, DROA_EVAL, CONSOLE, ROS1, *TARBALLS]
PLOTS = {"progress.png": WIDE, "track.png": SQUARE, "actions.png": WIDE, "laps.png": WIDE, "workers.png": WIDE,
         "exits.png": WIDE, "along_track.png": WIDE, "timing.png": WIDE}
HEADLINE = ("episodes", "completed_laps", "completion_rate", "best_lap_s", "mean_lap_s", "mean_progress",
            "mean_reward", "steps", "iterations", "workers")


# --- checking what was written --------------------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG after checking it whole: signature, every chunk's CRC, IHDR first, IEND last,
    and the inflated IDAT data exactly as long as the rows of that size and colour type need."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        at += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and interlace == 0
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + width * channels)
    return width, height


def check_page(page: str, folder: Path) -> None:
    """Self-contained: every src is a data URI of one of the PNGs beside it; no href, script, link or url()."""
    assert "<meta name=\"generator\" content=\"deepracer-cloud report\">" in page
    assert not re.search(r"\bhref\s*=|<script|<link|<iframe|url\(|@import|https?://", page, re.IGNORECASE)
    sources = re.findall(r"""\bsrc\s*=\s*["']([^"']*)["']""", page)
    assert sources and len(sources) == len(re.findall(r"\bsrc\s*=", page))
    pngs = {path.read_bytes() for path in folder.glob("*.png")}
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1], validate=True) in pngs
    assert len(sources) == len(pngs)


def expected_numbers(source) -> tuple[str, dict]:
    """The headline phase and summary() of its episodes, by the loader's own functions."""
    table = episodes(load(source).steps)
    phase = "training" if (table["phase"] == "training").any() else "evaluation"
    return phase, summary(table[table["phase"] == phase])


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Every real log set's report, written once: source -> (Report, out folder, names written)."""
    reports = {}
    for source in SETS:
        out = tmp_path_factory.mktemp("report") / "out"
        report = build(source, tracks=TRACKS)
        reports[source] = (report, out, write(report, out, dpi=DPI))
    return reports


# --- every real log set ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SETS, ids=lambda p: p.name[:40])
def test_every_real_log_set_gives_valid_pngs_a_self_contained_page_and_json(made, source):
    report, out, names = made[source]
    assert sorted(names) == sorted([*PLOTS, JSON_NAME, HTML_NAME])
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name, (width, height) in PLOTS.items():
        assert png_size((out / name).read_bytes()) == (round(width * DPI), round(height * DPI)), name
    check_page((out / HTML_NAME).read_text(encoding="utf-8"), out)
    data = json.loads((out / JSON_NAME).read_text())
    assert data == json.loads(json.dumps(as_json(report, names), allow_nan=False))


@pytest.mark.parametrize("source", SETS, ids=lambda p: p.name[:40])
def test_the_json_numbers_are_summary_of_the_loaders_episodes(made, source):
    report, out, _ = made[source]
    data = json.loads((out / JSON_NAME).read_text())
    phase, expected = expected_numbers(source)
    assert data["phase"] == phase and data["from"] == "trace"
    assert {key: data[key] for key in HEADLINE} == json.loads(json.dumps(expected))
    assert data["episodes"] > 0 and data["iterations"] and data["workers"]
    assert [row["iteration"] for row in data["iterations"]] == sorted(row["iteration"] for row in data["iterations"])
    assert data["problems"]["count"] == 0
    if data["best_lap_s"] is not None:
        assert data["best_lap"]["lap_s"] == data["best_lap_s"]
    # the page shows the same headline
    page = (out / HTML_NAME).read_text(encoding="utf-8")
    assert f"<th>episodes</th><td>{data['episodes']:,}</td>" in page


def test_the_terminal_summary_has_the_headline_and_the_last_iterations(made):
    report, out, names = made[DRFC_1]
    text = render_text(report, names, out, rows=5)
    assert "report of drfc-2022-single-worker" in text
    assert "540 training episodes in 27 iterations, 1 worker, 39,392 steps" in text
    assert "completed laps  42 (7.8 % of episodes)" in text
    assert "best lap        12.212 s (iteration 19, worker 0, episode 385)" in text
    assert "... 22 earlier iterations" in text and "       26  " in text and "       21  " not in text
    assert "TRAINER EVAL" in text  # from metrics/TrainingMetrics.json
    assert "evaluation      3 episodes in 1 run, 3 laps" in text
    assert "problems        no lines skipped" in text
    assert f"wrote           {out / HTML_NAME} (8 plots, report.json)" in text
    assert "look at         exits at waypoints 53-58: 50 exits (10%)" in text


def test_workers_and_the_trainers_evaluation_are_broken_down(made):
    data = json.loads((made[DRFC_3][1] / JSON_NAME).read_text())
    assert [w["worker"] for w in data["workers"]] == [0, 1, 2]
    assert sum(w["episodes"] for w in data["workers"]) == data["episodes"] == 60
    trainer = data["trainer_evaluation"]
    assert len(trainer["files"]) == 3 and trainer["iterations"][0]["number"] == 0
    assert "Per worker" in (made[DRFC_3][1] / HTML_NAME).read_text()


def test_the_same_data_gives_the_same_bytes(made, tmp_path):
    report, out, names = made[CONSOLE]
    again = tmp_path / "again"
    write(build(CONSOLE, tracks=TRACKS), again, dpi=DPI)
    for name in names:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


# --- the track ------------------------------------------------------------------------------------------------------


def test_the_track_comes_from_the_simulation_log(made):
    assert world_from_log(DROA_LOG.read_bytes()[:1 << 20]) == ("reInvent2019_wide_cw", None)
    assert world_from_log(next(ROS1.glob("*.log")).read_bytes()) == ("2022_reinvent_champ", None)
    # DRoA's environment dump says TRACK_DIRECTION_CLOCKWISE, its params do not: the route is Spain_track
    assert world_from_log((DROA_EVAL / "evaluation-simulation.log").read_bytes()) == ("Spain_track", None)
    droa = made[DROA][0].track
    assert (droa.name, droa.track.name) == ("reInvent2019_wide_cw", "reInvent2019_wide")  # only the base is shared
    assert "same layout" in droa.note
    ros1 = made[ROS1][0].track
    assert ros1.track.name == "2022_reinvent_champ_ccw" and ros1.origin.endswith(".log")
    exported = made[TARBALLS[1]][0].track  # head-to-head: the log inside the tarball, not read for steps
    assert exported.name == "2022_reinvent_champ" and ".tar.gz:" in exported.origin


def test_a_missing_route_file_draws_the_path_without_borders_and_says_so(made):
    report, out, _ = made[DROA_EVAL]
    assert report.track.name == "Spain_track" and report.track.track is None
    data = json.loads((out / JSON_NAME).read_text())
    assert data["track"]["drawn"] is None and "no route file Spain_track.npy" in data["track"]["note"]
    assert data["track"]["note"] in data["notes"]
    assert "no route file Spain_track.npy" in (out / HTML_NAME).read_text()


def test_without_track_files_there_are_no_borders(tmp_path):
    report = build(ROS1, tracks=None)
    assert report.track.name == "2022_reinvent_champ" and report.track.track is None
    assert "no track files" in report.track.note
    names = write(report, tmp_path / "out", dpi=DPI)
    assert png_size((tmp_path / "out" / "track.png").read_bytes())[0] == round(SQUARE[0] * DPI)
    assert "track.png" in names


def test_a_track_is_guessed_from_the_traced_length_and_path_when_nothing_names_it(made):
    track = made[DRFC_1][0].track  # DRfC's simtrace folder has no params and no log
    assert track.track.name == "reinvent_base" and track.origin.startswith("guessed")
    assert "--track NAME" in track.note


def test_training_params_name_the_track_with_its_direction(tmp_path):
    assert world_from_params(b"WORLD_NAME: reInvent2019_track\nTRACK_DIRECTION_CLOCKWISE: 'true'\n") == \
        ("reInvent2019_track", True)
    assert world_from_params(b"JOB_TYPE: TRAINING\n") is None
    assert world_from_params(b": : not yaml [") is None
    folder = tmp_path / "model"
    shutil.copytree(DRFC_3, folder)
    (folder / "training_params.yaml").write_text("WORLD_NAME: reInvent2019_track\nTRACK_DIRECTION_CLOCKWISE: true\n")
    report = build(folder, tracks=TRACKS)
    assert report.track.name == "reInvent2019_track_cw" and report.track.track.name == "reInvent2019_track_cw"
    assert report.track.origin == str(folder / "training_params.yaml") and not report.track.note


def test_an_explicit_track_wins_and_an_unknown_one_is_an_error():
    library = TrackLibrary(TRACKS)
    assert choose_track(library, explicit="Oval_track", world=("reinvent_base", None, "x")).track.name == "Oval_track"
    assert choose_track(None, explicit=str(TRACKS / "Albert.npy")).track.name == "Albert"
    with pytest.raises(ReportError, match=r"--track: no track named 'reinvent_bse'; did you mean reinvent_base"):
        choose_track(library, explicit="reinvent_bse")
    with pytest.raises(ReportError, match="no track files"):
        choose_track(None, explicit="reinvent_base")


def on_road_share(track, steps) -> float:
    view = track.view()
    return sum(view.on_road(p) for p in zip(steps["x"].tolist(), steps["y"].tolist())) / len(steps)


def test_a_fallback_route_is_drawn_where_the_lap_was_driven(made):
    """DRoA drove reInvent2019_wide_cw (centred on the origin); only the base route, 4.9 m off, is at hand."""
    report = made[DROA][0]
    lap = report.steps[report.steps["unique_episode"] == report.best_laps(1).iloc[0]["unique_episode"]]
    assert report.track.track.name == "reInvent2019_wide"
    assert on_road_share(TrackLibrary(TRACKS).load("reInvent2019_wide"), lap) == 0  # the file as it lies
    assert on_road_share(report.track.track, lap) > 0.95
    assert "the same layout, moved by (-4.00, -2.80) m to where reInvent2019_wide_cw lies" in report.track.note


def test_a_directional_world_is_drawn_from_its_other_direction_before_its_base(tmp_path):
    for name in ("reInvent2019_track", "reInvent2019_track_cw"):
        shutil.copy(TRACKS / f"{name}.npy", tmp_path / f"{name.replace('_cw', '_ccw')}.npy")
    choice = choose_track(TrackLibrary(tmp_path), world=("reInvent2019_track_cw", None, "x"))
    assert choice.track.name == "reInvent2019_track_ccw" and choice.track.rows[0][0] < 0  # as the file lies
    assert "moved" not in choice.note


def test_a_fallback_route_the_path_does_not_fit_is_not_drawn(tmp_path):
    """A base world drawn from a directional route: only the path can tell whether the frames agree."""
    import pandas as pd

    shutil.copy(TRACKS / "reInvent2019_track_cw.npy", tmp_path / "reInvent2019_track_ccw.npy")
    library = TrackLibrary(tmp_path)
    view = library.load("reInvent2019_track_ccw").view()
    lap = [view.place(d / 10, 0.2 * math.sin(d / 7))[0] for d in range(int(view.length * 10))]
    here = pd.DataFrame({"x": [x for x, _ in lap], "y": [y for _, y in lap]})
    choice = choose_track(library, world=("reInvent2019_track", None, "x"), steps=here)
    assert choice.track.name == "reInvent2019_track_ccw" and "moved" not in choice.note
    elsewhere = pd.DataFrame({"x": here["x"] + 4.32, "y": here["y"] + 3.17})  # where the base route lies
    choice = choose_track(library, world=("reInvent2019_track", None, "x"), steps=elsewhere)
    assert choice.track is None and choice.name == "reInvent2019_track"
    assert "the path does not fit the borders of reInvent2019_track_ccw (" in choice.note


def test_names_keep_their_colons(made):
    droa = made[TARBALLS[-1]][0]  # DRoA's logs archive: its files are named after their start time
    started = "2026-03-11T08:23:21.847Z"
    assert droa.track.describe() == f"from {started}-deepracerindy-training-30wm3cccH9SOOML-simulation.log"
    assert f"({droa.track.describe()})" in render_text(droa)
    assert TrackChoice("x", "/a/b.tar.gz:top/x:y-robomaker.log").describe() == "from x:y-robomaker.log"
    assert TrackChoice("x", "/a/b.tgz:x:y.log").describe() == "from x:y.log"
    assert TrackChoice("x", "s3://bucket/rl-1/training_params.yaml").describe() == "from training_params.yaml"
    assert TrackChoice("x", "/home/me/12:00/training_params.yaml").describe() == "from training_params.yaml"


# --- one run at a time ------------------------------------------------------------------------------------------------


def test_a_log_and_a_params_file_name_their_run():
    head = next(ROS1.glob("*.log")).read_bytes()
    assert run_from_log(head) == RunId("Four-Worker-Test", "dmh-base-2023-jan-bucket-1x1o0jxxrxubo")
    assert run_from_log(DROA_LOG.read_bytes()[:1 << 20]) == RunId(
        "admin19c0b9859c/models/30wm3cccH9SOOML/sagemaker-artifacts",
        "drdev-deepracer-on-aws-s3bucketmodelstoragebucket0-flvihr9w2whi")
    evaluation = run_from_log((DROA_EVAL / "evaluation-simulation.log").read_bytes())
    assert evaluation.prefix == "admin19c0b9859c/models/ACGVRmRuFNU9NkQ/sagemaker-artifacts"
    assert run_from_log(b"MODEL_S3_BUCKET=b\nMODEL_S3_PREFIX=rl-1-E\n") == RunId("rl-1", "b")  # evaluate --clone
    assert run_from_params(b"SAGEMAKER_SHARED_S3_BUCKET: b\nSAGEMAKER_SHARED_S3_PREFIX: rl-1/\n") == RunId("rl-1", "b")
    assert run_from_params(b"WORLD_NAME: reinvent_base\n") is None
    assert run_from_log(b"SIM_TRACE_LOG:0,1,2\n") is None
    assert run_from_log(b"'SAGEMAKER_SHARED_S3_BUCKET': [''], 'SAGEMAKER_SHARED_S3_PREFIX': ['rl-1/']") == RunId("rl-1")
    assert run_from_log(b"'MODEL_S3_BUCKET': 'b', 'MODEL_S3_PREFIX': ''") is None
    assert RunId("rl-1", None).same_as(RunId("rl-1", "b")) and not RunId("rl-1", "a").same_as(RunId("rl-1", "b"))


def test_two_different_runs_given_together_are_refused_naming_both(tmp_path):
    with pytest.raises(ReportError) as error:
        build([TARBALLS[0], TARBALLS[1]])
    message = str(error.value)
    assert message.startswith(f"report: {TARBALLS[0]} and {TARBALLS[1]} are different runs (s3://")
    assert message.endswith("; report them one at a time") and "\n" not in message
    with pytest.raises(ReportError, match=r"different runs \(s3://.*/30wm3cccH9SOOML/.* and s3://.*/ACGV"):
        build([DROA, DROA_EVAL])


def test_the_parts_of_one_run_are_read_together(tmp_path):
    logs = sorted(ROS1.glob("*.log"))  # two workers' logs of one DRfC run, given one by one
    apart, together = build(logs, tracks=TRACKS), build(ROS1, tracks=TRACKS)
    assert {k: apart.numbers[k] for k in HEADLINE} == {k: together.numbers[k] for k in HEADLINE}
    assert len(apart.numbers["workers"]) == 2
    # a run's training folder and the evaluation of its clone (`evaluate --clone`: <prefix>-E)
    folder = tmp_path / "rl-1"
    shutil.copytree(DRFC_3, folder)
    (folder / "training_params.yaml").write_text("SAGEMAKER_SHARED_S3_BUCKET: deepracer-abc\n"
                                                "SAGEMAKER_SHARED_S3_PREFIX: rl-1\nWORLD_NAME: reinvent_base\n")
    data = (DROA_EVAL / "evaluation-simulation.log").read_bytes()
    bucket, prefix = b"drdev-deepracer-on-aws-s3bucketmodelstoragebucket0-flvihr9w2whi", \
        b"admin19c0b9859c/models/ACGVRmRuFNU9NkQ/sagemaker-artifacts/"
    clone = tmp_path / "rl-1-E-evaluation-simulation.log"
    clone.write_bytes(data.replace(bucket, b"deepracer-abc").replace(prefix, b"rl-1-E"))
    report = build([folder, clone], tracks=TRACKS)
    assert report.numbers["episodes"] == 60 and _evaluation_episodes(report) > 0
    other = tmp_path / "rl-2-evaluation-simulation.log"
    other.write_bytes(data.replace(bucket, b"deepracer-abc").replace(prefix, b"rl-2"))
    with pytest.raises(ReportError, match=r"different runs \(s3://deepracer-abc/rl-1 and s3://deepracer-abc/rl-2\)"):
        build([folder, other], tracks=TRACKS)


def _evaluation_episodes(report) -> int:
    return int((report.table["phase"] == "evaluation").sum())


# --- bad, cut and missing data --------------------------------------------------------------------------------------


def test_a_truncated_log_still_gives_a_report_with_its_problem_count(tmp_path):
    data = DROA_LOG.read_bytes()
    cut = data[:len(data) // 2]
    cut = cut[:cut.rfind(b"SIM_TRACE_LOG:") + 60]  # ends in the middle of a step line
    log = tmp_path / "cut-simulation.log"
    log.write_bytes(cut[:len(cut) // 3] + b"SIM_TRACE_LOG:1,2,3\nSIM_TRACE_LOG:x,y\n" + cut[len(cut) // 3:])
    trace = load(log)
    assert trace.problems.count >= 3
    report = build(log, tracks=TRACKS)
    out = tmp_path / "out"
    names = write(report, out, dpi=DPI)
    data = json.loads((out / JSON_NAME).read_text())
    assert data["problems"]["count"] == trace.problems.count
    assert sum(data["problems"]["reasons"].values()) == trace.problems.count
    assert data["problems"]["examples"][0]["file"] == str(log)
    assert data["episodes"] == summary(episodes(trace.steps))["episodes"] > 0
    page = (out / HTML_NAME).read_text()
    assert f"Lines skipped: {trace.problems.count}" in page
    check_page(page, out)
    assert trace.problems.summary() in render_text(report, names, out)


def test_an_empty_source_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReportError) as error:
        build(empty)
    assert str(error.value) == f"{empty}: no simtrace CSV, SIM_TRACE_LOG line or training metrics JSON found"
    (empty / "robomaker.log").write_bytes(b"hello\nSIM_TRACE_LOG:1,2\n")
    with pytest.raises(ReportError, match=r"found; 1 line skipped \(1 x .*\)$") as error:
        build(empty)
    assert "\n" not in str(error.value)
    with pytest.raises(ReportError, match="nope: no such file or folder"):
        build(tmp_path / "nope")


def test_metrics_alone_give_the_numbers_of_the_metrics_json(tmp_path):
    folder = tmp_path / "metrics-only"
    shutil.copytree(DRFC_3 / "metrics", folder / "metrics")
    (folder / "metrics" / "TrainingMetrics_2.json").write_text('{"metrics": [{"reward')  # being rewritten
    report = build(folder, tracks=TRACKS)
    entries = [e for name in ("TrainingMetrics.json", "TrainingMetrics_1.json")
               for e in json.loads((DRFC_3 / "metrics" / name).read_text())["metrics"] if e["phase"] == "training"]
    data = as_json(report)
    assert data["from"] == "metrics" and data["episodes"] == len(entries)
    assert data["completed_laps"] == sum(e["episode_status"] == "Lap complete" for e in entries)
    assert data["mean_progress"] == pytest.approx(sum(e["completion_percentage"] for e in entries) / len(entries))
    assert [w["worker"] for w in data["workers"]] == [0, 1]
    assert any("TrainingMetrics_2.json: not readable" in note for note in data["notes"])
    names = write(report, tmp_path / "out", dpi=DPI)
    assert names == ["progress.png", JSON_NAME, HTML_NAME]
    check_page((tmp_path / "out" / HTML_NAME).read_text(), tmp_path / "out")


# --- the bucket and the command --------------------------------------------------------------------------------------


def put_folder(storage, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.endswith(".tar.gz"):
            storage.put_bytes(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())


def test_a_model_prefix_in_the_bucket_reports_like_its_folder(storage, tmp_path):
    put_folder(storage, DRFC_3, "rl-3")
    storage.put_text("rl-3/training_params.yaml", "WORLD_NAME: reinvent_base\n")
    put_folder(storage, ROS1, "ros1/logs")
    sources = resolve_sources(["rl-3", f"s3://{storage.bucket}/ros1"], lambda: storage)
    from_bucket = build(sources[0], tracks=TRACKS)
    folder = build(DRFC_3, tracks=TRACKS)
    assert {k: from_bucket.numbers[k] for k in HEADLINE} == {k: folder.numbers[k] for k in HEADLINE}
    assert from_bucket.track.origin == f"s3://{storage.bucket}/rl-3/training_params.yaml"
    assert from_bucket.metrics is not None and len(from_bucket.metrics.files) == 3
    ros1 = build(sources[1], tracks=TRACKS)  # the track from the head of a log, read with a ranged GET
    assert ros1.track.name == "2022_reinvent_champ" and ros1.track.origin.startswith(f"s3://{storage.bucket}/ros1/")
    with pytest.raises(ReportError, match=r"no-such-model: not a local file or folder, and s3://.*/no-such-model/ "
                                          r"holds nothing"):
        resolve_sources(["no-such-model"], lambda: storage)
    with pytest.raises(ReportError, match="only the working bucket"):
        resolve_sources(["s3://another-bucket/rl-3"], lambda: storage)


def test_local_paths_never_reach_for_the_bucket(tmp_path):
    def no_storage():
        raise AssertionError("storage opened for a local source")

    assert resolve_sources([str(DRFC_3)], no_storage) == [DRFC_3]
    with pytest.raises(ReportError, match="missing.tar.gz: no such file or folder"):
        resolve_sources([str(tmp_path / "missing.tar.gz")], no_storage)


def test_a_path_that_does_not_exist_is_named_and_needs_no_system_env(tmp_path, monkeypatch, capsys):
    from session.cli import main as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DR_SYSTEM_ENV", str(tmp_path / "no-system.env"))
    (tmp_path / "runs").mkdir()
    for name in ("runs/rl-1", "./rl-1", "~/no-such-folder-here/rl-1", "rl-1.tar.gz", "rl-1-simulation.log"):
        assert cli.main(["report", name]) == 2
        assert capsys.readouterr().err == f"deepracer: report: {name}: no such file or folder, and not a model prefix\n"
    # a bare name can be a model prefix: without system.env there is no bucket to look in, and the line says so
    assert cli.main(["report", "rl-1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("deepracer: report: rl-1: no such file or folder; no bucket to look for a model prefix "
                            f"in: {tmp_path / 'no-system.env'}: ")
    assert error.count("\n") == 1


def test_a_prefix_with_a_slash_is_looked_for_in_the_bucket_unless_its_folder_is_here(storage, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    put_folder(storage, DRFC_3, "team/rl-3")
    assert [s.prefix for s in resolve_sources(["team/rl-3"], lambda: storage)] == ["team/rl-3"]
    (tmp_path / "team").mkdir()
    with pytest.raises(ReportError, match="^report: team/rl-3: no such file or folder, and not a model prefix$"):
        resolve_sources(["team/rl-3"], lambda: storage)


def options(*sources, **given) -> dict:
    """run()'s arguments as the command line gives them: every option unset but --tracks."""
    values = {"out": None, "json_output": False, "track": None, "tracks": str(TRACKS), "laps": None, **given}
    return {"sources": [str(s) for s in sources], **values}


def test_the_command_prints_the_summary_or_the_json_and_keeps_foreign_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert run(**options(DRFC_3, laps=3), storage=lambda: None) == 0
    assert "report of drfc-2022-three-workers" in printed.getvalue()
    assert (tmp_path / "report-drfc-2022-three-workers" / HTML_NAME).is_file()
    printed = io.StringIO()
    with redirect_stdout(printed):  # the same folder again: a report's own folder is rewritten
        assert run(**options(DRFC_3, json_output=True, out="report-drfc-2022-three-workers"), storage=lambda: None) == 0
    data = json.loads(printed.getvalue())
    assert data["out"] == "report-drfc-2022-three-workers" and data["episodes"] == 60
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ReportError, match="--out mine: the folder holds files that are not a report"):
        run(**options(DRFC_3, out="mine"), storage=lambda: None)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    with pytest.raises(ReportError, match="--tracks nowhere: no such folder"):
        run(**options(DRFC_3, tracks="nowhere"), storage=lambda: None)


def test_the_cli_reports_and_turns_a_user_error_into_one_line(tmp_path, capsys):
    from session.cli import main as cli

    assert cli.main(["report", str(ROS1), "--out", str(tmp_path / "r"), "--tracks", str(TRACKS)]) == 0
    assert "report of drfc-ros1-robomaker" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["report", str(empty)]) == 2
    assert capsys.readouterr().err == f"deepracer: {empty}: no simtrace CSV, SIM_TRACE_LOG line or training " \
                                      f"metrics JSON found\n"


def test_the_cli_hands_every_option_to_the_report(tmp_path, capsys):
    # The command line is read in session.cli, the report takes plain keywords: each option must reach its keyword.
    from session.cli import main as cli

    out = tmp_path / "r"
    assert cli.main(["report", str(DRFC_3), "--out", str(out), "--tracks", str(TRACKS), "--track", "reinvent_base",
                     "--laps", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["out"] == str(out) and data["episodes"] == 60
    assert data["track"]["name"] == "reinvent_base" and data["track"]["origin"] == "--track"
    assert "The 2 fastest completed laps" in (out / HTML_NAME).read_text()


@pytest.mark.parametrize("count", [15, 16, 17, 18, 19])
def test_every_field_count_and_ros2_tags_give_the_same_kind_of_report(count, tmp_path):
    lines = [line for line in DROA_LOG.read_text().splitlines() if "SIM_TRACE_LOG:" in line][:3000]
    cut = []
    for index, line in enumerate(lines):
        tags, payload = line.split("SIM_TRACE_LOG:", 1)
        cut.append(f"{tags if index % 2 else ''}SIM_TRACE_LOG:{','.join(payload.split(',')[:count])}")
    log = tmp_path / f"fields-{count}-simulation.log"
    log.write_text("\n".join(cut) + "\n")
    report = build(log, tracks=TRACKS)
    data = as_json(report)
    assert {key: data[key] for key in HEADLINE} == json.loads(json.dumps(summary(episodes(load(log).steps))))
    assert data["episodes"] > 50 and data["problems"]["count"] == 0
    if count == 15:  # no episode_status at all: still every plot
        out = tmp_path / "out"
        write(report, out, dpi=DPI)
        for name, (width, height) in PLOTS.items():
            assert png_size((out / name).read_bytes()) == (round(width * DPI), round(height * DPI))
