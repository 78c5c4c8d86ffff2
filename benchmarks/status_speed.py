"""How long `python -m session status` takes end to end when nothing of the run runs (the target: <= 0.3 s).

    .venv/bin/python benchmarks/status_speed.py [--runs 21] [--docker-host unix:///var/run/docker.sock]

Writes a throwaway system.env/run.env (a run id nothing uses, a storage endpoint that answers nothing, so an
accidental storage read shows up as a slow run or an error), runs the command --runs times after one warm-up
run, and prints the median, the spread, and the phases status measured itself (its --json timings_ms).
Without --run-env/--system-env the config is generated; pass both to time a real host's config instead.
If the CLI does not route `status` yet, the same calls are timed through `python -c` (said in the output).
Bytecode is written to and read from a temporary PYTHONPYCACHEPREFIX, as an installed package reads its
compiled modules; --no-bytecode compiles every module on every run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SYSTEM_ENV = """DR_CLOUD=local
DR_AWS_APP_REGION=us-east-1
DR_LOCAL_S3_BUCKET=status-benchmark
DR_SIMAPP_SOURCE=awsdeepracercommunity/deepracer-simapp
DR_SIMAPP_VERSION=6.0.4-gpu
DR_WORKERS=2
DR_LOCAL_S3_ENDPOINT_URL=http://127.0.0.1:9
DR_LOCAL_ACCESS_KEY_ID=benchmark
DR_LOCAL_SECRET_ACCESS_KEY=benchmark
"""
RUN_ENV = "DR_RUN_ID={run_id}\nDR_LOCAL_S3_MODEL_PREFIX=status-benchmark\n"

# What the CLI's status command does (its argument parsing and config loading included), for a checkout whose
# CLI does not route `status` yet.
DIRECT = """
import json, sys
from session.cli.main import _parser
from session.cli.commands import _load
from session.insight.status import as_json, render, run_status
args = _parser().parse_args(sys.argv[1:])
loaded, _ = _load(args, quiet=True)
status = run_status(loaded.system, loaded.run, system_env=args.system_env,
                    progress="always" if args.progress else "auto")
print(json.dumps(as_json(status), indent=2) if args.json else render(status), end="")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--docker-host", help="default: $DOCKER_HOST, else the engine's default socket")
    parser.add_argument("--run-env")
    parser.add_argument("--system-env")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--no-bytecode", action="store_true",
                        help="compile every module on every run (PYTHONDONTWRITEBYTECODE=1): the worst case")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="status-speed-") as scratch:
        folder = Path(scratch)
        if args.run_env and args.system_env:
            run_env, system_env = Path(args.run_env), Path(args.system_env)
        else:
            run_env, system_env = folder / "run.env", folder / "system.env"
            system_env.write_text(SYSTEM_ENV)
            run_env.write_text(RUN_ENV.format(run_id=9000 + os.getpid() % 999))
        env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache")}
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            # As on the VM, where pip compiled the package: bytecode is used (kept out of the checkout here).
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        if args.docker_host:
            env["DOCKER_HOST"] = args.docker_host

        cli = [args.python, "-m", "session", "--run-env", str(run_env), "--system-env", str(system_env), "status"]
        direct = [args.python, "-c", DIRECT, *cli[3:]]
        probe = subprocess.run([*cli, "--json"], cwd=ROOT, env=env, capture_output=True, text=True)
        if probe.returncode == 0:
            people, machine, label = cli, [*cli, "--json"], "python -m session status"
        else:
            print(f"`python -m session status` failed ({probe.stderr.strip().splitlines()[-1:]}); timing the "
                  "same calls through python -c instead", file=sys.stderr)
            people, machine, label = direct, [*direct, "--json"], "python -c <the CLI's status calls>"
            probe = subprocess.run(machine, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        status = json.loads(probe.stdout)
        if status["running"]:
            print("warning: something of this run is running; this is not the idle case", file=sys.stderr)
        if status["engine"]["error"]:
            print(f"warning: {status['engine']['error']}", file=sys.stderr)

        times = []
        for _ in range(args.runs + 1):
            start = time.perf_counter()
            subprocess.run(people, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        times = sorted(times[1:])  # the first run warms the page cache and writes bytecode
        phases: dict[str, list[float]] = {}
        json_runs = 5
        for _ in range(json_runs):
            done = subprocess.run(machine, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
            for name, value in json.loads(done.stdout)["timings_ms"].items():
                phases.setdefault(name, []).append(value)
        baseline = []
        for _ in range(max(5, args.runs // 2)):
            start = time.perf_counter()
            subprocess.run([args.python, "-c", "pass"], env=env, check=True)
            baseline.append(time.perf_counter() - start)

    bytecode = "without bytecode" if args.no_bytecode else "with bytecode"
    print(f"{label}, nothing running, {bytecode}, {len(times)} runs: median {statistics.median(times) * 1000:.0f} ms "
          f"(min {times[0] * 1000:.0f}, max {times[-1] * 1000:.0f}); "
          f"bare interpreter start {statistics.median(baseline) * 1000:.0f} ms")
    print(f"phases inside status (median of {json_runs} --json runs): " + ", ".join(
        f"{name} {statistics.median(values):.1f} ms" for name, values in phases.items()))
    return 0 if statistics.median(times) <= 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
