"""The bootstrap's GPU step on plain Ubuntu (Azure), rehearsed against recorded command outputs.

`step_gpu_runtime` runs as bootstrap.sh runs it: bash with every function of cloudinit/scripts/bootstrap.sh and
the Azure installer it sources (cloudinit/scripts/azure/gpu-driver.sh), with the stand-ins of host_commands.py
first on PATH (apt, ubuntu-drivers, the kernel, nvidia-smi, systemctl). No GPU, kernel or apt archive can change
here; the stand-ins keep that state in a file, print what the real commands print and refuse what they refuse
(apt without a lock timeout while unattended-upgrades holds the dpkg lock; modprobe without modules for the
running kernel; nvidia-smi before nvidia-utils is installed, or while the module is not loaded).
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from infra.bootstrap import CLOUDINIT_DIR
from tests.cloudinit import host_commands

BOOTSTRAP = CLOUDINIT_DIR / "scripts" / "bootstrap.sh"
INSTALLER = CLOUDINIT_DIR / "scripts" / "azure" / "gpu-driver.sh"
RESUME_UNIT = CLOUDINIT_DIR / "units" / "azure" / "deepracer-bootstrap.service"

# `ubuntu-drivers list --gpgpu` on a Standard_NC8as_T4_v3 (Tesla T4) under Ubuntu 24.04's linux-azure kernel. The
# format is ubuntu-drivers-common's `list` command (script `ubuntu-drivers`, list(): "<driver>, (kernel modules
# provided by <linux-modules metapackage of the kernel flavour>)"), sorted by _cmp_gfx_alternatives_gpgpu with the
# most preferred first (-server, then plain, then -server-open, then -open for a GPU that does not prefer open
# modules; production branches before long-term ones); DKMS-only drivers are left out without --include-dkms.
# Package names as the Ubuntu archive has them (packages.ubuntu.com, noble-updates, restricted/kernel).
LIST_GPGPU = """\
nvidia-driver-580-server, (kernel modules provided by linux-modules-nvidia-580-server-azure)
nvidia-driver-570-server, (kernel modules provided by linux-modules-nvidia-570-server-azure)
nvidia-driver-535-server, (kernel modules provided by linux-modules-nvidia-535-server-azure)
nvidia-driver-580, (kernel modules provided by linux-modules-nvidia-580-azure)
nvidia-driver-570, (kernel modules provided by linux-modules-nvidia-570-azure)
nvidia-driver-535, (kernel modules provided by linux-modules-nvidia-535-azure)
nvidia-driver-580-server-open, (kernel modules provided by linux-modules-nvidia-580-server-open-azure)
nvidia-driver-570-server-open, (kernel modules provided by linux-modules-nvidia-570-server-open-azure)
nvidia-driver-580-open, (kernel modules provided by linux-modules-nvidia-580-open-azure)
"""
IMAGE_KERNEL = "6.8.0-1041-azure"  # the marketplace image's kernel
NEWEST_KERNEL = "6.8.0-1044-azure"  # the archive's newest linux-azure ABI

# The packages that matter, with the dependencies packages.ubuntu.com lists for them: the flavour metapackage
# depends on the newest ABI's modules, which depend on that ABI's kernel image.
ARCHIVE = {
    "ubuntu-drivers-common": [],
    "nvidia-headless-no-dkms-580-server": ["libnvidia-compute-580-server", "nvidia-kernel-common-580-server"],
    "nvidia-utils-580-server": ["libnvidia-compute-580-server"],
    "libnvidia-compute-580-server": [],
    "nvidia-kernel-common-580-server": [],
    "linux-modules-nvidia-580-server-azure": [f"linux-modules-nvidia-580-server-{NEWEST_KERNEL}",
                                              "nvidia-kernel-common-580-server"],
    f"linux-modules-nvidia-580-server-{NEWEST_KERNEL}": [f"linux-image-{NEWEST_KERNEL}"],
    f"linux-image-{NEWEST_KERNEL}": [],
    f"linux-image-{IMAGE_KERNEL}": [],
}
# The running kernel's own modules, when the archive has them for this branch.
IMAGE_KERNEL_MODULES = {f"linux-modules-nvidia-580-server-{IMAGE_KERNEL}": [f"linux-image-{IMAGE_KERNEL}"]}


@dataclass
class Run:
    code: int
    output: str
    state: dict

    def calls(self, command: str) -> list[list[str]]:
        return [call[1:] for call in self.state["calls"] if call[0] == command]


def _functions(script: Path) -> str:
    """Every top-level function of a bash script: the definitions only, none of its top-level commands."""
    return "".join(re.findall(r"^[a-z_]+\(\) \{(?: [^\n]*\}\n|\n.*?^\}\n)", script.read_text(), re.M | re.S))


class Host:
    """One VM across boots: its state file, its /opt/deepracer/bin and /var/lib/deepracer."""

    def __init__(self, tmp_path: Path, archive: dict[str, list[str]], *, with_installer: bool = True,
                 dpkg_lock_held: bool = False) -> None:
        self.bin, self.fakes, self.state_dir = tmp_path / "opt-bin", tmp_path / "fakes", tmp_path / "state"
        for folder in (self.bin, self.fakes, self.state_dir):
            folder.mkdir()
        if with_installer:
            shutil.copy2(INSTALLER, self.bin / INSTALLER.name)
        host_commands.install(self.fakes)
        self.state_file = tmp_path / "host.json"
        self.state_file.write_text(json.dumps({
            "calls": [], "bin": str(self.fakes), "archive": archive, "kernel": IMAGE_KERNEL,
            "installed": ["ubuntu-drivers-common", f"linux-image-{IMAGE_KERNEL}"], "module_loaded": False,
            "dpkg_lock_held": dpkg_lock_held, "ubuntu_drivers_list": LIST_GPGPU}))

    def state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def reboot_into(self, kernel: str) -> None:
        state = self.state()
        state.update(kernel=kernel, module_loaded=False)
        self.state_file.write_text(json.dumps(state))

    def gpu_step(self) -> Run:
        script = "\n".join([
            "set -Eeuo pipefail", f"BIN={self.bin}", f"STATE_DIR={self.state_dir}",
            _functions(BOOTSTRAP), "step_gpu_runtime", "echo STEP-DONE"])
        env = {"PATH": f"{self.fakes}:/usr/bin:/bin", "HOST_STATE": str(self.state_file), "LANG": "C.UTF-8"}
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
        return Run(result.returncode, result.stdout + result.stderr, self.state())


def _installs_waited_for_the_lock(run: Run) -> bool:
    installs = [call for call in run.calls("apt-get") if "install" in call]
    return bool(installs) and all(any(a.startswith("DPkg::Lock::Timeout=") for a in call) for call in installs)


@pytest.mark.parametrize("dpkg_lock_held", [True, False], ids=["unattended-upgrades-holds-dpkg-lock", "lock-free"])
def test_running_kernel_with_modules_gets_the_driver_nvidia_smi_and_its_modules_without_a_reboot(
        tmp_path: Path, dpkg_lock_held: bool):
    host = Host(tmp_path, {**ARCHIVE, **IMAGE_KERNEL_MODULES}, dpkg_lock_held=dpkg_lock_held)
    run = host.gpu_step()
    assert run.code == 0 and "STEP-DONE" in run.output, run.output
    assert "GPU 0: Tesla T4" in run.output
    assert {"nvidia-headless-no-dkms-580-server", "nvidia-utils-580-server",
            f"linux-modules-nvidia-580-server-{IMAGE_KERNEL}",
            "linux-modules-nvidia-580-server-azure"} <= set(run.state["installed"])
    assert run.state["module_loaded"] and run.state["kernel"] == IMAGE_KERNEL
    assert ["reboot"] not in run.calls("systemctl")
    assert _installs_waited_for_the_lock(run)
    assert not (host.state_dir / "driver-reboot").exists()


def test_running_kernel_without_modules_reboots_once_into_the_new_kernel_and_the_step_then_passes(tmp_path: Path):
    host = Host(tmp_path, ARCHIVE, dpkg_lock_held=True)
    first = host.gpu_step()
    assert first.code == 0 and "STEP-DONE" not in first.output, first.output
    assert f"no 580-server modules for the running kernel {IMAGE_KERNEL}" in first.output
    assert first.calls("systemctl") == [["enable", "deepracer-bootstrap.service"], ["reboot"]]
    assert (host.state_dir / "driver-reboot").exists()
    assert {"nvidia-utils-580-server", f"linux-modules-nvidia-580-server-{NEWEST_KERNEL}",
            f"linux-image-{NEWEST_KERNEL}"} <= set(first.state["installed"])
    assert _installs_waited_for_the_lock(first)

    host.reboot_into(NEWEST_KERNEL)
    resumed = host.gpu_step()
    assert resumed.code == 0 and "STEP-DONE" in resumed.output, resumed.output
    assert "GPU 0: Tesla T4" in resumed.output
    assert resumed.calls("systemctl").count(["reboot"]) == 1


def test_a_gpu_that_prefers_open_modules_gets_the_open_branch_with_the_branchs_one_nvidia_utils(tmp_path: Path):
    """For a GPU whose driver prefers open modules, -server-open comes first (_get_fit_level_gpgpu); its
    userspace, nvidia-smi included, is the branch's one nvidia-utils-<N>-server package."""
    open_first = ("nvidia-driver-580-server-open, (kernel modules provided by "
                  "linux-modules-nvidia-580-server-open-azure)\n" + LIST_GPGPU)
    archive = {**ARCHIVE,
               "nvidia-headless-no-dkms-580-server-open": ["libnvidia-compute-580-server"],
               "linux-modules-nvidia-580-server-open-azure": [f"linux-modules-nvidia-580-server-open-{NEWEST_KERNEL}"],
               f"linux-modules-nvidia-580-server-open-{NEWEST_KERNEL}": [f"linux-image-{NEWEST_KERNEL}"],
               f"linux-modules-nvidia-580-server-open-{IMAGE_KERNEL}": [f"linux-image-{IMAGE_KERNEL}"]}
    host = Host(tmp_path, archive)
    state = host.state()
    state["ubuntu_drivers_list"] = open_first
    host.state_file.write_text(json.dumps(state))
    run = host.gpu_step()
    assert run.code == 0 and "STEP-DONE" in run.output, run.output
    assert {"nvidia-headless-no-dkms-580-server-open", "nvidia-utils-580-server",
            f"linux-modules-nvidia-580-server-open-{IMAGE_KERNEL}"} <= set(run.state["installed"])
    assert "nvidia-headless-no-dkms-580-server" not in run.state["installed"]


def test_no_second_reboot_when_the_new_kernel_did_not_boot(tmp_path: Path):
    host = Host(tmp_path, ARCHIVE)
    assert host.gpu_step().code == 0
    host.reboot_into(IMAGE_KERNEL)  # say the boot loader kept the old kernel
    again = host.gpu_step()
    assert again.code != 0 and "STEP-DONE" not in again.output
    assert f"no 580-server modules for the running kernel {IMAGE_KERNEL}, even after a reboot" in again.output
    assert again.calls("systemctl").count(["reboot"]) == 1


def test_an_image_whose_own_driver_is_broken_fails_the_step_instead_of_installing_another(tmp_path: Path):
    """AWS: the DLAMI brings its driver, and its user data no installer; a broken driver is reported, not patched."""
    host = Host(tmp_path, ARCHIVE, with_installer=False)
    run = host.gpu_step()
    assert run.code != 0 and "STEP-DONE" not in run.output
    assert run.calls("apt-get") == [] and run.calls("ubuntu-drivers") == []


def test_no_server_driver_is_one_clear_line(tmp_path: Path):
    host = Host(tmp_path, ARCHIVE)
    state = host.state()
    state["ubuntu_drivers_list"] = "nvidia-driver-580, (kernel modules provided by linux-modules-nvidia-580-azure)\n"
    host.state_file.write_text(json.dumps(state))
    run = host.gpu_step()
    assert run.code != 0
    assert "ubuntu-drivers offers no server driver with prebuilt modules" in run.output


# -- the resume unit ----------------------------------------------------------------------------------------------

def _unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(path)
    return unit


def test_resume_unit_runs_the_bootstrap_once_after_the_reboot():
    unit = _unit(RESUME_UNIT)
    assert RESUME_UNIT.name in INSTALLER.read_text()  # the name the installer enables
    assert unit["Service"]["Type"] == "oneshot"
    assert unit["Service"]["ExecStart"] == "/opt/deepracer/bin/bootstrap.sh"
    # It disables itself before the bootstrap starts: whatever the bootstrap does, it cannot start it again.
    assert unit["Service"]["ExecStartPre"] == f"/usr/bin/systemctl disable {RESUME_UNIT.name}"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    after = unit["Unit"]["After"].split()
    assert "network-online.target" in after and "deepracer-scratch.service" in after
    # cloud-final.service orders itself after multi-user.target, which wants this unit: that would be a cycle.
    assert "cloud-final.service" not in after
    # Only the installer enables it, right before its one reboot; the first boot runs the bootstrap from runcmd.
    runcmd = yaml.safe_load((CLOUDINIT_DIR / "cloud-config.yaml").read_text())["runcmd"]
    assert not any(RESUME_UNIT.name in command for command in runcmd)
    assert f"systemctl enable {RESUME_UNIT.name}" not in BOOTSTRAP.read_text()

