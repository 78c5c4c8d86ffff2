#!/usr/bin/env bash
# First boot of a simulation node (docs/multi-node.md), run by cloud-init (runcmd) as root: Docker from the
# distribution, the host's simulator image, then `docker swarm join` with the worker token the host publishes to
# the stack's secret (never in user data, never in this log), then the watchdog that powers the node off when
# the host's swarm is gone. Reports ready or failed, with the log's tail, where `pulumi up` waits for it.
# Every step checks before it changes anything: a second run is safe.
set -Eeuo pipefail

LOG=/var/log/deepracer-bootstrap.log
BIN=/opt/deepracer/bin
STATE_DIR=/var/lib/deepracer

exec >>"$LOG" 2>&1
exec 9>/run/deepracer-bootstrap.lock
flock 9

# shellcheck source=/dev/null
. /etc/deepracer/node.env  # DR_CLOUD, DR_SIMAPP_IMAGE, DR_SWARM_MANAGER, DR_NODE_WORKERS, the token's place ...
export DEBIAN_FRONTEND=noninteractive

step="start"
log() { echo "[$(date -u +%FT%TZ)] $*"; }

report() {
  python3 "$BIN/host-storage.py" report "$1" "$2" || log "could not report '$1'"
}

on_error() {
  local code=$? line=$1
  trap - ERR
  log "FAILED in step '$step' (line $line, exit $code)"
  report failed "$step"
  exit "$code"
}
trap 'on_error $LINENO' ERR

retry() {
  local attempt
  for attempt in 1 2 3 4 5; do
    "$@" && return 0
    log "attempt $attempt of '$*' failed"
    sleep $((attempt * 15))
  done
  return 1
}

step_packages() {
  mkdir -p "$STATE_DIR"
  local wanted=(docker.io)
  # AWS: the token is an SSM parameter, read with boto3; Azure needs only the standard library.
  [ "$DR_CLOUD" = aws ] && wanted+=(python3-boto3)
  if ! command -v docker >/dev/null || { [ "$DR_CLOUD" = aws ] && ! python3 -c 'import boto3' 2>/dev/null; }; then
    retry apt-get -o DPkg::Lock::Timeout=600 update -qq
    retry apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${wanted[@]}"
  fi
}

step_docker() {
  # Engine labels the manager reads (`docker node inspect`): this is a simulation node, and how many workers it
  # carries. The manager itself sets node.labels.Robomaker=true, which only a manager can.
  mkdir -p /etc/docker
  printf '{"labels": ["deepracer.role=sim-node", "deepracer.workers=%s"]}\n' "$DR_NODE_WORKERS" \
    >/etc/docker/daemon.json.new
  if ! cmp -s /etc/docker/daemon.json.new /etc/docker/daemon.json; then
    mv /etc/docker/daemon.json.new /etc/docker/daemon.json
    systemctl restart docker || true
  fi
  rm -f /etc/docker/daemon.json.new
  systemctl enable --now docker
  docker info --format 'docker {{.ServerVersion}}, labels {{.Labels}}'
}

step_simapp_image() {
  # The host's image and tag: swarm runs a service's tasks from the same image on every node.
  docker image inspect "$DR_SIMAPP_IMAGE" >/dev/null 2>&1 || retry docker pull -q "$DR_SIMAPP_IMAGE"
}

step_join() {
  if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ]; then
    log "already in the swarm of $DR_SWARM_MANAGER"
    return 0
  fi
  local address token=""
  address=$(ip -o route get "$DR_SWARM_MANAGER" | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  log "waiting (at most ${DR_TOKEN_WAIT_MINUTES} min) for the host to publish the swarm's worker token"
  # The token goes from node-cloud.py's stdout into this variable and docker's argument, nowhere else: no shell
  # tracing, no echo; node-cloud.py prints nothing until the host has published a real token.
  token=$(python3 "$BIN/node-cloud.py" wait-token --minutes "$DR_TOKEN_WAIT_MINUTES")
  retry docker swarm join --token "$token" --advertise-addr "$address" "$DR_SWARM_MANAGER:2377"
  token=""
  log "joined the swarm of $DR_SWARM_MANAGER as $address"
}

step_watchdog() {
  systemctl daemon-reload
  systemctl enable --now deepracer-node-watchdog.timer
}

ALL_STEPS=(packages docker simapp-image join watchdog)
log "node bootstrap for $DR_SIMAPP_IMAGE, manager $DR_SWARM_MANAGER"
for step in "${ALL_STEPS[@]}"; do
  log "step $step"
  "step_${step//-/_}"
done
step="ready"
date -u +%FT%TZ >"$STATE_DIR/ready"
log "node ready"
report ready ready
