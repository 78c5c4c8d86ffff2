#!/usr/bin/env bash
# First boot of a DeepRacer training host, run by cloud-init (runcmd) as root.
#
#   bootstrap.sh              every step, then mark the host ready and report to the bucket
#   bootstrap.sh STEP...      only these steps (deepracer-update runs `session-package`)
#
# Every step checks before it changes anything, so a second run (or a run after a reboot) is safe.
# Everything goes to /var/log/deepracer-bootstrap.log; a failure reports the step and the log's tail to
# the bucket, where `pulumi up` is waiting for it.
set -Eeuo pipefail

LOG=/var/log/deepracer-bootstrap.log
BIN=/opt/deepracer/bin
VENV=/opt/deepracer/venv
STATE_DIR=/var/lib/deepracer
READY="$STATE_DIR/ready"
PACKAGE=/opt/deepracer/session.tar.gz
# The host's own units ship in the session package, so `deepracer-update` refreshes them with the code.
SESSION_UNITS=/opt/deepracer/src/session/units
UNIT_DIR=/etc/systemd/system
IMDS=http://169.254.169.254  # AWS and Azure alike

exec >>"$LOG" 2>&1
exec 9>/run/deepracer-bootstrap.lock
flock 9  # one bootstrap at a time (cloud-init and a user's rerun, say)

# shellcheck source=/dev/null
. /etc/deepracer/bootstrap.env  # DR_SESSION_PACKAGE_URL, DR_STATUS_URL, DR_HOST_USER
# shellcheck source=/dev/null
. /etc/deepracer/system.env     # DR_CLOUD, DR_AWS_APP_REGION, DR_SIMAPP_SOURCE, DR_SIMAPP_VERSION ...
IMAGE="$DR_SIMAPP_SOURCE:$DR_SIMAPP_VERSION"
HOST_USER="${DR_HOST_USER:-ubuntu}"
export DEBIAN_FRONTEND=noninteractive

step="start"
log() { echo "[$(date -u +%FT%TZ)] $*"; }

report() {
  # AWS: the venv's boto3 once it exists, else the AWS CLI. Azure: the standard library (IMDS + Blob REST).
  local python=python3
  [ -x "$VENV/bin/python" ] && python="$VENV/bin/python"
  "$python" "$BIN/host-storage.py" report "$1" "$2" || log "could not report '$1' to the bucket"
}

on_error() {
  local code=$? line=$1
  trap - ERR
  log "FAILED in step '$step' (line $line, exit $code)"
  rm -f "$READY"
  [ "$full_run" = yes ] && report failed "$step"
  exit "$code"
}
trap 'on_error $LINENO' ERR

retry() {
  # Registries and package mirrors fail transiently; 5 tries with growing pauses.
  local attempt
  for attempt in 1 2 3 4 5; do
    "$@" && return 0
    log "attempt $attempt of '$*' failed"
    sleep $((attempt * 15))
  done
  return 1
}

apt_install() {
  # A fresh Ubuntu VM runs unattended-upgrades at first boot: wait for its dpkg lock instead of failing.
  retry apt-get -o DPkg::Lock::Timeout=600 update -qq
  retry apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@"
}

step_prepare() {
  mkdir -p "$STATE_DIR" /opt/deepracer
  python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
}

step_session_package() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  retry "$VENV/bin/pip" install -q --upgrade pip boto3
  "$VENV/bin/python" "$BIN/host-storage.py" get "$DR_SESSION_PACKAGE_URL" "$PACKAGE"
  sha256sum "$PACKAGE"
  rm -rf /opt/deepracer/src && mkdir -p /opt/deepracer/src
  tar -xzf "$PACKAGE" -C /opt/deepracer/src
  # Azure hosts also get the Azure SDK: models are kept in the stack's blob container (session.storage.keeper);
  # so does a local machine that copies its models to a blob container.
  local spec=/opt/deepracer/src
  if [ "$DR_CLOUD" = azure ] || [[ "${DR_MODEL_COPY_URL:-}" == https://* ]]; then
    spec="/opt/deepracer/src[azure-host]"
  fi
  retry "$VENV/bin/pip" install -q "$spec"
  # Same version number as before after a code change: reinstall the package itself, not its dependencies.
  "$VENV/bin/pip" install -q --no-deps --force-reinstall /opt/deepracer/src
  ln -sf "$VENV/bin/deepracer" /usr/local/bin/deepracer
  ln -sf "$BIN/deepracer-update.sh" /usr/local/sbin/deepracer-update
  # Login shells get the venv first on PATH, so `python -m session` is the session tool.
  echo "export PATH=\"$VENV/bin:\$PATH\"" >/etc/profile.d/deepracer.sh
  "$VENV/bin/deepracer" --version
  install_units
}

install_units() {
  # The run state (session/run/state.py) belongs to the user who trains; root's services write it too.
  install -d -o "$HOST_USER" -g "$HOST_USER" -m 0755 "$STATE_DIR/run"
  install -m 0644 "$SESSION_UNITS"/deepracer-* "$UNIT_DIR/"
  systemctl daemon-reload
  # The spot watcher, the shutdown stop hook and every timer the package ships (idle auto-stop ...) run from now
  # on and at each boot; the resume unit runs at boot only. A running watcher is restarted so that it runs the
  # new code; the hook never is (stopping it is what interrupts training), `--now` only starts it if inactive.
  local timers=("$SESSION_UNITS"/deepracer-*.timer)
  systemctl enable --now deepracer-spot-watch.service deepracer-shutdown.service "${timers[@]##*/}"
  systemctl enable deepracer-resume.service
  systemctl try-restart deepracer-spot-watch.service
  # The time limit's timer is a transient unit in the user manager of the user who trains (session/lifecycle/
  # limits.py): lingering runs that manager from boot, without a login, for deepracer-resume.service to arm it
  # in. Without it the limit falls back to a process the idle check backs up (5 minutes late at worst).
  loginctl enable-linger "$HOST_USER" || echo "warning: loginctl enable-linger $HOST_USER failed"
  # The dashboard when the stack asks for it (setting `dashboard`): 127.0.0.1 only, a token to enter; else it is
  # one `sudo systemctl enable --now deepracer-dashboard` away.
  if [ "${DR_DASHBOARD_AT_BOOT:-False}" = True ]; then
    systemctl enable --now deepracer-dashboard.service
  fi
}

step_gpu_runtime() {
  if ! nvidia-smi -L; then
    # The AWS AMI brings its driver; plain Ubuntu (Azure) has none and gets this installer.
    # shellcheck source=azure/gpu-driver.sh
    . "$BIN/gpu-driver.sh"
    install_gpu_driver
  fi
  if ! command -v nvidia-ctk >/dev/null; then
    log "installing the NVIDIA container toolkit"
    local keyring=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
    retry curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey -o /tmp/nvidia.gpgkey
    gpg --batch --yes --dearmor -o "$keyring" /tmp/nvidia.gpgkey
    retry curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
      -o /tmp/nvidia-container-toolkit.list
    sed "s#deb https://#deb [signed-by=$keyring] https://#" /tmp/nvidia-container-toolkit.list \
      >/etc/apt/sources.list.d/nvidia-container-toolkit.list
    apt_install nvidia-container-toolkit
  fi
  nvidia-ctk --version
}

step_docker() {
  command -v docker >/dev/null || apt_install docker.io
  systemctl enable --now docker
  # As DRfC's prepare.sh: the NVIDIA runtime as Docker's default, so every container of the image sees the
  # GPU, those the trainer starts itself through the Docker socket included (its SageMaker sibling also
  # asks for it by a Compose device reservation, which needs the same runtime).
  if [ "$(docker info --format '{{.DefaultRuntime}}')" != nvidia ]; then
    nvidia-ctk runtime configure --runtime=docker --set-as-default
    systemctl restart docker
  fi
  [ "$(docker info --format '{{.DefaultRuntime}}')" = nvidia ]
  usermod -aG docker "$HOST_USER"
}

host_private_ip() {
  # The address the nodes join, as the cloud gave it to this host's NIC (its metadata service says): on AWS the
  # instance's primary private IPv4 (fixed for its life), on Azure the fixed 10.42.1.4 the stack gives the NIC with
  # nodes (infra/azure_sim_nodes.py HOST_PRIVATE_IP, which the nodes' user data names).
  local token
  case "$DR_CLOUD" in
    azure)
      curl -fsS --retry 3 --noproxy '*' -H Metadata:true \
        "$IMDS/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?api-version=2021-02-01&format=text"
      ;;
    *)
      token=$(curl -fsS --retry 3 --noproxy '*' -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
        "$IMDS/latest/api/token")
      curl -fsS --retry 3 --noproxy '*' -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/local-ipv4"
      ;;
  esac
}

step_swarm() {
  # Only with simulation nodes (DR_SIM_NODES in system.env; docs/multi-node.md): this host becomes their swarm's
  # manager and publishes the worker join token where the nodes read it (`deepracer swarm-init` makes sure of each
  # part, so a second run changes nothing but the token's copy). The rotation once they joined runs apart
  # (deepracer-swarm-rotate.service): they come up minutes later, and the boot does not wait for them.
  if [ "${DR_SIM_NODES:-0}" -eq 0 ]; then
    log "no simulation nodes: no swarm"
    return 0
  fi
  local address
  address=$(host_private_ip)
  if ! [[ "$address" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
    log "the metadata service gave no private IPv4 address for the swarm (got '$address')"
    return 1
  fi
  "$VENV/bin/deepracer" swarm-init --advertise-addr "$address"
  systemctl start --no-block deepracer-swarm-rotate.service
}

step_simapp_image() {
  docker image inspect "$IMAGE" >/dev/null 2>&1 || retry docker pull -q "$IMAGE"
  case "$DR_SIMAPP_VERSION" in
    *-cpu) log "CPU image: no GPU check" ;;
    *) docker run --rm -e NVIDIA_VISIBLE_DEVICES=all --entrypoint nvidia-smi "$IMAGE" -L ;;
  esac
}

step_tracks() {
  # The image's track files (.npy), cached where `deepracer validate` looks (DR_TRACKS_DIR's default), so the
  # reward function's dry run uses the real track. Found by name: their folder moved between simapp releases.
  local routes container
  routes=$(docker run --rm --entrypoint /bin/bash "$IMAGE" -c "find / -path '*/routes/*.npy' -print -quit 2>/dev/null")
  [ -n "$routes" ] || { log "no track files found in $IMAGE"; return 1; }
  container=$(docker create "$IMAGE")
  rm -rf "$STATE_DIR/tracks.new"
  docker cp "$container:$(dirname "$routes")" "$STATE_DIR/tracks.new"
  docker rm "$container" >/dev/null
  rm -rf "$STATE_DIR/tracks" && mv "$STATE_DIR/tracks.new" "$STATE_DIR/tracks"
  log "cached $(find "$STATE_DIR/tracks" -name '*.npy' | wc -l) tracks in $STATE_DIR/tracks"
}

step_custom_files() {
  # run.env and custom files for a first run, as the login user; a file the user has is never replaced.
  sudo -u "$HOST_USER" -H "$VENV/bin/deepracer" init
}

step_doctor() {
  # Last: the real image proves this host can train. A failure's cause is doctor.json's summary (host-storage.py).
  case "$DR_CLOUD" in azure | local) retry docker pull -q "minio/minio:${DR_MINIO_IMAGE:-latest}" ;; esac
  sudo -u "$HOST_USER" -H "$VENV/bin/deepracer" doctor --json | tee "$STATE_DIR/doctor.json"
}

ALL_STEPS=(prepare session-package gpu-runtime docker swarm simapp-image tracks custom-files doctor)
full_run=no
if (($# == 0)); then
  set -- "${ALL_STEPS[@]}"
  full_run=yes
  rm -f "$READY"
fi

log "bootstrap ($*) for $IMAGE"
for step in "$@"; do
  declare -F "step_${step//-/_}" >/dev/null || { log "unknown step '$step'; steps: ${ALL_STEPS[*]}"; exit 2; }
done
for step in "$@"; do
  log "step $step"
  "step_${step//-/_}"
done

if [ "$full_run" = yes ]; then
  step="ready"
  date -u +%FT%TZ >"$READY"
  log "host ready"
  report ready ready
fi
