# shellcheck shell=bash
# Sourced by bootstrap.sh (its log, apt_install and STATE_DIR) on plain Ubuntu, which has no NVIDIA driver.

install_gpu_driver() {
  # Plain Ubuntu (Azure): Canonical's signed, prebuilt modules, from the branch `ubuntu-drivers list --gpgpu` puts
  # first (it only reads apt's cache). Not `ubuntu-drivers install --gpgpu`: it leaves out nvidia-utils (nvidia-smi,
  # which the container toolkit needs too), takes modules for the archive's newest kernel, and does not wait for
  # the dpkg lock. apt_install does.
  local drivers line branch meta kernel
  log "no working NVIDIA driver; installing the recommended server driver"
  apt_install ubuntu-drivers-common
  drivers=$(ubuntu-drivers list --gpgpu)
  line=$(grep -m1 -E '^nvidia-driver-[0-9]+-server(-open)?, \(kernel modules provided by linux-modules-' <<<"$drivers") ||
    { log "ubuntu-drivers offers no server driver with prebuilt modules: $drivers"; return 1; }
  branch=${line%%,*} && branch=${branch#nvidia-driver-}   # 570-server or 570-server-open
  meta=${line##* } && meta=${meta%)}                      # modules for the flavour's newest kernel
  kernel=$(uname -r)
  local packages=("nvidia-headless-no-dkms-$branch" "nvidia-utils-${branch%%-*}-server" "$meta")
  if apt-cache show "linux-modules-nvidia-$branch-$kernel" >/dev/null 2>&1; then
    apt_install "${packages[@]}" "linux-modules-nvidia-$branch-$kernel"
    modprobe nvidia
    nvidia-smi -L
  elif [ ! -e "$STATE_DIR/driver-reboot" ]; then
    # Boot the kernel the modules are for, once; cloud-init runs its runcmd at the first boot only, so the
    # bootstrap comes back through deepracer-bootstrap.service, which disables itself before it runs.
    apt_install "${packages[@]}"
    log "no $branch modules for the running kernel $kernel: rebooting into the one $meta is for"
    touch "$STATE_DIR/driver-reboot"
    systemctl enable deepracer-bootstrap.service
    systemctl reboot
    exit 0
  else
    log "no $branch modules for the running kernel $kernel, even after a reboot"
    return 1
  fi
}
