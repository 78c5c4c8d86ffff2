"""The commands through `session.cli.main.main`, with real files and a real S3 API (moto's server over HTTP)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from session.cli.main import main


@pytest.fixture()
def workdir(tmp_path: Path, s3_server: str, monkeypatch):
    """A DRfC-style folder: run.env, custom_files/, and a system.env for a remote S3 server (moto)."""
    bucket = f"deepracer-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    (tmp_path / "system.env").write_text(
        f"DR_CLOUD=remote\nDR_REMOTE_MINIO_URL={s3_server}\nDR_LOCAL_S3_BUCKET={bucket}\n"
        "DR_SIMAPP_VERSION=6.0.4-gpu\nDR_LOCAL_ACCESS_KEY_ID=testing\nDR_LOCAL_SECRET_ACCESS_KEY=testing\n")
    monkeypatch.setenv("DR_SYSTEM_ENV", str(tmp_path / "system.env"))
    monkeypatch.setenv("DR_RUN_ENV", str(tmp_path / "run.env"))
    return tmp_path


def test_init_writes_defaults_once_and_never_overwrites(workdir: Path, capsys):
    assert main(["init"]) == 0
    run_env = (workdir / "run.env").read_text()
    assert "DR_WORLD_NAME=reinvent_base" in run_env
    assert sorted(p.name for p in (workdir / "custom_files").iterdir()) == [
        "hyperparameters.json", "model_metadata.json", "reward_function.py"]
    (workdir / "custom_files" / "reward_function.py").write_text("def reward_function(params):\n    return 2.0\n")
    assert main(["init"]) == 0
    assert "return 2.0" in (workdir / "custom_files" / "reward_function.py").read_text()
    assert f"kept {workdir / 'run.env'}" in capsys.readouterr().out


def test_custom_files_upload_then_download_protects_local_edits(workdir: Path, capsys):
    main(["init"])
    capsys.readouterr()
    assert main(["custom-files", "upload"]) == 0
    out = capsys.readouterr().out
    assert "copied reward_function.py (new)" in out and "copied model_metadata.json (new)" in out
    assert main(["custom-files", "upload"]) == 0
    assert "up to date (3 files)" in capsys.readouterr().out

    reward = workdir / "custom_files" / "reward_function.py"
    reward.write_text("def reward_function(params):\n    return 0.5\n")
    assert main(["custom-files", "download"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "would replace your local reward_function.py" in err and "--overwrite" in err
    assert "return 0.5" in reward.read_text()  # untouched
    assert main(["custom-files", "download", "--overwrite"]) == 0
    assert "return 0.5" not in reward.read_text()


def test_a_bad_run_env_value_is_one_line_and_exit_2(workdir: Path, capsys):
    (workdir / "run.env").write_text("DR_WORLD_NAME=Albert\nDR_RACE_TYPE=TIME_TRAIL\n")
    assert main(["increment", "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{workdir / 'run.env'}:2: DR_RACE_TYPE: expected one of TIME_TRIAL" in err
    assert "got 'TIME_TRAIL'" in err


def test_increment_offline_rewrites_run_env(workdir: Path, capsys):
    (workdir / "run.env").write_text("DR_LOCAL_S3_MODEL_PREFIX=my-model-2\n")
    assert main(["increment", "--offline", "--checkpoint", "best"]) == 0
    text = (workdir / "run.env").read_text()
    assert "DR_LOCAL_S3_MODEL_PREFIX=my-model-3" in text and "DR_LOCAL_S3_PRETRAINED_PREFIX=my-model-2" in text
    assert "DR_LOCAL_S3_PRETRAINED_CHECKPOINT=best" in text
    assert (workdir / "run.env.bak").read_text() == "DR_LOCAL_S3_MODEL_PREFIX=my-model-2\n"


def test_unreachable_storage_is_one_line_without_traceback(workdir: Path):
    text = (workdir / "system.env").read_text()
    (workdir / "system.env").write_text(
        "\n".join(line if not line.startswith("DR_REMOTE_MINIO_URL") else "DR_REMOTE_MINIO_URL=http://127.0.0.1:9"
                  for line in text.splitlines()) + "\n")
    (workdir / "run.env").write_text("DR_LOCAL_S3_MODEL_PREFIX=m-1\n")
    result = subprocess.run([sys.executable, "-m", "session", "increment"], capture_output=True, text=True,
                            timeout=120, env={**__import__("os").environ, "AWS_MAX_ATTEMPTS": "1"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "http://127.0.0.1:9" in result.stderr and "cannot be reached" in result.stderr


def test_status_through_the_cli_when_nothing_runs(workdir: Path, capsys, docker_engine: str, monkeypatch):
    import json

    monkeypatch.setenv("DOCKER_HOST", docker_engine)
    monkeypatch.setenv("XDG_CACHE_HOME", str(workdir / "cache"))
    (workdir / "run.env").write_text("DR_RUN_ID=4242\nDR_LOCAL_S3_MODEL_PREFIX=idle-model\n")
    assert main(["status", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["running"] is False and result["containers"] == []
    assert result["run"]["model_prefix"] == "idle-model" and result["run"]["id"] == 4242
    assert main(["status"]) == 0
    assert "idle-model" in capsys.readouterr().out


def test_watch_ends_by_itself_when_nothing_of_the_run_runs(workdir: Path, capsys, docker_engine: str, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", docker_engine)
    (workdir / "run.env").write_text("DR_RUN_ID=4343\nDR_LOCAL_S3_MODEL_PREFIX=idle-model\n")
    assert main(["watch", "--refresh", "0.05", "--progress-every", "60"]) == 0
    assert "idle-model" in capsys.readouterr().out
    assert main(["status", "--follow", "--json"]) == 2


def test_resume_with_nothing_recorded_does_nothing(workdir: Path, capsys, monkeypatch):
    monkeypatch.setenv("DR_RUN_STATE", str(workdir / "run-state" / "state.json"))
    (workdir / "run.env").write_text("DR_LOCAL_S3_MODEL_PREFIX=m-1\n")
    assert main(["resume"]) == 0
    assert capsys.readouterr().out.strip() != ""
    assert (workdir / "run.env").read_text() == "DR_LOCAL_S3_MODEL_PREFIX=m-1\n"


def test_idle_check_dry_run_powers_nothing_off(workdir: Path, capsys, docker_engine: str, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", docker_engine)
    monkeypatch.setenv("DR_RUN_STATE", str(workdir / "run-state" / "state.json"))
    (workdir / "run.env").write_text("DR_LOCAL_S3_MODEL_PREFIX=m-1\n")
    assert main(["idle-check", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() != ""


def test_a_bad_time_limit_is_one_line(workdir: Path, capsys, monkeypatch):
    monkeypatch.setenv("DR_RUN_STATE", str(workdir / "run-state" / "state.json"))
    (workdir / "run.env").write_text("DR_LOCAL_S3_MODEL_PREFIX=m-1\n")
    assert main(["train", "--max-minutes", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "max-minutes" in err


def test_blob_commands_say_they_are_for_azure(workdir: Path, capsys):
    (workdir / "run.env").write_text("DR_LOCAL_S3_MODEL_PREFIX=m-1\n")
    assert main(["sync-models", "m-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "azure" in err.lower()
    assert main(["models", "restore", "m-1"]) == 2
    assert "azure" in capsys.readouterr().err.lower()
