#!/usr/bin/env bash
# Scratch space on /mnt for simulation data, MinIO and logs: the instance-store NVMe when the VM has one
# (fast, free, wiped on stop), Azure's temp disk (cloud-init mounts it on /mnt itself; wiped on deallocation),
# otherwise a directory on the root volume. Runs on every boot; safe to rerun.
set -euo pipefail

SCRATCH=/mnt
DLAMI_MOUNT=/opt/dlami/nvme   # where the Deep Learning AMI mounts instance store itself
OWNER=${DR_SCRATCH_OWNER:-${DR_HOST_USER:-ubuntu}}

log() { echo "scratch-disk: $*"; }

instance_store_device() {
  # EC2 names its local disks by model; EBS volumes report "Amazon Elastic Block Store".
  local dev model
  for dev in /sys/block/nvme*n1; do
    [ -e "$dev/device/model" ] || continue
    model=$(tr -s ' ' <"$dev/device/model")
    case "$model" in
      *"Instance Storage"*) echo "/dev/$(basename "$dev")"; return 0 ;;
    esac
  done
  return 1
}

if mountpoint -q "$SCRATCH"; then
  # Azure's temp disk (cloud-init's mounts module), or an earlier run of this script: leave it as it is.
  log "$SCRATCH is already mounted ($(findmnt -no SOURCE "$SCRATCH"))"
elif mountpoint -q "$DLAMI_MOUNT"; then
  mkdir -p "$SCRATCH"
  mount --bind "$DLAMI_MOUNT" "$SCRATCH"
  log "bound $DLAMI_MOUNT (instance store mounted by the AMI) to $SCRATCH"
elif device=$(instance_store_device); then
  # Format only a disk that has no filesystem: a fresh or wiped instance store, never a disk with data.
  if [ -z "$(blkid -o value -s TYPE "$device" || true)" ]; then
    log "formatting blank instance store $device"
    mkfs.ext4 -q -E nodiscard -L dr-scratch "$device"
  fi
  mkdir -p "$SCRATCH"
  mount -o defaults,noatime,discard "$device" "$SCRATCH"
  log "mounted instance store $device on $SCRATCH"
else
  mkdir -p "$SCRATCH"
  log "no instance store on this VM: $SCRATCH stays on the root volume"
fi

mkdir -p "$SCRATCH/deepracer"
if id "$OWNER" >/dev/null 2>&1; then
  chown "$OWNER:" "$SCRATCH/deepracer"
fi
