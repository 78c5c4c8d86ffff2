"""session.insight.analysis against deepracer-utils on the same multi-million-row logs, in one run.

    .venv/bin/python benchmarks/loader_speed.py [--rows 2000000] [--repeat 3] [--formats log,csv] [--workdir DIR]
                                                [--cpus 0]

Builds two synthetic runs from the real samples in the shared data (FORMATS.md §5, data/SOURCES.md) by
repeating their lines with shifted episode numbers (and iteration numbers), so every line is one the
simulator wrote:

- log: the DRoA 2026 simulation log (19 fields, ROS 2 `[node] [agent]` tags, the lines between episodes
  included), repeated to --rows SIM_TRACE_LOG lines in one file, laid out as a DRoA logs folder
  (`logs/training/<job>-simulation.log`) for deepracer-utils' `DeepRacerLog.load_robomaker_logs()`;
- csv: the DRfC single-worker run's 27 simtrace CSVs (39,392 rows), repeated as further iterations
  (`training-simtrace/<n>-iteration.csv`, ~1,460 rows a file as the simulator writes them) for
  `DeepRacerLog.load_training_trace()`.

Each loader runs in a fresh interpreter per repeat (imports not timed), the two taking turns so a busy
spell of the machine hits both, on the folder. Printed: rows, episodes, seconds (best of --repeat), rows/s,
the ratio, and memory: the process's peak RSS and what loading added to it (our loader maps a log file,
whose pages count in RSS but belong to the page cache), and the peak of what the process allocated (RssAnon,
sampled every 10 ms) less what it had after imports. The loaders must agree on rows, episodes and completed
laps, else the run fails. Then the per-episode tables: our `episodes()` against deepracer-utils'
`simulation_agg`.
Needs deepracer-utils (the dev extra). The generated files (~200-240 bytes a row) go to a temporary folder
unless --workdir keeps them for the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.shared_data import LOGS  # noqa: E402  (the one place that finds the shared data)

LOG_SAMPLE = LOGS / "droa-2026-continuous-ppo-training" / "simulation-robomaker.log"
CSV_SAMPLE = LOGS / "drfc-2022-single-worker" / "training-simtrace"
LOG_NAME = "2026-03-11T08:23:21.847Z-deepracerindy-training-synthetic-simulation.log"

# Runs in a fresh interpreter: imports, RSS, then the timed load; prints one JSON line.
RUNNER = r"""
import json, resource, sys, time, warnings, io, contextlib
warnings.simplefilter("ignore")
which, kind, folder = sys.argv[1:4]

import threading

def status_mb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0

# The kernel keeps the peak RSS (which counts a mapped file's pages); the peak of anonymous memory (what
# the process allocated) is sampled.
anon_peak = [0.0]
def sample():
    while True:
        anon_peak[0] = max(anon_peak[0], status_mb("RssAnon"))
        time.sleep(0.01)

if which == "ours":
    from session.insight.analysis import load, episodes
else:
    from deepracer.logs import DeepRacerLog, AnalysisUtils
before, anon_before = status_mb("VmRSS"), status_mb("RssAnon")
threading.Thread(target=sample, daemon=True).start()
start = time.perf_counter()
if which == "ours":
    steps = load(folder).steps
else:
    log = DeepRacerLog(folder)
    log.load_robomaker_logs() if kind == "log" else log.load_training_trace(ignore_metadata=True)
    steps = log.dataframe()
seconds = time.perf_counter() - start
start = time.perf_counter()
if which == "ours":
    table = episodes(steps)
else:
    with contextlib.redirect_stdout(io.StringIO()):
        table = AnalysisUtils.simulation_agg(steps, "iteration", "unique_episode")
agg_seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": len(steps), "episodes": len(table), "seconds": seconds, "agg_seconds": agg_seconds,
                  "peak_mb": peak, "added_mb": peak - before, "anon_added_mb": anon_peak[0] - anon_before,
                  "completed": int(table["complete"].sum())}))
"""


def build_log(folder: Path, rows: int) -> int:
    """The DRoA sample's header, then its body (from the first step on) again and again with episodes
    shifted by the sample's episode count, until `rows` SIM_TRACE_LOG lines."""
    lines = LOG_SAMPLE.read_bytes().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if b"SIM_TRACE_LOG:" in line)
    head, body = lines[:first], lines[first:]
    trace = re.compile(rb"(SIM_TRACE_LOG:)(\d+)")
    episodes = 1 + max(int(m.group(2)) for m in map(trace.search, body) if m)
    per_copy = sum(1 for line in body if b"SIM_TRACE_LOG:" in line)
    copies = max(1, -(-rows // per_copy))
    target = folder / "logs" / "training" / LOG_NAME
    target.parent.mkdir(parents=True)
    (folder / "sim-trace").mkdir()  # deepracer-utils tells a DRoA folder by it
    with open(target, "wb") as out:
        out.writelines(head)
        for copy in range(copies):
            shift = copy * episodes
            def renumber(m: re.Match, shift: int = shift) -> bytes:
                return m.group(1) + str(int(m.group(2)) + shift).encode()
            out.write(b"".join(trace.sub(renumber, line) if b"SIM_TRACE_LOG:" in line else line for line in body))
    return copies * per_copy


def build_csv(folder: Path, rows: int) -> int:
    """The DRfC sample's iteration files again and again as later iterations, episodes shifted."""
    files = sorted(CSV_SAMPLE.glob("*-iteration.csv"), key=lambda p: int(p.name.split("-")[0]))
    samples = [p.read_bytes().splitlines(keepends=True) for p in files]
    episodes = 1 + max(int(line.split(b",", 1)[0]) for lines in samples for line in lines[1:])
    per_copy = sum(len(lines) - 1 for lines in samples)
    copies = max(1, -(-rows // per_copy))
    out_dir = folder / "training-simtrace"
    out_dir.mkdir(parents=True)
    iteration = 0
    for copy in range(copies):
        shift = copy * episodes
        for lines in samples:
            body = b"".join(str(int(line.split(b",", 1)[0]) + shift).encode() + b"," + line.split(b",", 1)[1]
                            for line in lines[1:])
            (out_dir / f"{iteration}-iteration.csv").write_bytes(lines[0] + body)
            iteration += 1
    return copies * per_copy


def ensure(workdir: Path, kind: str, rows: int) -> tuple[Path, int]:
    folder = workdir / f"{kind}-{rows}"
    marker = folder / ".rows"
    if marker.is_file():
        return folder, int(marker.read_text())
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    written = (build_log if kind == "log" else build_csv)(folder, rows)
    marker.write_text(str(written))
    return folder, written


def run(which: str, kind: str, folder: Path, cpus: Optional[set[int]] = None) -> dict:
    """One loader in a fresh interpreter; `cpus`: the CPUs it may run on (all when None), as `taskset` would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    done = subprocess.run([sys.executable, "-c", RUNNER, which, kind, str(folder)], capture_output=True,
                          text=True, env=env, cwd=ROOT, preexec_fn=pin)
    if done.returncode:
        raise SystemExit(f"{which} on {folder} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="steps per synthetic run (default 2,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per loader; the best counts (default 3)")
    parser.add_argument("--formats", default="log,csv", help="log, csv or both (default log,csv)")
    parser.add_argument("--workdir", help="keep the generated runs here (reused when present)")
    parser.add_argument("--cpus", help="run both loaders on these CPUs only, e.g. 0 or 0,1 (default: all); on a "
                                       "2-vCPU VM deepracer-utils is faster pinned to one")
    args = parser.parse_args()
    cpus = None
    if args.cpus:
        try:
            cpus = {int(cpu) for cpu in args.cpus.split(",")}
        except ValueError:
            parser.error(f"--cpus: expected CPU numbers separated by commas, e.g. 0 or 0,1; got {args.cpus!r}")
        if not cpus <= os.sched_getaffinity(0):
            parser.error(f"--cpus: expected CPUs of this machine ({sorted(os.sched_getaffinity(0))}); got {args.cpus}")
    try:
        import deepracer.logs  # noqa: F401 - only whether it is installed
    except ImportError:
        raise SystemExit("deepracer-utils is not installed: pip install -e '.[dev]'") from None
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="loader-speed-"))
    print(f"cpus: {os.cpu_count()} (load average {os.getloadavg()[0]:.1f}), python {sys.version.split()[0]}, "
          f"deepracer-utils {_version('deepracer-utils')}, pyarrow {_version('pyarrow')}, "
          f"pandas {_version('pandas')}; best of {args.repeat}"
          + (f"; both loaders pinned to CPUs {sorted(cpus)}" if cpus else ""))
    failed = False
    try:
        for kind in [k.strip() for k in args.formats.split(",") if k.strip()]:
            folder, rows = ensure(workdir, kind, args.rows)
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
            what = "one ROS 2 simulation log" if kind == "log" else \
                f"{len(list(folder.glob('training-simtrace/*.csv')))} simtrace CSVs"
            print(f"\n{kind}: {rows:,} steps, {size:,.0f} MB in {what}")
            # Runs alternate between the loaders, so a busy spell of the machine hits both alike.
            runs_of: dict[str, list[dict]] = {"deepracer-utils": [], "ours": []}
            for _ in range(args.repeat):
                for which in runs_of:
                    runs_of[which].append(run("ours" if which == "ours" else "theirs", kind, folder, cpus))
            results = {}
            for which, runs in runs_of.items():
                best = min(runs, key=lambda r: r["seconds"])
                best["all"] = [round(r["seconds"], 2) for r in runs]
                best["agg_best"] = min(r["agg_seconds"] for r in runs)
                results[which] = best
                print(f"  {which:16} {best['rows']:>10,} rows {best['episodes']:>8,} episodes "
                      f"{best['seconds']:7.2f} s {best['rows'] / best['seconds']:>12,.0f} rows/s  "
                      f"peak RSS {best['peak_mb']:6,.0f} MB, +{best['added_mb']:,.0f} MB loading "
                      f"(allocated +{best['anon_added_mb']:,.0f} MB)  runs {best['all']}")
            ours, theirs = results["ours"], results["deepracer-utils"]
            print(f"  ratio: {theirs['seconds'] / ours['seconds']:.1f}x faster, "
                  f"{theirs['anon_added_mb'] / max(ours['anon_added_mb'], 1):.1f}x less memory allocated; "
                  f"per-episode table: {ours['agg_best']:.2f} s vs simulation_agg {theirs['agg_best']:.2f} s "
                  f"({theirs['agg_best'] / max(ours['agg_best'], 1e-9):.0f}x)")
            for key in ("rows", "episodes", "completed"):
                if ours[key] != theirs[key]:
                    print(f"  MISMATCH: {key} ours {ours[key]} deepracer-utils {theirs[key]}")
                    failed = True
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
