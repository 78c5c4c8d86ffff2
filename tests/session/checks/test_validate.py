"""`deepracer validate` as a user runs it: real tracks, DRfC's defaults, and the broken corpus through the CLI.

Every broken input must give exit 2 and one line naming the problem, with no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from session.cli.main import main
from tests.session.checks.test_custom_files_check import CORPUS as FILE_CORPUS
from tests.session.checks.test_reward_check import REWARD_CORPUS
from tests.shared_data import TRACKS

BROKEN = Path(__file__).resolve().parents[1] / "data" / "broken"
DEFAULTS = Path(__file__).resolve().parents[3] / "session" / "defaults"


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch) -> Path:
    shutil.copytree(DEFAULTS, tmp_path / "custom_files", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "run.env").write_text("DR_WORLD_NAME=reInvent2019_track\n")
    monkeypatch.setenv("DR_RUN_ENV", str(tmp_path / "run.env"))
    monkeypatch.setenv("DR_SYSTEM_ENV", str(tmp_path / "no-system.env"))  # a laptop: nothing deployed yet
    return tmp_path


def validate(capsys, *extra: str) -> tuple[int, list[str]]:
    code = main(["validate", "--tracks", str(TRACKS), "--calls", "200", *extra])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out.splitlines()


def test_drfc_defaults_pass_on_every_real_track(workdir: Path, capsys):
    # The defaults drive 0.6 m/s: 20 laps of a track longer than 10,000 / 20 / 15 x 0.6 = 20 m pass the trainer's
    # 10,000-step cap, which is a warning (the excess episodes are thrown away), never an error.
    for track in sorted(p.stem for p in TRACKS.glob("*.npy")):
        (workdir / "run.env").write_text(f"DR_WORLD_NAME={track}\n")
        code, lines = validate(capsys)
        assert code == 0, (track, lines)
        problems = [line for line in lines if not line.startswith(("sizing:", "note:"))][:-1]
        assert all("steps once every episode completes a lap" in line for line in problems), (track, problems)
        assert lines[-1] == ("all checks passed" if not problems else "0 error(s), 1 warning(s)"), (track, lines)
    (workdir / "run.env").write_text("DR_WORLD_NAME=reinvent_base\n")  # 17.7 m: 20 x 443 = 8,860 steps
    assert validate(capsys)[1][-1] == "all checks passed"


def test_validate_explains_the_sizing_and_refuses_an_idle_worker(workdir: Path, capsys):
    (workdir / "custom_files" / "hyperparameters.json").write_text('{"num_episodes_between_training": 2}')
    (workdir / "run.env").write_text("DR_WORLD_NAME=reinvent_base\nDR_TRAIN_ROUND_ROBIN_ADVANCE_DIST=1\n")
    code, lines = validate(capsys, "--workers", "3")
    assert code == 2
    assert "sizing: 2 episodes per iteration over 3 workers (workers 1, 2: 1 episode); worker 3 would play none" \
        in lines
    assert any(line.startswith("hyperparameters.json: num_episodes_between_training: is 2, fewer than the 3 "
                               "workers") for line in lines)
    (workdir / "custom_files" / "hyperparameters.json").write_text('{"num_episodes_between_training": 3}')
    code, lines = validate(capsys, "--workers", "3")
    assert code == 0 and "sizing: 3 workers x 1 episode = 3 episodes per iteration" in lines


def test_validate_json_keeps_stdout_a_document_and_holds_the_sizing_finding(workdir: Path, capsys):
    import json

    (workdir / "custom_files" / "hyperparameters.json").write_text('{"num_episodes_between_training": 2}')
    code = main(["validate", "--tracks", str(TRACKS), "--calls", "50", "--workers", "3", "--json"])
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert code == 2 and not document["ok"]
    assert [p["where"] for p in document["problems"] if p["severity"] == "error"] == ["num_episodes_between_training"]
    assert "sizing: 2 episodes per iteration over 3 workers" in captured.err
    sizing = document["sizing"]
    assert (sizing["workers"], sizing["episodes_per_iteration"]) == (3, 2)
    assert [w["episodes"] for w in sizing["per_worker"]] == [1, 1, 0]  # episode i goes to worker i mod 3


def test_without_tracks_the_world_name_is_not_checked_and_says_so(workdir: Path, capsys, monkeypatch):
    monkeypatch.setenv("DR_TRACKS_DIR", str(workdir / "missing"))
    code = main(["validate", "--calls", "10"])
    out = capsys.readouterr().out
    if Path("/var/lib/deepracer/tracks").is_dir():
        pytest.fail("this test assumes a machine without the host's track cache")
    # Issue 10: without tracks the reward dry run did not happen, so validate must not exit 0 as if it had.
    assert code == 1 and "no track files" in out and "NOT checked" in out
    assert out.splitlines()[-1] == "0 error(s), 1 warning(s); NOT everything was checked (see above)"
    assert "warning: warning:" not in out


def test_train_refuses_to_start_without_tracks(workdir: Path, monkeypatch):
    from types import SimpleNamespace

    from session.checks.validate import validate_for_training
    from session.core.config import load_config

    monkeypatch.setenv("DR_TRACKS_DIR", str(workdir / "missing"))
    system_env = workdir / "system.env"
    system_env.write_text("DR_CLOUD=local\nDR_SIMAPP_VERSION=6.0.4-gpu\n")
    loaded = load_config(workdir / "run.env", system_env)
    host = SimpleNamespace(system=loaded.system, run=loaded.run, custom_files=workdir / "custom_files")
    [problem] = validate_for_training(host)
    assert problem.is_error and "the reward function's dry run were NOT checked" in problem.message
    assert "`train` does not start without them" in problem.message


@pytest.mark.parametrize("arguments, expected", [
    (["--workers", "0"], "deepracer validate: argument --workers: expected a whole number from 1 to 8, got '0'"),
    (["--workers", "-3"], "deepracer validate: argument --workers: expected a whole number from 1 to 8, got '-3'"),
    (["--workers", "9"], "deepracer validate: argument --workers: expected a whole number from 1 to 8, got '9'"),
    (["--calls", "0"], "deepracer validate: argument --calls: expected a whole number of at least 1, got '0'"),
    (["--calls", "-5"], "deepracer validate: argument --calls: expected a whole number of at least 1, got '-5'"),
])
def test_bad_workers_or_calls_are_one_line_and_exit_2(arguments, expected, workdir: Path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["validate", "--tracks", str(TRACKS), *arguments])
    captured = capsys.readouterr()
    assert caught.value.code == 2
    assert captured.err.count("\n") == 1 and captured.err.startswith(expected), captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_train_workers_above_the_stacks_maximum_are_refused(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["train", "--workers", "12"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.startswith(
        "deepracer train: argument --workers: expected a whole number from 1 to 8, got '12'")


def test_no_doubled_prefixes(workdir: Path, capsys, monkeypatch):
    monkeypatch.setenv("DR_TRACKS_DIR", str(workdir / "missing"))
    shutil.rmtree(workdir / "custom_files")
    assert main(["validate", "--calls", "10"]) == 2
    out = capsys.readouterr().out
    assert "warning: warning:" not in out and "custom_files: custom_files:" not in out
    assert f"{workdir / 'custom_files'}: expected a folder with reward_function.py" in out


def test_every_run_env_mistake_in_one_run(workdir: Path, capsys):
    (workdir / "run.env").write_text("DR_RUN_ID=x\nDR_RACE_TYPE=TIME_TRAIL\nDR_LOCAL_S3_PRETRAINED_CHECKPOINT=7\n")
    assert main(["validate", "--tracks", str(TRACKS)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[2] for line in lines] == ["DR_RUN_ID", "DR_RACE_TYPE", "DR_LOCAL_S3_PRETRAINED_CHECKPOINT"]
    assert all(line.startswith(f"deepracer: {workdir / 'run.env'}:") for line in lines)


def test_validate_leaves_no_bytecode_in_custom_files(workdir: Path, capsys):
    (workdir / "custom_files" / "reward_function.py").write_text(
        "import json\nfrom collections import deque\ndef reward_function(params):\n    return 1.0 + params['x']\n")
    before = sorted(p.name for p in (workdir / "custom_files").iterdir())
    code, lines = validate(capsys)
    assert code == 0, lines
    assert sorted(p.name for p in (workdir / "custom_files").iterdir()) == before


@pytest.mark.parametrize("name", sorted(k for k, v in REWARD_CORPUS.items() if v[1] == "error" and not v[2]))
def test_each_broken_reward_function_is_one_line_and_exit_2(name: str, workdir: Path, capsys):
    shutil.copy(BROKEN / name, workdir / "custom_files" / "reward_function.py")
    code, lines = validate(capsys)
    expected = REWARD_CORPUS[name][0]
    assert code == 2
    assert any(expected in line for line in lines), lines
    assert lines[-1].startswith("1 error(s)") or "error(s)" in lines[-1]


@pytest.mark.parametrize("name", sorted(k for k, v in FILE_CORPUS.items() if v[1] == "error" and not v[2]))
def test_each_broken_metadata_or_hyperparameters_file_is_one_line_and_exit_2(name: str, workdir: Path, capsys):
    target = "model_metadata.json" if name.startswith("md_") else "hyperparameters.json"
    shutil.copy(BROKEN / name, workdir / "custom_files" / target)
    code, lines = validate(capsys)
    expected = FILE_CORPUS[name][0].replace(name, target, 1)
    assert code == 2
    assert any(line.startswith(expected) for line in lines), lines


@pytest.mark.parametrize("run_env, expected", [
    ("DR_WORLD_NAME=reInvent2019_trak\n", "DR_WORLD_NAME"),
    ("DR_WORLD_NAME=2024_reinvent_champ\n", "2024_reinvent_champ"),
    ("DR_WORLD_NAME=reinvent_base\nDR_RACE_TYPE=HEAD_TO_MODEL\n", "HEAD_TO_MODEL is for evaluation only"),
])
def test_run_env_track_and_race_problems_are_named(run_env: str, expected: str, workdir: Path, capsys):
    (workdir / "run.env").write_text(run_env)
    code, lines = validate(capsys)
    assert code == 2 and any(expected in line for line in lines), lines


@pytest.mark.parametrize("run_env, expected", [
    ("DR_WORLD_NAME reinvent_base\n", "run.env:1: syntax: expected KEY=value"),
    ("DR_WORKERS_X=3\nDR_CAR_COLOR=Pink\n", "run.env:2: DR_CAR_COLOR: expected"),
    ("DR_LOCAL_S3_PRETRAINED=maybe\n", "run.env:1: DR_LOCAL_S3_PRETRAINED: expected"),
    ("DR_CAR_NAME='Fast\n", "run.env:1: DR_CAR_NAME: expected a closing ' quote"),
])
def test_bad_run_env_lines_are_one_line_and_exit_2(run_env: str, expected: str, workdir: Path, capsys):
    (workdir / "run.env").write_text(run_env)
    code = main(["validate", "--tracks", str(TRACKS)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and expected in captured.err, captured.err
    assert "Traceback" not in captured.err


def test_json_output_for_scripts(workdir: Path, capsys):
    import json

    shutil.copy(BROKEN / "rf_returns_none.py", workdir / "custom_files" / "reward_function.py")
    assert main(["validate", "--tracks", str(TRACKS), "--calls", "200", "--json"]) == 2
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False
    assert any(p["file"] == "reward_function.py" and p["severity"] == "error" for p in result["problems"])
