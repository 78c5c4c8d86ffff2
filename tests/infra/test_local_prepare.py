"""infra/local_prepare.py: your own machine prepared with the cloud hosts' first boot. The machine is a folder
(`root`) and a recording of the commands it answers: with and without a driver, Docker and the nvidia runtime,
in the real commands' output formats (lspci -nn, nvidia-smi -L, dpkg-query -W, docker version/info)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from infra.local_prepare import PACKAGE_PATH, Options, PrepareError, apply, inspect, main, plan
from tests.cloudinit.test_host_storage import SCRIPT as HOST_STORAGE

T4 = "00:1e.0 3D controller [0302]: NVIDIA Corporation TU104GL [Tesla T4] [10de:1eb8] (rev a1)"
GPU_LINE = "GPU 0: Tesla T4 (UUID: GPU-0e8b7c1f-2a3b-4c5d-9e8f-0123456789ab)"


class Recording:
    """The machine's answers to the commands inspect and apply run; every call is kept."""

    def __init__(self, *, gpu: bool = True, driver: bool = True, driver_package: bool = True, docker: bool = True,
                 runtime: str = "runc", toolkit: bool = True, failing: Optional[str] = None,
                 docker_cli: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.answers = {
            "lspci": (0, ("00:02.0 VGA compatible controller [0300]: Intel Corporation UHD [8086:9bc5]\n"
                          + (T4 + "\n" if gpu else ""))),
            "nvidia-smi": (0, GPU_LINE + "\n") if driver else (9, "NVIDIA-SMI has failed because it couldn't "
                                                                  "communicate with the NVIDIA driver.\n"),
            "dpkg-query": (0, "nvidia-driver-550-server install ok installed\n" if driver_package else ""),
            "docker version": (0, "27.5.1\n") if docker else (127, ""),
            "docker --version": (0, "Docker version 27.5.1, build 9f9e405\n") if docker or docker_cli else (127, ""),
            "docker info": (0, runtime + "\n") if docker else (127, ""),
            "nvidia-ctk": (0, "NVIDIA Container Toolkit CLI version 1.17.4\n") if toolkit else (127, ""),
        }
        self.failing = failing

    def __call__(self, argv):
        argv = tuple(argv)
        self.calls.append(argv)
        key = " ".join(argv[:2]) if argv[0] == "docker" else argv[0]
        if self.failing and self.failing in " ".join(argv):
            return subprocess.CompletedProcess(argv, 1, "", "failed")
        code, out = self.answers.get(key, (0, ""))
        return subprocess.CompletedProcess(argv, code, out, "")


def machine_root(tmp_path: Path, version: str = "24.04", daemon: Optional[str] = None) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(f'NAME="Ubuntu"\nVERSION_ID="{version}"\nID=ubuntu\n')
    if daemon is not None:
        (root / "etc/docker").mkdir()
        (root / "etc/docker/daemon.json").write_text(daemon)
    return root


def fake_package(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "session.tar.gz").write_bytes(b"package")


def test_inspect_reads_the_machine_as_its_commands_say(tmp_path):
    root = machine_root(tmp_path, daemon='{"runtimes": {}, "default-runtime": "runc"}')
    found = inspect(Recording(), root)
    assert (found.ubuntu, found.gpu, found.driver) == ("24.04", T4.split(": ", 1)[1], GPU_LINE)
    assert found.driver_packages == ("nvidia-driver-550-server",)
    assert (found.docker, found.default_runtime, found.configured_runtime, found.toolkit) == \
        ("27.5.1", "runc", "runc", True)
    bare = inspect(Recording(driver=False, driver_package=False, docker=False, toolkit=False), machine_root(
        tmp_path / "b"))
    assert (bare.driver, bare.driver_packages, bare.docker, bare.default_runtime, bare.toolkit) == \
        (None, (), None, None, False)


def test_a_machine_without_an_nvidia_gpu_is_refused(tmp_path):
    with pytest.raises(PrepareError, match="no NVIDIA GPU"):
        plan(inspect(Recording(gpu=False), machine_root(tmp_path)), Options("alice"))


def test_a_driver_that_is_installed_but_does_not_answer_is_not_replaced_without_the_flag(tmp_path):
    root = machine_root(tmp_path)
    machine = inspect(Recording(driver=False), root)
    with pytest.raises(PrepareError, match=r"nvidia-driver-550-server.*--install-driver"):
        plan(machine, Options("alice"), root)
    planned = plan(machine, Options("alice", install_driver=True), root)
    assert any(step.startswith("gpu-runtime: install Ubuntu's recommended") for step in planned.steps)


def test_another_default_runtime_in_daemon_json_is_not_changed_without_the_flag(tmp_path):
    root = machine_root(tmp_path, daemon='{"default-runtime": "crun"}')
    machine = inspect(Recording(runtime="crun"), root)
    with pytest.raises(PrepareError, match="default-runtime 'crun'.*--set-default-runtime"):
        plan(machine, Options("alice"), root)
    planned = plan(machine, Options("alice", set_default_runtime=True), root)
    assert any("make nvidia Docker's default runtime" in step for step in planned.steps)


def test_a_bare_machine_gets_docker_the_toolkit_and_the_runtime_and_a_ready_one_keeps_them(tmp_path):
    bare = plan(inspect(Recording(driver=False, driver_package=False, docker=False, toolkit=False, runtime=""),
                        machine_root(tmp_path / "a")), Options("alice"))
    steps = "\n".join(bare.steps)
    assert "install Ubuntu's recommended NVIDIA server driver" in steps and "install Ubuntu's docker.io" in steps
    assert "install the NVIDIA container toolkit" in steps and "make nvidia Docker's default" in steps
    stopped = plan(inspect(Recording(docker=False, docker_cli=True), machine_root(tmp_path / "c")), Options("alice"))
    assert any(step.startswith("docker: start Docker (installed") for step in stopped.steps)
    assert not any("docker.io" in step for step in stopped.steps)
    ready = plan(inspect(Recording(runtime="nvidia"), machine_root(tmp_path / "b")), Options("alice"))
    steps = "\n".join(ready.steps)
    assert f"keep the working driver ({GPU_LINE})" in steps and "keep Docker 27.5.1" in steps
    assert "install" not in steps.replace("reinstall", "") and "make nvidia" not in steps


def test_the_files_are_the_cloud_hosts_first_boot_for_a_local_host(tmp_path):
    root = machine_root(tmp_path)
    planned = plan(inspect(Recording(runtime="nvidia"), root), Options("alice"))
    files = {change.path: change for change in planned.files}
    system = files["/etc/deepracer/system.env"]
    assert (system.mode, system.owner, system.state) == (0o640, "root:alice", "new")
    text = system.content.decode()
    assert "DR_CLOUD=local\n" in text and "DR_LOCAL_S3_BUCKET=deepracer-local\n" in text
    assert "DR_LOCAL_ACCESS_KEY_ID=deepracer\n" in text and "DR_IDLE_STOP_MINUTES=0\n" in text
    assert f"DR_SESSION_PACKAGE_URL=file://{PACKAGE_PATH}\n" in files["/etc/deepracer/bootstrap.env"].content.decode()
    assert "/opt/deepracer/bin/bootstrap.sh" in files and "/opt/deepracer/bin/gpu-driver.sh" in files
    assert "/etc/systemd/system/deepracer-bootstrap.service" not in files  # Azure's unit, not a PC's
    bootstrap = Path(__file__).resolve().parents[2] / "cloudinit/scripts/bootstrap.sh"
    assert files["/opt/deepracer/bin/bootstrap.sh"].content == bootstrap.read_bytes()
    assert planned.commands[-1] == ("/opt/deepracer/bin/bootstrap.sh",)


def test_apply_writes_backs_up_and_runs_the_first_boot_and_a_second_run_changes_nothing(tmp_path):
    root = machine_root(tmp_path, daemon='{"runtimes": {}}')
    recording = Recording(runtime="nvidia")
    planned = plan(inspect(recording, root), Options("alice"), root)
    assert apply(planned, recording, root, package=fake_package, stamp="T1") == 0
    system = root / "etc/deepracer/system.env"
    assert stat.S_IMODE(system.stat().st_mode) == 0o640
    assert (root / PACKAGE_PATH.lstrip("/")).read_bytes() == b"package"
    assert (root / "etc/docker/daemon.json.deepracer-backup-T1").read_text() == '{"runtimes": {}}'
    assert recording.calls[-3:] == [("systemctl", "daemon-reload"),
                                    ("systemctl", "enable", "--now", "deepracer-scratch.service"),
                                    ("/opt/deepracer/bin/bootstrap.sh",)]
    secret = [line for line in system.read_text().splitlines() if line.startswith("DR_LOCAL_SECRET_ACCESS_KEY=")]
    # again: MinIO's keys are kept (the models were written with them), nothing differs, nothing is backed up
    again = plan(inspect(recording, root), Options("alice"), root)
    assert {change.state for change in again.files} == {"same"}
    assert secret[0] == f"DR_LOCAL_SECRET_ACCESS_KEY={again.host.minio_secret_key}"
    # a file someone changed is backed up before it is written again
    (root / "opt/deepracer/bin/bootstrap.sh").write_text("edited\n")
    changed = plan(inspect(recording, root), Options("alice"), root)
    assert [c.path for c in changed.files if c.state == "changed"] == ["/opt/deepracer/bin/bootstrap.sh"]
    assert apply(changed, recording, root, package=fake_package, stamp="T2") == 0
    assert (root / "opt/deepracer/bin/bootstrap.sh.deepracer-backup-T2").read_text() == "edited\n"


def test_a_failing_first_boot_is_exit_1_naming_the_command(tmp_path, capsys):
    root = machine_root(tmp_path)
    recording = Recording(runtime="nvidia", failing="bootstrap.sh")
    planned = plan(inspect(recording, root), Options("alice"), root)
    assert apply(planned, recording, root, package=fake_package) == 1
    assert "failed: /opt/deepracer/bin/bootstrap.sh (exit 1)" in capsys.readouterr().err


def test_the_command_shows_the_plan_asks_once_and_refuses_in_one_line(tmp_path, capsys, monkeypatch):
    root = machine_root(tmp_path)
    recording = Recording(runtime="nvidia")
    assert main(["--plan", "--user", "alice"], run=recording, root=root) == 0
    out = capsys.readouterr().out
    assert out.startswith("files:\n  /etc/deepracer/system.env: new\n") and "first boot, as on a cloud host:" in out
    assert main(["--user", "alice"], run=recording, root=root, answer=lambda _: "n") == 0
    assert capsys.readouterr().out.endswith("nothing changed\n") and not (root / "etc/deepracer").exists()
    monkeypatch.delenv("SUDO_USER", raising=False)
    assert main([], run=recording, root=root) == 2
    err = capsys.readouterr().err
    assert err.startswith("local_prepare: --user: expected the login user") and len(err.splitlines()) == 1
    assert main(["--user", "alice"], run=Recording(gpu=False), root=root) == 2
    # values system.env cannot hold are one line too, not a traceback
    assert main(["--plan", "--user", "alice", "--workers", "0"], run=recording, root=root) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "local_prepare: workers: expected at least 1, got 0"
    assert main(["--plan", "--user", "alice", "--simapp-version", "6.0 gpu"], run=recording, root=root) == 2
    assert "local_prepare: " in capsys.readouterr().err


def test_host_storage_takes_a_package_from_this_disk_and_reports_to_no_bucket(tmp_path):
    package = tmp_path / "session.tar.gz"
    package.write_bytes(b"package")
    (tmp_path / "bootstrap.env").write_text(f"DR_SESSION_PACKAGE_URL=file://{package}\nDR_STATUS_URL=\n"
                                            "DR_HOST_USER=alice\n")
    env = {**os.environ, "DR_BOOTSTRAP_ENV": str(tmp_path / "bootstrap.env"),
           "DR_BOOTSTRAP_LOG": str(tmp_path / "log"), "DR_BOOTSTRAP_STATUS": str(tmp_path / "state/bootstrap.json"),
           "DR_IMDS_ENDPOINT": "http://127.0.0.1:9"}  # nothing answers there: a local report must not ask
    (tmp_path / "log").write_text("step doctor\n")
    copied = tmp_path / "copy.tar.gz"
    result = subprocess.run([sys.executable, str(HOST_STORAGE), "get", f"file://{package}", str(copied)], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and copied.read_bytes() == b"package"
    result = subprocess.run([sys.executable, str(HOST_STORAGE), "report", "ready", "doctor"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"host-storage: reported ready to {tmp_path / 'state/bootstrap.json'}"
    assert '"state": "ready"' in (tmp_path / "state/bootstrap.json").read_text()


def test_a_copy_of_the_models_is_asked_once_kept_on_the_next_run_and_a_bad_url_is_one_line(tmp_path, capsys):
    root = machine_root(tmp_path)
    recording = Recording(runtime="nvidia")
    planned = plan(inspect(recording, root), Options("alice", copy_models_to="s3://my-deepracer-models",
                                                     copy_profile="home"), root)
    assert "models: also kept in s3://my-deepracer-models after each stop and every 10 minutes, as alice's AWS " \
           "profile home" in planned.steps
    assert apply(planned, recording, root, package=fake_package, stamp="T1") == 0
    text = (root / "etc/deepracer/system.env").read_text()
    assert "DR_MODEL_COPY_URL=s3://my-deepracer-models\nDR_MODEL_COPY_PROFILE=home\n" in text
    again = plan(inspect(recording, root), Options("alice"), root)  # the copy stays without the options
    assert {change.state for change in again.files} == {"same"}
    azure = plan(inspect(recording, root), Options("alice", copy_models_to="https://mine1.blob.core.windows.net/models"))
    assert azure.host.model_copy_url == "https://mine1.blob.core.windows.net/models"
    folder = plan(inspect(recording, root), Options("alice", copy_models_to="s3://my-backups/deepracer"))
    assert folder.host.model_copy_url == "s3://my-backups/deepracer"
    capsys.readouterr()
    assert main(["--plan", "--user", "alice", "--copy-models-to", "s3://My_Bucket"], run=recording, root=root) == 2
    err = capsys.readouterr().err
    assert err == ("local_prepare: --copy-models-to: expected s3://<bucket>[/<folder>] or "
                   "https://<account>.blob.core.windows.net/<container>[/<folder>], got 's3://My_Bucket'\n")
