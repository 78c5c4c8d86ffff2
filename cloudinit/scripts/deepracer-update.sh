#!/usr/bin/env bash
# Reinstalls the session package after `pulumi up` uploaded a new one from the deployer's checkout.
# Run as root on the host: sudo deepracer-update
set -euo pipefail
exec /opt/deepracer/bin/bootstrap.sh session-package
