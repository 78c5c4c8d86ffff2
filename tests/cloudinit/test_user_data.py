"""The rendered user data: cloud-init's own schema checker, EC2's size limit, the files it writes, shellcheck."""

from __future__ import annotations

import base64
import configparser
import gzip
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.bootstrap import CLOUDINIT_DIR, EC2_USER_DATA_LIMIT, HostConfig, aws_user_data, render_user_data

BUCKET = "deepracer-aws-0123abcd"
HOST = HostConfig(
    cloud="aws", region="eu-west-1", bucket=BUCKET,
    simapp_image="awsdeepracercommunity/deepracer-simapp:6.0.4-gpu", workers=3,
    session_package_url=f"s3://{BUCKET}/bootstrap/session.tar.gz", status_url=f"s3://{BUCKET}/hosts/")
SCRIPTS = sorted(p for p in (CLOUDINIT_DIR / "scripts").iterdir() if p.is_file())
UNITS = sorted(p for p in (CLOUDINIT_DIR / "units").iterdir() if p.is_file())
# What only Azure's hosts get (plain Ubuntu needs a driver installer, and the unit that resumes after its reboot).
AZURE_SCRIPTS = sorted((CLOUDINIT_DIR / "scripts" / "azure").iterdir())
AZURE_UNITS = sorted((CLOUDINIT_DIR / "units" / "azure").iterdir())
# cloud-init's schema check accepts any top-level key; a typo there would be silently ignored on the VM.
KNOWN_TOP_LEVEL_KEYS = {"package_update", "package_upgrade", "runcmd", "write_files", "final_message"}


def files_of(user_data: str) -> dict[str, dict]:
    """write_files entries by path, with gz+b64 content decoded as cloud-init decodes it."""
    entries = {}
    for entry in yaml.safe_load(user_data)["write_files"]:
        content = entry["content"]
        if entry.get("encoding") == "gz+b64":
            content = gzip.decompress(base64.b64decode(content)).decode()
        entries[entry["path"]] = {**entry, "content": content}
    return entries


def parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def user_data() -> str:
    return render_user_data(HOST)


@pytest.mark.parametrize("host", [
    HOST,
    HostConfig(**{**HOST.__dict__, "upload_bucket": "my-droa-uploads", "workers": 1}),
], ids=["default", "upload-bucket"])
def test_cloud_init_schema_checker_accepts_the_user_data(host: HostConfig, tmp_path: Path):
    path = tmp_path / "user-data"
    path.write_text(render_user_data(host))
    result = subprocess.run(["cloud-init", "schema", "-c", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_schema_checker_would_catch_a_type_error(tmp_path: Path, user_data: str):
    """The check above can fail: the same checker rejects our document with one wrong type."""
    broken = yaml.safe_load(user_data)
    broken["package_update"] = "sometimes"
    path = tmp_path / "user-data"
    path.write_text("#cloud-config\n" + yaml.safe_dump(broken))
    result = subprocess.run(["cloud-init", "schema", "-c", str(path)], capture_output=True, text=True)
    assert result.returncode != 0


def test_only_known_top_level_keys(user_data: str):
    assert user_data.startswith("#cloud-config\n")
    assert set(yaml.safe_load(user_data)) <= KNOWN_TOP_LEVEL_KEYS


def test_fits_ec2_user_data_limit_with_room_to_grow(user_data: str):
    # EC2 counts the bytes before base64: the gzipped cloud-config.
    size = len(base64.b64decode(aws_user_data(HOST)))
    assert size < EC2_USER_DATA_LIMIT * 0.85, f"{size} bytes: close to EC2's {EC2_USER_DATA_LIMIT}"


def test_aws_user_data_unpacks_to_the_cloud_config_as_cloud_init_does(user_data: str):
    packed = base64.b64decode(aws_user_data(HOST))
    assert packed[:2] == b"\x1f\x8b"  # gzip's magic: how cloud-init recognises compressed user data
    assert gzip.decompress(packed).decode() == user_data
    assert aws_user_data(HOST) == aws_user_data(HOST)  # no timestamp inside: no spurious diff in preview


def test_user_data_over_ec2s_limit_is_refused(monkeypatch):
    monkeypatch.setattr("infra.bootstrap.EC2_USER_DATA_LIMIT", 1000)
    with pytest.raises(ValueError, match="bytes gzipped; EC2 accepts at most 1000"):
        aws_user_data(HOST)


def test_rendering_is_deterministic():
    """Identical user data for an identical checkout: no spurious diffs in `pulumi preview`."""
    assert render_user_data(HOST) == render_user_data(HOST)


def test_system_env_has_drfc_names_and_the_stack_values(user_data: str):
    entry = files_of(user_data)["/etc/deepracer/system.env"]
    assert entry["permissions"] == "0644" and entry["owner"] == "root:root"
    assert parse_env(entry["content"]) == {
        "DR_CLOUD": "aws", "DR_AWS_APP_REGION": "eu-west-1", "DR_LOCAL_S3_BUCKET": BUCKET,
        "DR_UPLOAD_S3_BUCKET": "not-defined", "DR_SIMAPP_SOURCE": "awsdeepracercommunity/deepracer-simapp",
        "DR_SIMAPP_VERSION": "6.0.4-gpu", "DR_WORKERS": "3", "DR_IDLE_STOP_MINUTES": "30",
        "DR_POWER_OFF_AFTER_MAX_MINUTES": "False"}


def test_system_env_carries_the_stacks_cost_controls_and_notification_topic():
    topic = "arn:aws:sns:eu-west-1:123456789012:deepracer-aws-notifications-1a2b3c4"
    host = HostConfig(**{**HOST.__dict__, "idle_stop_minutes": 0, "power_off_after_max_minutes": True,
                         "notify_topic_arn": topic})
    values = parse_env(files_of(render_user_data(host))["/etc/deepracer/system.env"]["content"])
    assert (values["DR_IDLE_STOP_MINUTES"], values["DR_POWER_OFF_AFTER_MAX_MINUTES"]) == ("0", "True")
    assert values["DR_NOTIFY_TOPIC_ARN"] == topic
    assert "DR_NOTIFY_TOPIC_ARN" not in render_user_data(HOST)  # no topic, no key


def test_the_stacks_dashboard_setting_reaches_the_first_boot():
    host = HostConfig(**{**HOST.__dict__, "dashboard": True})
    values = parse_env(files_of(render_user_data(host))["/etc/deepracer/system.env"]["content"])
    assert values["DR_DASHBOARD_AT_BOOT"] == "True"
    assert "DR_DASHBOARD_AT_BOOT" not in render_user_data(HOST)  # off: nothing said, nothing enabled


def test_system_env_cost_keys_are_the_ones_the_session_reads():
    """One place per name: the keys written here are settings of session.core.config's SystemConfig."""
    from session.core.config import SystemConfig

    keys = {setting.key for setting in SystemConfig.settings()}
    assert {"DR_IDLE_STOP_MINUTES", "DR_POWER_OFF_AFTER_MAX_MINUTES"} <= keys


def test_bootstrap_env_tells_the_host_where_its_package_and_status_go(user_data: str):
    values = parse_env(files_of(user_data)["/etc/deepracer/bootstrap.env"]["content"])
    assert values == {"DR_AWS_APP_REGION": "eu-west-1",
                      "DR_SESSION_PACKAGE_URL": f"s3://{BUCKET}/bootstrap/session.tar.gz",
                      "DR_STATUS_URL": f"s3://{BUCKET}/hosts/", "DR_HOST_USER": "ubuntu"}


@pytest.mark.parametrize("field, value, message", [
    ("bucket", "my bucket", "DR_LOCAL_S3_BUCKET: expected letters"),
    ("region", "us-east-1\nDR_CLOUD=evil", "DR_AWS_APP_REGION: expected letters"),
    ("simapp_image", "deepracer-simapp", "simapp_image: expected <repository>:<tag>"),
    ("simapp_image", "repo:tag$(reboot)", "DR_SIMAPP_VERSION: expected letters"),
    ("workers", 0, "workers: expected at least 1"),
    ("host_user", "ubuntu;rm", "DR_HOST_USER: expected letters"),
    ("idle_stop_minutes", -5, "idle_stop_minutes: expected 0 or more"),
    ("notify_topic_arn", "arn:aws:sns:x y", "DR_NOTIFY_TOPIC_ARN: expected letters"),
])
def test_values_that_bash_would_misread_are_refused(field: str, value, message: str):
    with pytest.raises(ValueError, match=message.replace("$", r"\$").replace("(", r"\(")):
        render_user_data(HostConfig(**{**HOST.__dict__, field: value}))


def test_scripts_and_units_arrive_byte_identical_and_executable(user_data: str):
    files = files_of(user_data)
    for script in SCRIPTS:
        entry = files[f"/opt/deepracer/bin/{script.name}"]
        assert entry["content"] == script.read_text() and entry["permissions"] == "0755"
    for unit in UNITS:
        entry = files[f"/etc/systemd/system/{unit.name}"]
        assert entry["content"] == unit.read_text() and entry["permissions"] == "0644"


def test_runcmd_runs_files_that_write_files_creates(user_data: str):
    config = yaml.safe_load(user_data)
    written = set(files_of(user_data))
    commands = config["runcmd"]
    assert ["/opt/deepracer/bin/bootstrap.sh"] in commands
    for command in commands:
        if command[0].startswith("/"):
            assert command[0] in written
    enabled = [c[-1] for c in commands if c[:2] == ["systemctl", "enable"]]
    assert enabled == ["deepracer-scratch.service"]
    assert f"/etc/systemd/system/{enabled[0]}" in written


def test_scratch_unit_runs_on_every_boot_before_docker():
    unit = configparser.ConfigParser(strict=False)
    unit.read(CLOUDINIT_DIR / "units" / "deepracer-scratch.service")
    assert unit["Service"]["Type"] == "oneshot"
    assert unit["Service"]["ExecStart"] == "/opt/deepracer/bin/scratch-disk.sh"
    assert "docker.service" in unit["Unit"]["Before"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("unit", UNITS + AZURE_UNITS, ids=lambda u: u.name)
def test_units_pass_systemd_analyze_verify(unit: Path, tmp_path: Path):
    """systemd's own checker, offline. It wants ExecStart to exist, so the unit points at copies of our
    scripts in tmp_path; a typo'd key is printed (exit 0), so stderr must be empty."""
    for script in SCRIPTS:
        shutil.copy2(script, tmp_path / script.name)
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/deepracer/bin/", f"{tmp_path}/"))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("script", [s for s in SCRIPTS + AZURE_SCRIPTS if s.suffix == ".sh"], ids=lambda s: s.name)
def test_every_shell_script_passes_shellcheck(script: Path):
    # -x: what a script sources from cloudinit/ (bootstrap.sh the Azure installer) is checked with it.
    result = subprocess.run(["shellcheck", "-x", "--source-path=SCRIPTDIR", "--severity=style", "--shell=bash",
                             str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_shellcheck_is_really_checking(tmp_path: Path):
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $DIR/*\n")
    assert subprocess.run(["shellcheck", str(bad)], capture_output=True).returncode != 0


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.suffix == ".py"], ids=lambda s: s.name)
def test_python_scripts_compile(script: Path):
    compile(script.read_text(), str(script), "exec")  # in memory: no __pycache__ in cloudinit/


def test_bootstrap_refuses_an_unknown_step_before_doing_anything():
    text = (CLOUDINIT_DIR / "scripts" / "bootstrap.sh").read_text()
    steps = text.split("ALL_STEPS=(", 1)[1].split(")", 1)[0].split()
    for step in steps:
        assert f"step_{step.replace('-', '_')}() {{" in text, f"step {step} has no function"
    assert "session-package" in steps  # deepracer-update runs this one
    assert "bootstrap.sh session-package" in (CLOUDINIT_DIR / "scripts" / "deepracer-update.sh").read_text()


# -- Azure: the same cloudinit/, rendered with the blob container, MinIO's credentials and the admin user ---------

from infra.bootstrap import AZURE_CUSTOM_DATA_LIMIT, azure_custom_data  # noqa: E402 - with the Azure tests that use it

BLOB = "https://deepracerk3x9p2m7q4z8.blob.core.windows.net/models/"
AZURE_HOST = HostConfig(
    cloud="azure", region="us-east-1", bucket="models",
    simapp_image="awsdeepracercommunity/deepracer-simapp:6.0.4-gpu", workers=3,
    session_package_url=f"{BLOB}bootstrap/session.tar.gz", status_url=f"{BLOB}hosts/", host_user="azureuser",
    minio_access_key="ABCDEFGHIJ0123456789", minio_secret_key="s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr",
    azure_storage_account="deepracerk3x9p2m7q4z8", azure_blob_container="models")


@pytest.fixture(scope="module")
def azure_user_data() -> str:
    return render_user_data(AZURE_HOST)


def test_cloud_init_schema_checker_accepts_the_azure_custom_data(azure_user_data: str, tmp_path: Path):
    path = tmp_path / "custom-data"
    path.write_text(azure_user_data)
    result = subprocess.run(["cloud-init", "schema", "-c", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(yaml.safe_load(azure_user_data)) <= KNOWN_TOP_LEVEL_KEYS


def test_schema_checker_checks_the_deferred_file(azure_user_data: str, tmp_path: Path):
    """`defer` is ours on Azure only: the checker knows it and rejects a wrong type."""
    broken = yaml.safe_load(azure_user_data)
    broken["write_files"][0]["defer"] = "later"
    path = tmp_path / "custom-data"
    path.write_text("#cloud-config\n" + yaml.safe_dump(broken))
    assert subprocess.run(["cloud-init", "schema", "-c", str(path)], capture_output=True).returncode != 0


def test_custom_data_fits_azures_limit_as_azure_counts_it(azure_user_data: str):
    encoded = azure_custom_data(AZURE_HOST)
    decoded = base64.b64decode(encoded, validate=True)
    assert decoded == azure_user_data.encode()
    # Azure decodes customData and allows 65535 bytes of the result; ours is a fraction of it.
    assert len(decoded) < AZURE_CUSTOM_DATA_LIMIT * 0.3, len(decoded)


def test_azure_system_env_holds_minio_and_the_container_for_root_and_the_login_user(azure_user_data: str):
    entry = files_of(azure_user_data)["/etc/deepracer/system.env"]
    assert parse_env(entry["content"]) == {
        "DR_CLOUD": "azure", "DR_AWS_APP_REGION": "us-east-1", "DR_LOCAL_S3_BUCKET": "models",
        "DR_UPLOAD_S3_BUCKET": "not-defined", "DR_SIMAPP_SOURCE": "awsdeepracercommunity/deepracer-simapp",
        "DR_SIMAPP_VERSION": "6.0.4-gpu", "DR_WORKERS": "3", "DR_IDLE_STOP_MINUTES": "30",
        "DR_POWER_OFF_AFTER_MAX_MINUTES": "False", "DR_LOCAL_ACCESS_KEY_ID": "ABCDEFGHIJ0123456789",
        "DR_LOCAL_SECRET_ACCESS_KEY": "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr",
        "DR_AZURE_STORAGE_ACCOUNT": "deepracerk3x9p2m7q4z8", "DR_AZURE_BLOB_CONTAINER": "models"}
    # The owner's group is the login user, created by cloud-init after write_files: so written at the final stage.
    assert (entry["permissions"], entry["owner"], entry["defer"]) == ("0640", "root:azureuser", True)


def test_azure_bootstrap_env_has_blob_urls_and_no_aws_region(azure_user_data: str):
    assert parse_env(files_of(azure_user_data)["/etc/deepracer/bootstrap.env"]["content"]) == {
        "DR_SESSION_PACKAGE_URL": f"{BLOB}bootstrap/session.tar.gz", "DR_STATUS_URL": f"{BLOB}hosts/",
        "DR_HOST_USER": "azureuser"}


def _host_path(source: Path) -> str:
    scripts = "scripts" in source.relative_to(CLOUDINIT_DIR).parts
    return f"/opt/deepracer/bin/{source.name}" if scripts else f"/etc/systemd/system/{source.name}"


def test_both_clouds_run_the_same_scripts_and_units(azure_user_data: str, user_data: str):
    aws, azure = files_of(user_data), files_of(azure_user_data)
    for source in SCRIPTS + UNITS:
        path = _host_path(source)
        assert azure[path]["content"] == aws[path]["content"] == source.read_text()
    assert yaml.safe_load(azure_user_data)["runcmd"] == yaml.safe_load(user_data)["runcmd"]


def test_only_azure_gets_the_driver_installer_and_its_resume_unit(azure_user_data: str, user_data: str):
    """EC2's AMI brings the NVIDIA driver; its 16 KB of user data carries no installer for one."""
    aws, azure = files_of(user_data), files_of(azure_user_data)
    assert [p.name for p in AZURE_SCRIPTS] == ["gpu-driver.sh"]
    assert [p.name for p in AZURE_UNITS] == ["deepracer-bootstrap.service"]
    for source in AZURE_SCRIPTS + AZURE_UNITS:
        path = _host_path(source)
        assert azure[path]["content"] == source.read_text() and path not in aws
        assert azure[path]["permissions"] == ("0755" if source in AZURE_SCRIPTS else "0644")
    shipped = {p.name for p in SCRIPTS + UNITS + AZURE_SCRIPTS + AZURE_UNITS}
    assert len(shipped) == len(SCRIPTS + UNITS + AZURE_SCRIPTS + AZURE_UNITS)  # one name, one file on the host


@pytest.mark.parametrize("field", ["minio_access_key", "minio_secret_key", "azure_storage_account",
                                   "azure_blob_container"])
def test_an_azure_host_without_its_storage_values_is_refused(field: str):
    with pytest.raises(ValueError, match="expected a value for an Azure host"):
        render_user_data(HostConfig(**{**AZURE_HOST.__dict__, field: None}))


def test_a_secret_that_bash_would_misread_is_refused():
    with pytest.raises(ValueError, match="DR_LOCAL_SECRET_ACCESS_KEY: expected letters"):
        render_user_data(HostConfig(**{**AZURE_HOST.__dict__, "minio_secret_key": "a$b c"}))


def test_scratch_unit_waits_for_azures_temp_disk_and_knows_the_login_user():
    unit = configparser.ConfigParser(strict=False)
    unit.read(CLOUDINIT_DIR / "units" / "deepracer-scratch.service")
    assert "mnt.mount" in unit["Unit"]["After"].split()
    assert unit["Service"]["EnvironmentFile"] == "-/etc/deepracer/bootstrap.env"
    script = (CLOUDINIT_DIR / "scripts" / "scratch-disk.sh").read_text()
    assert 'OWNER=${DR_SCRATCH_OWNER:-${DR_HOST_USER:-ubuntu}}' in script
