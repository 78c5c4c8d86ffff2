#!/usr/bin/env bash
# Scratch space on /mnt for simulation data, MinIO and logs, at every boot (a stop wipes what it is on):
# - Azure: the temp disk, mounted there by cloud-init.
# - AWS Deep Learning AMI: its dlami-nvme.service stripes the instance-store disks into LVM (vg.01/lv_ephemeral)
#   mounted on /opt/dlami/nvme; our unit runs after it and binds that to /mnt. Never touching its disks here
#   keeps two owners from fighting over them at every boot.
# - other images: the first instance-store disk, formatted if blank. Otherwise the root volume.
set -euo pipefail

SCRATCH=${DR_SCRATCH:-/mnt}  # DR_SCRATCH: tests only
DLAMI_MOUNT=/opt/dlami/nvme
LABEL=dr-scratch
OWNER=${DR_SCRATCH_OWNER:-${DR_HOST_USER:-ubuntu}}

log() { echo "scratch-disk: $*"; }

mounted() { findmnt -rno SOURCE --mountpoint "$1"; }  # the source of a mount point, or fails

instance_store_device() {
  # EC2 names local disks by model ("Amazon EC2 NVMe Instance Storage"); EBS is "Amazon Elastic Block Store".
  lsblk -dnpo NAME,MODEL | awk '/Instance Storage/ && !n++ { print $1 }'
}

mkdir -p "$SCRATCH"
if from=$(mounted "$SCRATCH"); then
  log "$SCRATCH is already mounted ($from)"
elif systemctl cat dlami-nvme.service >/dev/null 2>&1; then
  if from=$(mounted "$DLAMI_MOUNT"); then
    mount --bind "$DLAMI_MOUNT" "$SCRATCH"
    log "bound $DLAMI_MOUNT ($from, the AMI's instance store) to $SCRATCH"
  else
    log "the AMI mounted no instance store: $SCRATCH is on the root volume"
  fi
elif device=$(instance_store_device) && [ -n "$device" ]; then
  # Formats only a blank disk and mounts only our own filesystem: never someone else's data.
  [ -n "$(blkid -o value -s TYPE "$device" || true)" ] || mkfs.ext4 -q -E nodiscard -L "$LABEL" "$device"
  if [ "$(blkid -o value -s LABEL "$device" || true)" = "$LABEL" ]; then
    mount -o defaults,noatime,discard "$device" "$SCRATCH"
    log "mounted instance store $device on $SCRATCH"
  else
    log "$device holds a filesystem that is not ours: left alone"
  fi
else
  log "no instance store on this VM: $SCRATCH stays on the root volume"
fi

mkdir -p "$SCRATCH/deepracer"
if id "$OWNER" >/dev/null 2>&1; then
  chown "$OWNER:" "$SCRATCH/deepracer"
fi
