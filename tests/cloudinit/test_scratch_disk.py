"""cloudinit/scripts/scratch-disk.sh against recorded disk layouts of the VMs we deploy.

The script runs as the scratch unit runs it (bash, as root), with the stand-ins of host_commands.py first on
PATH for what cannot change here (findmnt, lsblk, blkid, mkfs.ext4, mount, systemctl); only /mnt is moved into
tmp_path (DR_SCRATCH). The stand-ins refuse what the real commands refuse: mkfs on a disk that has a filesystem,
mount of an LVM member.

What the AWS Deep Learning AMI does with instance store, which the layouts below follow:
- /lib/systemd/system/dlami-nvme.service (oneshot, RemainAfterExit, WantedBy=multi-user.target; since the Base GPU
  AMI of 2023-05-19) runs /opt/aws/dlami/bin/nvme_ephemeral_drives.sh at every boot. That script comes from
  aws-parallelcluster-cookbook's setup-ephemeral-drives.sh: it unmounts each `Instance_Storage` NVMe device, makes
  them LVM physical volumes of volume group `vg.01` with one logical volume `lv_ephemeral` striped over all of
  them (`lvcreate -i <disks> -I 64`), formats it ext4 and mounts it on /opt/dlami/nvme (noatime, mode 1777); on
  later boots it finds the LV and only activates and mounts it again.
- AWS's own samples wait for that unit before they use /opt/dlami/nvme (aws-samples/awsome-distributed-training,
  .../base-config/utils/install_enroot_pyxis.sh, the race of its issue 427), and back the unit up as it is.
- The DLAMI release notes give `nvme_location: /opt/dlami/nvme` for the Base OSS Nvidia Driver GPU AMIs.
"""

from __future__ import annotations

import configparser
import getpass
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.bootstrap import CLOUDINIT_DIR
from tests.cloudinit import host_commands

SCRIPT = CLOUDINIT_DIR / "scripts" / "scratch-disk.sh"
UNIT = CLOUDINIT_DIR / "units" / "deepracer-scratch.service"
DLAMI_MOUNT = "/opt/dlami/nvme"
DLAMI_LV = "/dev/mapper/vg.01-lv_ephemeral"  # how findmnt names /dev/vg.01/lv_ephemeral

# `systemctl cat dlami-nvme.service` on the DLAMI (the unit as AWS's samples back it up from the AMI).
DLAMI_UNIT = """\
# /lib/systemd/system/dlami-nvme.service
[Unit]
Description=Mount Ephemeral NVME Storage to DLAMI
After=network.target
[Service]
Type=oneshot
ExecStart=/opt/aws/dlami/bin/nvme_ephemeral_drives.sh
TimeoutStartSec=300
RemainAfterExit=yes
[Install]
WantedBy=multi-user.target
"""

# `lsblk -dnpo NAME,MODEL` (util-linux 2.39): EC2 reports EBS volumes and instance store by NVMe model name;
# Ubuntu's snaps add loop devices without one; Hyper-V names Azure's disks "Virtual Disk". The NAME column is
# padded to the longest name, as lsblk prints it.
LSBLK_G4DN_2XLARGE = (
    "/dev/loop0   \n"
    "/dev/loop1   \n"
    "/dev/nvme0n1 Amazon Elastic Block Store\n"
    "/dev/nvme1n1 Amazon EC2 NVMe Instance Storage\n")
LSBLK_G4DN_METAL = LSBLK_G4DN_2XLARGE + "/dev/nvme2n1 Amazon EC2 NVMe Instance Storage\n"
LSBLK_WITHOUT_INSTANCE_STORE = (
    "/dev/loop0   \n"
    "/dev/nvme0n1 Amazon Elastic Block Store\n")
LSBLK_AZURE_NC8AS_T4_V3 = (
    "/dev/loop0 \n"
    "/dev/sda   Virtual Disk\n"
    "/dev/sdb   Virtual Disk\n"
    "/dev/sr0   Virtual DVD-ROM\n")
LVM_MEMBER = {"TYPE": "LVM2_member"}


@dataclass
class Boot:
    code: int
    output: str
    state: dict
    scratch: Path

    def calls(self, command: str) -> list[list[str]]:
        return [call[1:] for call in self.state["calls"] if call[0] == command]


class Vm:
    def __init__(self, tmp_path: Path, *, lsblk: str, disks: dict, mounts: dict, dlami: bool,
                 root: str = "/dev/nvme0n1p1") -> None:
        self.fakes, self.scratch = tmp_path / "fakes", tmp_path / "mnt"
        self.fakes.mkdir()
        host_commands.install(self.fakes)
        self.state_file = tmp_path / "host.json"
        self.state_file.write_text(json.dumps({
            "calls": [], "bin": str(self.fakes), "lsblk": lsblk, "disks": disks,
            "mounts": {"/": root, **mounts},
            "units": {"dlami-nvme.service": DLAMI_UNIT} if dlami else {}}))

    def boot(self) -> Boot:
        env = {"PATH": f"{self.fakes}:/usr/bin:/bin", "HOST_STATE": str(self.state_file),
               "DR_SCRATCH": str(self.scratch), "DR_SCRATCH_OWNER": getpass.getuser()}
        result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
        return Boot(result.returncode, result.stdout + result.stderr, json.loads(self.state_file.read_text()),
                    self.scratch)


def _ready(boot: Boot) -> None:
    assert boot.code == 0, boot.output
    assert (boot.scratch / "deepracer").is_dir()


@pytest.mark.parametrize("lsblk", [LSBLK_G4DN_2XLARGE, LSBLK_G4DN_METAL], ids=["one-disk", "two-disks-striped"])
def test_dlami_binds_the_amis_own_instance_store_mount_and_leaves_its_disks_alone(tmp_path: Path, lsblk: str):
    disks = {"/dev/nvme1n1": LVM_MEMBER, "/dev/nvme2n1": LVM_MEMBER}
    vm = Vm(tmp_path, lsblk=lsblk, disks=disks, mounts={DLAMI_MOUNT: DLAMI_LV}, dlami=True)
    boot = vm.boot()
    _ready(boot)
    assert boot.calls("mount") == [["--bind", DLAMI_MOUNT, str(boot.scratch)]]
    assert boot.state["mounts"][str(boot.scratch)] == DLAMI_LV
    assert boot.calls("mkfs.ext4") == []
    assert f"bound {DLAMI_MOUNT} ({DLAMI_LV}" in boot.output


def test_dlami_whose_instance_store_is_not_mounted_is_never_formatted_by_us(tmp_path: Path):
    """The race of today: the AMI's script owns these disks (it unmounts and re-creates them at each boot)."""
    vm = Vm(tmp_path, lsblk=LSBLK_G4DN_2XLARGE, disks={}, mounts={}, dlami=True)
    boot = vm.boot()
    _ready(boot)
    assert boot.calls("mkfs.ext4") == [] and boot.calls("mount") == []
    assert "the AMI mounted no instance store" in boot.output


def test_dlami_on_a_type_without_instance_store_stays_on_the_root_volume(tmp_path: Path):
    vm = Vm(tmp_path, lsblk=LSBLK_WITHOUT_INSTANCE_STORE, disks={}, mounts={}, dlami=True)
    boot = vm.boot()
    _ready(boot)
    assert boot.calls("mount") == [] and str(boot.scratch) not in boot.state["mounts"]


def test_second_run_in_the_same_boot_changes_nothing(tmp_path: Path):
    vm = Vm(tmp_path, lsblk=LSBLK_G4DN_2XLARGE, disks={"/dev/nvme1n1": LVM_MEMBER},
            mounts={DLAMI_MOUNT: DLAMI_LV}, dlami=True)
    _ready(vm.boot())
    again = vm.boot()
    _ready(again)
    assert len(again.calls("mount")) == 1
    assert "is already mounted" in again.output


def test_azure_temp_disk_mounted_by_cloud_init_is_left_as_it_is(tmp_path: Path):
    vm = Vm(tmp_path, lsblk=LSBLK_AZURE_NC8AS_T4_V3, disks={"/dev/sdb1": {"TYPE": "ext4"}}, mounts={}, dlami=False,
            root="/dev/sda1")
    state = json.loads(vm.state_file.read_text())
    state["mounts"][str(vm.scratch)] = "/dev/sdb1"
    vm.state_file.write_text(json.dumps(state))
    boot = vm.boot()
    _ready(boot)
    assert boot.calls("mount") == [] and boot.calls("mkfs.ext4") == []
    assert boot.state["mounts"][str(boot.scratch)] == "/dev/sdb1"


def test_an_image_without_the_dlami_service_formats_a_blank_instance_store_and_mounts_it(tmp_path: Path):
    vm = Vm(tmp_path, lsblk=LSBLK_G4DN_2XLARGE, disks={}, mounts={}, dlami=False)
    boot = vm.boot()
    _ready(boot)
    assert boot.calls("mkfs.ext4") == [["-q", "-E", "nodiscard", "-L", "dr-scratch", "/dev/nvme1n1"]]
    assert boot.state["mounts"][str(boot.scratch)] == "/dev/nvme1n1"


@pytest.mark.parametrize("filesystem", [LVM_MEMBER, {"TYPE": "xfs", "LABEL": "data"}], ids=["lvm", "xfs"])
def test_an_instance_store_with_someone_elses_data_is_left_alone(tmp_path: Path, filesystem: dict):
    vm = Vm(tmp_path, lsblk=LSBLK_G4DN_2XLARGE, disks={"/dev/nvme1n1": filesystem}, mounts={}, dlami=False)
    boot = vm.boot()
    _ready(boot)
    assert boot.calls("mkfs.ext4") == [] and boot.calls("mount") == []
    assert "not ours: left alone" in boot.output


def test_scratch_unit_runs_after_the_dlamis_mount_and_before_docker():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(UNIT)
    assert "dlami-nvme.service" in unit["Unit"]["After"].split()
    assert "docker.service" in unit["Unit"]["Before"].split()
    # An ordering only: on Azure there is no such unit, and nothing may wait for it or pull it in.
    assert "dlami-nvme.service" not in unit["Unit"].get("Requires", "") + unit["Unit"].get("Wants", "")
