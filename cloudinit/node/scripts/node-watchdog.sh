#!/usr/bin/env bash
# Runs every minute (deepracer-node-watchdog.timer). A node is only useful while its host's swarm is up: when the
# manager's swarm port has not answered for DR_NODE_STOP_AFTER_MINUTES minutes in a row (the host stopped itself
# when idle or at a time limit, was interrupted, stopped by hand, or destroyed), the node stops itself too: on
# AWS an OS power-off, which the instance turns into a stop; on Azure a deallocation with the node's own identity
# (a power-off would leave the VM allocated and billed).
set -uo pipefail

# shellcheck source=/dev/null
. /etc/deepracer/node.env
COUNT=/run/deepracer-node-watchdog.count  # /run: a reboot starts counting again

if timeout 5 bash -c "exec 3<>/dev/tcp/$DR_SWARM_MANAGER/2377" 2>/dev/null; then
  rm -f "$COUNT"
  exit 0
fi
missed=$(($(cat "$COUNT" 2>/dev/null || echo 0) + 1))
echo "$missed" >"$COUNT"
echo "manager $DR_SWARM_MANAGER:2377 not answering for $missed min (stop after $DR_NODE_STOP_AFTER_MINUTES)"
((missed >= DR_NODE_STOP_AFTER_MINUTES)) || exit 0
echo "the host's swarm is gone: stopping this node"
if [ "$DR_CLOUD" = azure ]; then
  python3 /opt/deepracer/bin/node-cloud.py deallocate
else
  systemctl poweroff
fi
