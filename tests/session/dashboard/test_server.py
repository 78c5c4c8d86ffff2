"""What the dashboard's server module loads before it serves (benchmarks/dashboard_cost.py measures the memory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Not needed until something asks: the storage and Docker clients load at their first use (the feed's first
# reading), the car package's and a stop's modules at the first such request, and the log analysis stack never.
LATER = ("boto3", "botocore", "docker", "requests", "pyarrow", "numpy", "pandas", "yaml",
         "session.models.export", "session.lifecycle.stopping", "session.insight.analysis")


def test_the_server_module_loads_no_client_and_no_analysis_stack():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, session.dashboard.server; print('\\n'.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    assert [name for name in loaded if name.split(".")[0] in LATER or name.startswith(LATER)] == []
