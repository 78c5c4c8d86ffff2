"""`report A B`: two runs side by side (session.insight.report_compare), each also reported alone."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from session.cli.main import main
from session.insight.report import ReportError, as_json, build
from session.insight.report_sources import runs_of
from tests.session.insight.test_report_views import save_doc_picture
from tests.shared_data import LOGS, TRACKS

DRFC_1 = LOGS / "drfc-2022-single-worker"
DRFC_3 = LOGS / "drfc-2022-three-workers"


def named(folder, source, prefix):
    """A copy of a DRfC model folder whose training_params.yaml names the run `prefix`, as a real one does."""
    shutil.copytree(source, folder)
    (folder / "training_params.yaml").write_text(f"SAGEMAKER_SHARED_S3_BUCKET: deepracer-abc\n"
                                                f"SAGEMAKER_SHARED_S3_PREFIX: {prefix}\nWORLD_NAME: reinvent_base\n")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return named(base / "rl-1", DRFC_1, "rl-1"), named(base / "rl-2", DRFC_3, "rl-2")


def test_two_runs_are_grouped_apart_and_the_parts_of_one_together(runs, tmp_path):
    one, two = runs
    assert runs_of([one, two]) == [[one], [two]]
    assert runs_of([one]) == [[one]]
    lone = tmp_path / "0-iteration.csv"  # names no run
    shutil.copy(DRFC_1 / "training-simtrace" / "0-iteration.csv", lone)
    assert runs_of([one, lone]) == [[one, lone]]  # a part of the one run given
    with pytest.raises(ReportError, match=r"0-iteration.csv names no run, and the other sources are 2 different"):
        runs_of([one, two, lone])


def test_the_comparison_holds_each_runs_own_report_and_the_pictures_over_one_another(runs, tmp_path, capsys):
    one, two = runs
    out = tmp_path / "compare"
    assert main(["report", str(one), str(two), "--tracks", str(TRACKS), "--out", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["compared"] == ["rl-1", "rl-2"] and data["folders"] == ["1-rl-1", "2-rl-2"]
    # each run's numbers are its report alone
    for folder, source in zip(data["folders"], runs):
        alone = as_json(build(source, tracks=TRACKS))
        own = json.loads((out / folder / "report.json").read_text())
        assert own["episodes"] == alone["episodes"] and own["best_lap_s"] == alone["best_lap_s"]
        assert (out / folder / "index.html").is_file()
    assert [h["episodes"] for h in data["headlines"]] == [540, 60]
    assert [h["best_lap_s"] for h in data["headlines"]] == [12.212, 13.373]
    for name in ("progress.png", "laps.png", "track.png", "exits.png"):  # same route: exits compared too
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    save_doc_picture("compare-progress.png", (out / "progress.png").read_bytes())  # the docs show this one
    page = (out / "index.html").read_text()
    assert re.findall(r'href="([^"]+)"', page) == ["1-rl-1/index.html", "2-rl-2/index.html"]
    assert "<script" not in page and "http" not in page
    text = capsys.readouterr().out
    assert text.startswith("comparison of 2 runs\n")
    assert re.search(r"rl-1\s+540\s+42\s+12\.212 s\s+34\.2 %", text)
    assert re.search(r"rl-2\s+60\s+3\s+13\.373 s\s+28\.3 %", text)
    # again into the same folder: it is ours, so it is rewritten
    assert main(["report", str(one), str(two), "--tracks", str(TRACKS), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(out)


def test_re_scoring_is_one_run_at_a_time(runs, tmp_path, capsys):
    one, two = runs
    candidate = tmp_path / "c.py"
    candidate.write_text("def reward_function(params):\n    return 1.0\n")
    assert main(["report", str(one), str(two), "--reward", str(candidate), "--out", str(tmp_path / "o")]) == 2
    assert "re-score one run at a time" in capsys.readouterr().err
