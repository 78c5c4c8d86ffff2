"""Expected training episodes per hour for each layout: one GPU host alone, a bigger host, or the default host
with simulation nodes (`simNodes`), side by side, with the cost of 1,000 episodes on spot. An estimate, not a
measurement (there is no GPU and no simulator here); the model and its inputs, all printed:

    .venv/bin/python benchmarks/multinode_estimate.py [--lap-seconds 15] [--nodes 1,2,4]

One iteration (deepracer-simapp 6.0.4, bundle/markov; session/checks/sizing.py cites the files) is E episodes
dealt round-robin to W workers, then the trainer's policy update on the GPU while the workers wait for the new
checkpoint. So an iteration takes

    (E / W) x (d + r)   the workers' share, each episode d seconds of simulation plus the reset r between episodes
    + E x s x c         the update: c seconds of GPU per collected step, s steps per episode

and episodes per hour = 3600 x E / that = 3600 / ((d + r) / W + s x c): E drops out (it only has to be a multiple
of W and keep E x s under the trainer's 10,000-step cap). More workers shrink the first term only; the update
does not shrink, so workers stop paying off once (d + r) / W is small beside s x c.

The inputs come from the real DRfC single-worker run in the shared data (logs/drfc-2022-single-worker,
TrainingMetrics.json; data/SOURCES.md): d and s are its training episodes' mean duration and steps (the
simtrace's 39,392 steps over 541 episodes), r the median gap between two episodes of one iteration, c the median
gap between iterations divided by the steps of an iteration. The metrics' times are the simulator's clock
(simapp s3_metrics.py: `metric_time` = `_current_sim_time`), which is wall time while the simulation keeps real
time (15 steps a second, the target a worker with 2 vCPUs meets). That run's GPU is not recorded: a faster GPU
shrinks c. Its episodes are early ones (a third of a lap on average); `--lap-seconds` adds the profile of a
trained model that finishes laps. The check against the three-worker run (logs/drfc-2022-three-workers) is
printed too: what the model says an iteration takes against what each worker's clock says.

Layouts use the stack's own rules: workers per host (vCPUs - 2) / 2, at most 8 (infra.settings); per node
vCPUs / 2; prices from infra.pricing (spot as the stacks estimate it, root volumes included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra import pricing
from infra.settings import DEFAULT_ROOT_VOLUME_GB, node_workers_for_vcpus, workers_for_vcpus
from tests.shared_data import LOGS

STEPS_PER_SECOND = 15
SINGLE = LOGS / "drfc-2022-single-worker"
THREE = LOGS / "drfc-2022-three-workers"


@dataclass(frozen=True)
class Inputs:
    episode_s: float        # d
    reset_s: float          # r
    steps_per_episode: float  # s
    update_s_per_step: float  # c


def training_episodes(path: Path) -> list[dict]:
    return [m for m in json.loads(path.read_text())["metrics"] if m["phase"] == "training"]


def episodes_per_iteration(run: Path) -> int:
    return int(json.loads((run / "ip" / "hyperparameters.json").read_text())["num_episodes_between_training"])


def gaps(episodes: list[dict], per_iteration: int) -> tuple[list[float], list[float]]:
    """(gaps between two episodes of one iteration, gaps between iterations), in seconds of the simulator's clock."""
    within, between = [], []
    for i in range(1, len(episodes)):
        gap = (episodes[i]["start_time"] - episodes[i - 1]["metric_time"]) / 1000
        (between if i % per_iteration == 0 else within).append(gap)
    return within, between


def simtrace_steps(run: Path) -> int:
    return sum(sum(1 for _ in f.open()) - 1 for f in (run / "training-simtrace").glob("*-iteration.csv"))


def fit_single_worker() -> Inputs:
    episodes = training_episodes(SINGLE / "metrics" / "TrainingMetrics.json")
    per_iteration = episodes_per_iteration(SINGLE)
    within, between = gaps(episodes, per_iteration)
    steps = simtrace_steps(SINGLE)
    steps_per_episode = steps / len(episodes)
    return Inputs(
        episode_s=statistics.mean(e["elapsed_time_in_milliseconds"] for e in episodes) / 1000,
        reset_s=statistics.median(within),
        steps_per_episode=steps_per_episode,
        update_s_per_step=statistics.median(between) / (steps_per_episode * per_iteration),
    )


def episodes_per_hour(inputs: Inputs, workers: int) -> float:
    return 3600 / ((inputs.episode_s + inputs.reset_s) / workers + inputs.steps_per_episode * inputs.update_s_per_step)


def lap_profile(inputs: Inputs, lap_seconds: float) -> Inputs:
    return Inputs(lap_seconds, inputs.reset_s, lap_seconds * STEPS_PER_SECOND, inputs.update_s_per_step)


def three_worker_check(inputs: Inputs) -> tuple[float, list[float]]:
    """(the model's seconds per iteration for the three-worker run's own episodes, each worker's measured median)."""
    per_iteration = episodes_per_iteration(THREE)
    files = sorted((THREE / "metrics").glob("TrainingMetrics*.json"))
    measured, durations = [], []
    for path in files:
        episodes = training_episodes(path)
        durations += [e["elapsed_time_in_milliseconds"] / 1000 for e in episodes]
        share = per_iteration // len(files)
        starts = [episodes[i]["start_time"] / 1000 for i in range(0, len(episodes), share)]
        measured.append(statistics.median(b - a for a, b in zip(starts, starts[1:])))
    d = statistics.mean(durations)
    update = per_iteration * d * STEPS_PER_SECOND * inputs.update_s_per_step
    model = per_iteration / len(files) * (d + inputs.reset_s) + update
    return model, measured


@dataclass(frozen=True)
class Layout:
    name: str
    workers: int
    spot_usd_per_hour: float


def layouts(cloud: str, node_counts: list[int]) -> list[Layout]:
    """The single hosts a user would otherwise pick (T4 class), then the default host with nodes."""
    if cloud == "aws":
        hosts, vcpus_of = ("g4dn.2xlarge", "g4dn.4xlarge", "g4dn.8xlarge"), pricing.AWS_INSTANCE_TYPES
        node_type, node_vcpus = "c7i.2xlarge", pricing.AWS_CPU_INSTANCE_TYPES

        def estimate(host_type: str, count: int) -> float:
            alone = pricing.aws_hourly_estimate(host_type, "spot", DEFAULT_ROOT_VOLUME_GB)
            return pricing.aws_nodes_estimate(alone, count, node_type, spot=True)["spotTotalUsd"]
    else:
        hosts, vcpus_of = ("Standard_NC8as_T4_v3", "Standard_NC16as_T4_v3"), pricing.AZURE_VM_SIZES
        node_type, node_vcpus = "Standard_F8s_v2", pricing.AZURE_CPU_VM_SIZES

        def estimate(host_type: str, count: int) -> float:
            alone = pricing.azure_hourly_estimate(host_type, "spot", DEFAULT_ROOT_VOLUME_GB)
            return pricing.azure_nodes_estimate(alone, count, node_type, spot=True)["spotTotalUsd"]

    found = [Layout(f"{h} alone", workers_for_vcpus(vcpus_of[h][0]), estimate(h, 0)) for h in hosts]
    per_node = node_workers_for_vcpus(node_vcpus[node_type][0])
    for count in node_counts:
        found.append(Layout(f"{hosts[0]} + {count} x {node_type}", workers_for_vcpus(vcpus_of[hosts[0]][0])
                            + count * per_node, estimate(hosts[0], count)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lap-seconds", type=float, default=15.0,
                        help="a trained model's lap in seconds (15: A to Z Speedway's 16.6 m at ~1.1 m/s)")
    parser.add_argument("--nodes", default="1,2,4", help="node counts to show beside the default host")
    parser.add_argument("--cloud", choices=("aws", "azure"), default="aws", help="whose types and prices")
    args = parser.parse_args()

    early = fit_single_worker()
    laps = lap_profile(early, args.lap_seconds)
    print("inputs from the DRfC single-worker run (simulator clock):")
    print(f"  d = {early.episode_s:.2f} s a training episode, s = {early.steps_per_episode:.1f} steps, "
          f"r = {early.reset_s:.2f} s between episodes, c = {early.update_s_per_step * 1000:.1f} ms of update a step")
    print(f"  laps: d = {laps.episode_s:.1f} s, s = {laps.steps_per_episode:.0f} steps (--lap-seconds)")
    model, measured = three_worker_check(early)
    print(f"check, DRfC three-worker run: the model says {model:.0f} s an iteration, the workers' clocks "
          + ", ".join(f"{m:.0f} s" for m in measured) + " (medians)")
    print()
    print(f"| layout ({args.cloud}, spot) | workers | $/h | early episodes/h | $ per 1,000 early "
          f"| {args.lap_seconds:.0f} s laps/h | $ per 1,000 laps |")
    print("|---|---|---|---|---|---|---|")
    for layout in layouts(args.cloud, [int(n) for n in args.nodes.split(",") if n]):
        e, lap = episodes_per_hour(early, layout.workers), episodes_per_hour(laps, layout.workers)
        print(f"| {layout.name} | {layout.workers} | {layout.spot_usd_per_hour:.2f} | {e:,.0f} | "
              f"{1000 * layout.spot_usd_per_hour / e:.2f} | {lap:,.0f} | {1000 * layout.spot_usd_per_hour / lap:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
