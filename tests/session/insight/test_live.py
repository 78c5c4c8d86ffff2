"""session.insight.live and session.insight.live_view: the real trainer and worker logs fed line by line, checked against numbers
the tests work out from the same files (or from the run's metrics JSON) on their own; the stall rules; the rich
view rendered without a terminal; the follow loop against the tests' own dockerd."""

from __future__ import annotations

import io
import os
import re
import subprocess
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, List

import pytest

from session.engine.containers import (
    LABEL_ROLE,
    LABEL_RUN,
    LABEL_WORKER,
    ContainerInfo,
    ContainerSpec,
    Engine,
    EngineError,
    Mount,
)
from session.insight.live import (
    RATE_WINDOW_S,
    LiveState,
    Malformed,
    SimStep,
    StallRules,
    TrainerView,
    WorkerView,
    checkpoint_stall,
    evaluation_loops,
    exited_stalls,
    find_stalls,
    parse_line,
    parse_sim_trace,
    worker_stalls,
)
from session.insight.live_view import (
    DISK_PATHS,
    disk_usage,
    follow_session,
    gpu_usage,
    parse_nvidia_smi,
    render,
    watch_run,
)
from session.run.progress import group_iterations, parse_metrics, summarise
from tests.shared_data import LOGS

DROA = LOGS / "droa-2026-continuous-ppo-training"
SAGEMAKER_LOG = DROA / "training-sagemaker.log"
ROBOMAKER_LOG = DROA / "simulation-robomaker.log"
DROA_METRICS = DROA / "training-metrics.json"
ROS1_WORKER_1 = LOGS / "drfc-ros1-robomaker" / "deepracer-0_robomaker.1.74she0uhr3drkcy411ceh6144.log"
ROS1_WORKER_2 = LOGS / "drfc-ros1-robomaker" / "deepracer-0_robomaker.2.fqjslgl03wfq10avi4kci3ajq.log"
T0 = 1_800_000_000.0  # arrival time of replayed lines (after every wall_clock in the sample)
NAN_EXCEPTION = ('[download_params_and_roslaunch_agent_node-1] [agent-9] {"simapp_exception": {"date": '
                 '"2026-03-11 08:31:02.123456", "function": "training_worker.py::training_worker::371", "message": '
                 '"NaN detected in loss function, aborting training. Job failed!", "exceptionType": '
                 '"training_worker.exceptions", "eventType": "system_error", "errorCode": "503"}}')


def lines_of(path: Path) -> List[str]:
    """A log's lines as Engine.follow yields them."""
    return [line.rstrip("\r") for line in path.read_text(errors="replace").split("\n")]


def sim_fields(line: str) -> List[str]:
    return line.split("SIM_TRACE_LOG:", 1)[1].split("\t")[0].strip().split(",")


def fed(trainer: List[str] = (), workers: dict = None, at: float = T0) -> LiveState:
    state = LiveState()
    for line in trainer:
        state.trainer_line(line, at)
    for number, lines in (workers or {}).items():
        for line in lines:
            state.worker_line(number, line, at)
    return state


def text_of(renderable, width: int = 160) -> str:
    from rich.console import Console

    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


# --- the trainer's log -------------------------------------------------------------------------------------------


def test_the_trainer_log_gives_its_iteration_checkpoint_episodes_policy_and_best_checkpoint():
    lines = lines_of(SAGEMAKER_LOG)
    snapshot = fed(trainer=lines).snapshot(T0)
    trainer = snapshot.trainer

    episodes = [line for line in lines if line.startswith("Training>")]
    last_iteration = int(re.findall(r"Training iteration=(\d+)", episodes[-1])[0])
    saved = re.findall(r"agent/(\d+)_Step-(\d+)\.ckpt'\]", "\n".join(line for line in lines if "Saving" in line))
    policy = [line for line in lines if line.startswith("Policy training>")][-1]
    loss, kl, entropy = (float(v) for v in re.findall(r"(?:Surrogate loss|KL divergence|Entropy)=([^,]+)", policy))
    best = int(re.findall(r"Best checkpoint number: (\d+)", "\n".join(lines))[-1])

    assert (last_iteration, saved[-1], len(episodes), best) == (15, ("15", "10693"), 302, 13)
    assert trainer.iteration == trainer.printed_iteration == last_iteration
    assert (trainer.checkpoint, trainer.checkpoint_steps) == (int(saved[-1][0]), int(saved[-1][1]))
    assert trainer.checkpoints_saved == len(saved)
    assert trainer.episodes == len(episodes)
    assert trainer.steps == int(re.findall(r"Steps=(\d+)", episodes[-1])[0])
    assert (trainer.policy.surrogate_loss, trainer.policy.kl_divergence, trainer.policy.entropy) == (loss, kl, entropy)
    assert trainer.policy.epoch == 2 and not trainer.updating_policy  # a checkpoint followed the update
    assert (snapshot.best.number, snapshot.best.source) == (best, "trainer")
    assert trainer.malformed == 0

    # Without worker logs the iterations are the trainer's: its episodes and their total rewards.
    rewards = defaultdict(list)
    for line in episodes:
        rewards[int(re.findall(r"Training iteration=(\d+)", line)[0])].append(
            float(re.findall(r"Total reward=([^,]+)", line)[0]))
    assert [row.number for row in snapshot.iterations] == sorted(rewards)
    for row in snapshot.iterations:
        assert row.checkpoint == row.number  # a fresh run: iteration n plays checkpoint n
        assert row.episodes == len(rewards[row.number])
        assert row.mean_reward == pytest.approx(sum(rewards[row.number]) / len(rewards[row.number]))
        assert row.mean_completion is None


def test_each_iterations_policy_values_are_the_last_epoch_before_its_checkpoint():
    lines = lines_of(SAGEMAKER_LOG)
    expected, last = {}, None
    iteration = -1
    for line in lines:
        if line.startswith("Policy training>"):
            last = float(re.findall(r"Entropy=([^,]+)", line)[0])
        elif "Checkpoint> Saving" in line:
            if last is not None:
                expected[iteration] = last
            iteration, last = iteration + 1, None
    rows = {row.number: row for row in fed(trainer=lines).snapshot(T0).iterations}
    assert len(expected) == 15
    assert {number: rows[number].policy.entropy for number in expected} == expected


# --- a worker's log ----------------------------------------------------------------------------------------------


def test_the_worker_log_gives_episodes_steps_laps_checkpoint_and_evaluations():
    lines = lines_of(ROBOMAKER_LOG)
    worker = fed(workers={1: lines}).snapshot(T0).workers[0]

    steps = [sim_fields(line) for line in lines if "SIM_TRACE_LOG:" in line]
    ends = [fields for fields in steps if fields[9] == "True"]
    restored = re.findall(r"Restoring from path=\S*/(\d+)_Step", "\n".join(lines))
    assert (len(steps), len(ends)) == (10693, 300)
    assert worker.number == 1
    assert worker.steps == len(steps)
    assert worker.episodes == len(ends) == sum(line.count("] Training>") for line in lines)
    assert worker.laps == sum(1 for fields in ends if fields[15] == "lap_complete")
    assert worker.eval_episodes == sum(1 for line in lines if "Testing>" in line) == 30
    assert worker.checkpoint == int(restored[-1])
    assert (worker.episode, worker.step, worker.progress) == (int(steps[-1][0]), int(steps[-1][1]),
                                                               float(steps[-1][11]))
    assert worker.phase == "evaluating"  # the log ends in worker 1's evaluation of checkpoint 14
    assert worker.malformed == 0


def test_steps_per_second_come_from_the_wall_clock_of_the_newest_minute():
    lines = lines_of(ROBOMAKER_LOG)
    clocks = [float(sim_fields(line)[18]) for line in lines if "SIM_TRACE_LOG:" in line]
    last = clocks[-1]
    window = [t for t in clocks if t >= last - RATE_WINDOW_S]
    expected = (len(window) - 1) / (last - window[0])

    state = fed(workers={1: lines})
    assert state.snapshot(last).workers[0].steps_per_s == pytest.approx(expected)
    assert 5 < expected < 30  # a simulator's pace, not an artefact of the arrival times (all equal here)
    assert state.snapshot(last + RATE_WINDOW_S + 1).workers[0].steps_per_s == 0.0  # nothing for a minute


def test_without_wall_clock_arrival_times_count_once_the_replayed_backlog_is_read():
    lines = lines_of(ROS1_WORKER_2)  # simapp 5.0: 17 fields, no wall_clock
    traced = [i for i, line in enumerate(lines) if "SIM_TRACE_LOG:" in line]
    split = traced[200]
    state = LiveState()
    for line in lines[:split]:  # the backlog Engine.follow replays at once, without a pause
        state.worker_line(2, line, T0)
    assert state.snapshot(T0).workers[0].steps_per_s is None
    at = first = T0 + 2.0  # the simulator's next line comes after a pause; then one step every 0.1 s
    for line in lines[split:]:
        state.worker_line(2, line, at)
        if "SIM_TRACE_LOG:" in line:
            at += 0.1
    live_steps = len(traced) - 200
    last = at - 0.1
    assert state.snapshot(last).workers[0].steps == len(traced)
    assert state.snapshot(last).workers[0].steps_per_s == pytest.approx((live_steps - 1) / (last - first))
    assert state.snapshot(last).workers[0].steps_per_s == pytest.approx(10.0)


def test_iterations_from_the_worker_log_agree_with_the_runs_metrics_json():
    lines = lines_of(ROBOMAKER_LOG)
    rows = {row.number: row for row in fed(workers={1: lines}).snapshot(T0).iterations}
    entries, _ = parse_metrics(DROA_METRICS.read_bytes())
    metrics = {iteration.number: iteration for iteration in group_iterations({1: entries})[0]}

    complete = [n for n in rows if n in metrics and rows[n].episodes == metrics[n].episodes]
    assert complete == list(range(15))
    for number in complete:
        row, stored = rows[number], metrics[number]
        assert row.checkpoint == number
        # The JSON truncates completion to an int and rounds each episode's reward.
        assert 0 <= row.mean_completion - stored.mean_completion < 1
        assert abs(row.mean_reward - stored.mean_reward) <= 0.5
        assert row.laps == stored.laps
        if row.eval_mean is not None:  # worker 1's evaluation, reported once it loads the next checkpoint
            assert row.eval_metric == "progress"
            assert 0 <= row.eval_mean - stored.eval_completion < 1
    assert [n for n in complete if rows[n].eval_mean is None] == [14]


def test_the_best_checkpoint_is_the_one_whose_evaluation_mean_is_highest_and_trainer_and_worker_agree():
    lines = lines_of(ROBOMAKER_LOG)
    means, loaded, previous = {}, None, None
    for line in lines:
        found = re.search(r"Restoring from path=\S*/(\d+)_Step", line)
        if found:
            previous, loaded = loaded, int(found[1])
        found = re.search(r"Evaluation episode progress mean: ([\d.]+)", line)
        if found and previous is not None:
            means[previous] = float(found[1])
    best_number, best_mean = None, None
    for number in sorted(means):  # the simulator keeps the newer one on a tie
        if best_mean is None or means[number] >= best_mean:
            best_number, best_mean = number, means[number]

    from_worker = fed(workers={1: lines}).snapshot(T0).best
    assert (from_worker.number, from_worker.metric, from_worker.metric_name, from_worker.source) == (
        best_number, best_mean, "progress", "worker 1") == (13, 100.0, "progress", "worker 1")
    both = fed(trainer=lines_of(SAGEMAKER_LOG), workers={1: lines}).snapshot(T0)
    assert (both.best.number, both.best.metric) == (13, 100.0)


def test_trainer_and_worker_logs_fed_together_agree_on_each_iterations_reward():
    trainer_lines, worker_lines = lines_of(SAGEMAKER_LOG), lines_of(ROBOMAKER_LOG)
    snapshot = fed(trainer=trainer_lines, workers={1: worker_lines}).snapshot(T0)
    trainer_only = {row.number: row for row in fed(trainer=trainer_lines).snapshot(T0).iterations}
    for row in snapshot.iterations[:-1]:  # the last has the trainer's first 2 episodes only
        # SIM_TRACE rewards summed per episode vs the trainer's Total reward (printed with 2 decimals)
        assert row.mean_reward == pytest.approx(trainer_only[row.number].mean_reward, abs=0.01)
        assert row.policy == trainer_only[row.number].policy
    assert snapshot.trainer.episodes == 302 and snapshot.workers[0].episodes == 300


# --- malformed lines ---------------------------------------------------------------------------------------------


def test_broken_lines_are_counted_and_change_nothing_else():
    lines = lines_of(ROBOMAKER_LOG)
    step = next(line for line in lines if "SIM_TRACE_LOG:" in line)
    episode = next(line for line in lines_of(SAGEMAKER_LOG) if line.startswith("Training>"))
    state = LiveState()
    state.worker_line(1, step[: len(step) // 2], T0)  # cut off mid-line
    state.worker_line(1, step.replace(",False,", ",Maybe,", 1), T0)
    state.trainer_line(episode.split(", Steps")[0], T0)
    snapshot = state.snapshot(T0)
    assert snapshot.workers[0].malformed == 2 and snapshot.workers[0].steps == 0
    assert snapshot.trainer.malformed == 1 and snapshot.trainer.episodes == 0
    assert isinstance(parse_line(step[: step.index("SIM_TRACE_LOG:") + 30]), Malformed)
    assert parse_line("[agent-9] Reset agent") is None


def test_sim_trace_lines_of_every_field_count_parse():
    droa = next(line for line in lines_of(ROBOMAKER_LOG) if "SIM_TRACE_LOG:" in line and sim_fields(line)[9] == "True")
    ros1 = next(line for line in lines_of(ROS1_WORKER_1) if "SIM_TRACE_LOG:" in line)
    assert len(sim_fields(droa)) == 19 and len(sim_fields(ros1)) == 17
    step = parse_sim_trace(droa)
    assert isinstance(step, SimStep) and step.wall_clock == float(sim_fields(droa)[18]) and step.done
    assert parse_sim_trace(ros1).wall_clock is None and parse_sim_trace(ros1).status == sim_fields(ros1)[15]
    fifteen = "SIM_TRACE_LOG:" + ",".join(sim_fields(ros1)[:15])
    assert parse_sim_trace(fifteen).status == "" and parse_sim_trace(fifteen + "\tros noise").step == 1
    commas = droa.replace(droa[droa.index("[", droa.index("SIM_TRACE_LOG:")):].split("]")[0], "[4.98, 2.0", 1)
    assert parse_sim_trace(commas) == step  # a continuous action printed with commas splits the same
    assert parse_sim_trace("no trace here") is None
    with pytest.raises(ValueError):
        parse_sim_trace("SIM_TRACE_LOG:" + ",".join(sim_fields(ros1)[:14]))


def test_the_best_checkpoint_in_storage_shows_until_the_logs_know_a_newer_one():
    entries, metric = parse_metrics(DROA_METRICS.read_bytes())
    stored = summarise("p", "p", {1: entries}, best_model_metric=metric, checkpoints_document={
        "best_checkpoint": {"name": "12_Step-7294.ckpt", "avg_eval_metric": 100.0},
        "last_checkpoint": {"name": "13_Step-8383.ckpt", "avg_eval_metric": 100.0}})
    state = LiveState()
    state.set_progress(stored, None, T0)
    best = state.snapshot(T0).best
    assert (best.number, best.metric, best.metric_name, best.source) == (12, 100.0, "progress", "storage")
    for line in lines_of(ROBOMAKER_LOG):
        state.worker_line(1, line, T0)
    assert (state.snapshot(T0).best.number, state.snapshot(T0).best.source) == (13, "worker 1")
    state.set_progress(None, "connection refused", T0 + 30)  # a failed read keeps the previous one
    assert state.snapshot(T0 + 30).progress is stored and state.snapshot(T0 + 30).progress_error == "connection refused"


# --- stall rules -------------------------------------------------------------------------------------------------


def test_no_new_checkpoint_for_n_minutes_is_a_stall_with_the_trainers_state_as_cause():
    lines = lines_of(SAGEMAKER_LOG)
    saving = next(i for i, line in enumerate(lines) if "agent/5_Step-" in line)
    state = fed(trainer=lines[: saving + 1])
    assert checkpoint_stall(state.snapshot(T0).trainer, (), T0 + 20 * 60 - 1) is None
    stall = checkpoint_stall(state.snapshot(T0).trainer, (), T0 + 20 * 60)
    assert (stall.kind, stall.subject) == ("checkpoint", "trainer")
    assert stall.message == "no new checkpoint for 20 min (since checkpoint 5)"
    assert "0 episodes of this iteration" in stall.cause
    assert checkpoint_stall(state.snapshot(T0).trainer, (), T0 + 20 * 60, StallRules(checkpoint_minutes=30)) is None

    # Fed on to the policy update that follows iteration 5's episodes: the trainer is busy training.
    update = next(i for i, line in enumerate(lines) if i > saving and line.startswith("Policy training>"))
    for line in lines[saving + 1: update + 1]:
        state.trainer_line(line, T0 + 60)
    stall = checkpoint_stall(state.snapshot(T0).trainer, (), T0 + 25 * 60)
    assert stall.message.startswith("no new checkpoint for 25 min")
    assert stall.cause.startswith("the trainer is still updating the policy for 24 min")
    # ... and with a worker gone, that is the cause.
    gone = WorkerView(2, state="exited", exit_code=137)
    assert "waits for episodes from worker 2, which exited (code 137)" in checkpoint_stall(
        state.snapshot(T0).trainer, (gone,), T0 + 25 * 60).cause


def test_a_worker_stuck_mid_episode_is_flagged_after_m_minutes():
    lines = lines_of(ROBOMAKER_LOG)
    traced = [i for i, line in enumerate(lines) if "SIM_TRACE_LOG:" in line]
    stop = next(i for i in traced[5000:] if sim_fields(lines[i])[9] == "False")
    fields = sim_fields(lines[stop])
    last = float(fields[18])
    state = fed(workers={1: lines[: stop + 1]})
    assert find_stalls(state.snapshot(last).trainer, state.snapshot(last).workers, last + 5 * 60 - 1) == ()
    [stall] = state.snapshot(last + 5 * 60).stalls
    assert (stall.kind, stall.subject) == ("worker", "worker 1")
    assert stall.message == f"no simulation step for 5 min, stuck at step {fields[1]} of episode {fields[0]}"
    assert "simulator hung mid-episode" in stall.cause
    assert state.snapshot(last + 5 * 60, StallRules(worker_minutes=10)).stalls == ()


def test_an_idle_worker_points_at_the_trainer_or_at_storage():
    now = T0 + 600
    idle = WorkerView(2, state="running", episodes=40, steps=900, episode=39, step=20, mid_episode=False,
                      phase="waiting", last_step_at=now - 400, checkpoint=2)
    training = TrainerView(state="running", checkpoint=2, checkpoint_at=now - 500, last_line_at=now - 300,
                           updating_policy=True, policy_at=now - 300)
    [stall] = worker_stalls(training, (idle,), now)
    assert stall.message == "idle for 6 min after episode 39, waiting for the next checkpoint"
    assert stall.cause.startswith("the trainer is still updating the policy for 5 min")
    saved = TrainerView(state="running", checkpoint=3, checkpoint_at=now - 120, last_line_at=now - 100)
    [stall] = worker_stalls(saved, (idle,), now)
    assert "saved checkpoint 3, the worker still has 2" in stall.message and "storage" in stall.cause
    assert worker_stalls(saved, (idle,), now, StallRules(worker_minutes=7)) == []
    assert worker_stalls(saved, (WorkerView(2, state="exited", exit_code=0, last_step_at=0.0),), now) == []


def test_the_evaluation_loop_of_a_real_drfc_worker_is_flagged_until_the_next_checkpoint_comes():
    lines = lines_of(ROS1_WORKER_1)  # worker 1 of a 4-worker DRfC run evaluates checkpoint 4 over and over
    restore = next(i for i, line in enumerate(lines) if "Restoring from path=./checkpoint_robomaker/agent/5_" in line)
    extra = sum(1 for line in lines[:restore] if line.startswith("Additional evaluation. "))
    waits = re.findall(r"Last Checkpoint: (\d+)", "\n".join(lines[:restore]))
    assert extra == 50 and set(waits) == {"4"}

    state = fed(workers={1: lines[:restore]})
    [stall] = state.snapshot(T0).stalls
    assert (stall.kind, stall.subject) == ("evaluation-loop", "worker 1")
    assert stall.message == (f"{extra} extra evaluations of checkpoint 4 while waiting for checkpoint 5 "
                             "(it sees -1)")
    assert "its log is not available" in stall.cause
    assert state.snapshot(T0, StallRules(evaluation_loop=extra + 1)).stalls == ()
    assert state.snapshot(T0).workers[0].phase == "evaluating"

    for line in lines[restore:]:
        state.worker_line(1, line, T0)
    assert state.snapshot(T0).stalls == ()
    assert state.snapshot(T0).workers[0].checkpoint == 5


def test_the_evaluation_loops_cause_follows_the_trainer_and_the_other_workers():
    looping = WorkerView(1, state="running", phase="evaluating", additional_evaluations=25, awaited_checkpoint=5,
                         seen_checkpoint=4, last_line_at=T0, checkpoint=4)
    others = (looping, WorkerView(2, state="running", phase="driving", mid_episode=True, episode=80, step=12,
                                  last_step_at=T0 - 600, steps=3000))
    quiet = TrainerView(state="running", checkpoint=4, checkpoint_at=T0 - 900, last_line_at=T0 - 800,
                        episodes_since_checkpoint=30)
    [loop] = evaluation_loops(quiet, others, T0)
    assert loop.cause == "the trainer waits for episodes from worker 2, which is stuck mid-episode"
    [loop] = evaluation_loops(quiet, others[:1], T0)
    assert loop.cause.startswith("the trainer has 30 episodes of this iteration and waits for more")
    saved = TrainerView(state="running", checkpoint=5, checkpoint_at=T0 - 300, last_line_at=T0 - 300)
    [loop] = evaluation_loops(saved, others[:1], T0)
    assert loop.cause.startswith("the trainer saved checkpoint 5 but the worker does not see it")
    dead = TrainerView(state="exited", exit_code=1, checkpoint=4, last_line_at=T0 - 300)
    [loop] = evaluation_loops(dead, others[:1], T0)
    assert loop.cause == "the trainer exited (code 1); see `deepracer logs trainer`"
    assert evaluation_loops(quiet, others[:1], T0, StallRules(evaluation_loop=26)) == []


def test_a_simapp_exception_is_a_stall_with_its_message_and_cause():
    lines = lines_of(ROBOMAKER_LOG)
    before_driving = next(i for i, line in enumerate(lines) if "SIM_TRACE_LOG:" in line)
    state = fed(workers={1: lines[:before_driving] + [NAN_EXCEPTION]})
    [stall] = state.snapshot(T0).stalls
    assert (stall.kind, stall.subject) == ("exception", "worker 1")
    assert stall.message == ("simapp_exception: NaN detected in loss function, aborting training. Job failed! "
                             "(errorCode 503)")
    assert stall.cause.startswith("the loss became NaN")
    user = NAN_EXCEPTION.replace("NaN detected in loss function, aborting training. Job failed!",
                                 "Reward function exceeds the allowed range").replace('"system_error"', '"user_error"')
    state.trainer_line(user.replace('"503"', '"400"'), T0)
    stalls = {stall.subject: stall for stall in state.snapshot(T0).stalls}
    assert stalls["trainer"].cause.startswith("a user error")


def test_containers_that_exit_badly_are_stalls_and_a_clean_end_is_not():
    def container(role: str, status: str, code=None, worker=None) -> ContainerInfo:
        return ContainerInfo(id=uuid.uuid4().hex, name=f"{role}-{worker}", image="i", role=role, run="0",
                             worker=worker, prefix=None, status=status, exit_code=code,
                             started_at=datetime.fromtimestamp(T0 - 60, timezone.utc))

    state = LiveState()
    state.set_containers([container("trainer", "running"), container("worker", "exited", 137, 1),
                          container("worker", "running", None, 2)])
    [stall] = state.snapshot(T0).stalls
    assert (stall.kind, stall.subject, stall.message) == ("exited", "worker 1", "worker 1 exited with code 137")
    assert "out of memory" in stall.cause
    state.set_containers([container("trainer", "exited", 0), container("worker", "exited", 0, 1),
                          container("worker", "exited", 0, 2)])
    assert exited_stalls(state.snapshot(T0).trainer, state.snapshot(T0).workers) == []
    assert state.snapshot(T0).stalls == ()


def test_stall_thresholds_must_be_positive():
    with pytest.raises(ValueError):
        StallRules(checkpoint_minutes=0)
    with pytest.raises(ValueError):
        StallRules(evaluation_loop=0)


# --- GPU and disks -----------------------------------------------------------------------------------------------


def test_nvidia_smi_output_is_parsed_and_its_absence_means_no_gpu():
    assert parse_nvidia_smi("35, 5120, 15360\n 0, 1, 81920 \n")[1].memory_total_mib == 81920
    with pytest.raises(ValueError):
        parse_nvidia_smi("[N/A], 5120, 15360")
    assert gpu_usage(which=lambda name: None) == (None, None)

    def ran(output: str, code: int = 0):
        return lambda argv, **kw: subprocess.CompletedProcess(argv, code, stdout=output, stderr="driver gone")

    gpus, error = gpu_usage(run=ran("87, 10240, 15360\n"), which=lambda name: "/usr/bin/nvidia-smi")
    assert error is None and (gpus[0].utilization_pct, gpus[0].memory_used_mib) == (87.0, 10240.0)
    gpus, error = gpu_usage(run=ran("", 9), which=lambda name: "/usr/bin/nvidia-smi")
    assert gpus is None and error == "nvidia-smi exited with code 9: driver gone"


def test_disk_use_lists_each_file_system_once_and_skips_missing_paths(tmp_path):
    found = disk_usage(("/", str(tmp_path), "/no/such/path"))
    same = os.stat("/").st_dev == os.stat(tmp_path).st_dev
    assert [d.path for d in found] == (["/"] if same else ["/", str(tmp_path)])
    assert 0 < found[0].used_pct < 100 and found[0].free_bytes > 0
    assert DISK_PATHS == ("/", "/mnt")


# --- the rich view -----------------------------------------------------------------------------------------------


def test_the_view_renders_trainer_workers_iterations_host_and_stalls_without_a_terminal():
    from session.insight.live import DiskUse, GpuUse

    state = fed(trainer=lines_of(SAGEMAKER_LOG), workers={1: lines_of(ROBOMAKER_LOG)})
    state.set_host([GpuUse(0, 35.0, 5120.0, 15360.0)], None, [DiskUse("/", 100 * 2**30, 40 * 2**30, 60 * 2**30)])
    text = text_of(render(state.snapshot(T0), "run 0 · rl-deepracer-sagemaker"))
    assert "deepracer watch  run 0 · rl-deepracer-sagemaker" in text
    assert "iteration 15 · checkpoint 15, 10,693 steps" in text and "302 episodes received" in text
    assert "epoch 2: loss -0.009149 · KL 0.01496 · entropy 2.796 · lr 0.0003" in text
    assert "best     checkpoint 13 (progress 100.0), as worker 1 says" in text
    assert re.search(r"\n 1 +\? +evaluating +300 +2 +299/31 +15\.3% +0\.0 +14 ", text)  # its steps are old
    assert re.search(r"\n +13 +13\* +20 +32\.24 +34\.6% +0 +100\.0% +2\.8047 +0\.0167 +-0\.0109", text)
    assert "GPU 0 35%, 5.0/15.0 GiB" in text and "disk / 40% used, 60.0 GiB free" in text
    # No checkpoint for 30 minutes and worker 1 silent while evaluating:
    text = text_of(render(state.snapshot(T0 + 1800), "run 0"), width=300)
    assert "STALL worker 1: no log line for 30 min while evaluating" in text
    assert "STALL trainer: no new checkpoint for 30 min (since checkpoint 15)" in text
    assert "likely cause: the trainer waits for episodes from worker 1, which has been silent while evaluating" in text
    assert "no stalls" not in text


def test_an_empty_view_says_nothing_runs_and_shows_no_gpu():
    state = LiveState()
    state.set_host(None, None, ())
    state.set_progress(None, "cannot reach the bucket", T0)
    text = text_of(render(state.snapshot(T0)))
    assert "nothing of this run runs" in text and "no GPU" in text
    assert "storage  cannot read: cannot reach the bucket" in text and "no stalls" in text


# --- the follow loop ---------------------------------------------------------------------------------------------


def _info(role: str, worker=None, status: str = "running") -> ContainerInfo:
    return ContainerInfo(id=f"{role}-{worker}", name=f"{role}-{worker}", image="i", role=role, run="0",
                         worker=worker, prefix=None, status=status)


def test_the_loop_stops_when_until_says_so_and_after_max_refreshes():
    lines = lines_of(ROBOMAKER_LOG)[:3000]
    episodes = sum(1 for line in lines if "SIM_TRACE_LOG:" in line and sim_fields(line)[9] == "True")
    seen: List = []
    final = follow_session(lambda: [_info("worker", 1)], lambda container: iter(lines), seen.append,
                           probe=None, clock=lambda: T0, refresh_s=0.05,
                           until=lambda s: bool(s.workers) and s.workers[0].episodes == episodes,
                           max_refreshes=400)
    assert final.workers[0].episodes == episodes and len(seen) < 400

    blocked: List = []
    final = follow_session(lambda: [_info("worker", 1)], lambda container: iter(()), blocked.append,
                           probe=None, clock=lambda: T0, refresh_s=0.01, max_refreshes=3)
    assert len(blocked) == 3 and final is blocked[-1]  # the container "runs" on: only the bound ends it


def test_the_loop_raises_the_first_engine_error_and_shows_later_ones():
    with pytest.raises(EngineError):
        follow_session(lambda: (_ for _ in ()).throw(EngineError("cannot reach the Docker Engine")),
                       lambda c: iter(()), lambda s: None, probe=None)
    calls = []

    def listing():
        calls.append(1)
        if len(calls) > 1:
            raise EngineError("the Docker Engine went away")
        return [_info("worker", 1)]

    final = follow_session(listing, lambda c: iter(()), lambda s: None, probe=None, clock=lambda: T0,
                           refresh_s=0.01, containers_every_s=0.0, until=lambda s: s.engine_error is not None,
                           max_refreshes=100)
    assert final.engine_error == "the Docker Engine went away"
    assert "docker: the Docker Engine went away" in text_of(render(final))


@pytest.fixture
def engine(docker_engine) -> Engine:
    return Engine(base_url=docker_engine)


@pytest.fixture
def network(engine: Engine, docker_engine) -> Iterator[str]:
    import docker

    name = engine.ensure_network(f"drt-live-{uuid.uuid4().hex[:8]}")
    yield name
    client = docker.DockerClient(base_url=docker_engine)
    client.networks.get(name).remove()
    client.close()


@pytest.fixture
def made(docker_engine, network) -> Iterator[List[str]]:
    """Names of containers a test made; force-removed afterwards (before the network goes)."""
    import docker

    names: List[str] = []
    yield names
    client = docker.DockerClient(base_url=docker_engine)
    for name in names:
        try:
            client.containers.get(name).remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
    client.close()


def test_following_labelled_containers_on_a_real_engine_shows_the_sessions_numbers(
        engine: Engine, standin_image: str, network: str, made: List[str], tmp_path: Path):
    """A worker echoes the first iterations of the real robomaker log; the trainer's SageMaker sibling echoes the
    real trainer lines, and the rl_coach container relays (some of) them as `docker compose up` does: the view
    follows the sibling only, so no episode counts twice."""
    worker_lines = lines_of(ROBOMAKER_LOG)
    cut = next(i for i, line in enumerate(worker_lines) if "agent/3_Step-" in line)
    worker_lines = worker_lines[:cut]
    trainer_lines = lines_of(SAGEMAKER_LOG)
    trainer_lines = trainer_lines[: next(i for i, line in enumerate(trainer_lines) if "agent/3_Step-" in line) + 1]
    data = tmp_path / "logs"
    data.mkdir()
    (data / "worker.log").write_text("\n".join(worker_lines) + "\n")
    (data / "sagemaker.log").write_text("\n".join(trainer_lines) + "\n")
    # The relay stops earlier: were it followed (as well), the iteration (or the count) would tell.
    relayed = trainer_lines[: next(i for i, line in enumerate(trainer_lines) if "agent/2_Step-" in line) + 1]
    (data / "relay.log").write_text("".join(f"algo-1-x7k2q  | {line}\n" for line in relayed))

    run_id, prefix, tag = str(5000 + uuid.uuid4().int % 4000), f"live-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    mounts = (Mount(str(data), "/data", read_only=True),)

    def start(name: str, role, log: str, worker=None, environment=None) -> None:
        labels = {LABEL_RUN: run_id, LABEL_ROLE: role} if role else {}
        if worker:
            labels[LABEL_WORKER] = str(worker)
        made.append(name)
        engine.start(ContainerSpec(name=name, image=standin_image, command=("cat", f"/data/{log}"),
                                   environment=environment or {}, labels=labels, mounts=mounts, network=network))

    start(f"drt-live-{tag}-worker-1", "worker", "worker.log", worker=1)
    start(f"drt-live-{tag}-trainer", "trainer", "relay.log")
    start(f"tmp{tag}-algo-1-x7k2q", None, "sagemaker.log",
          environment={"RUN_ID": run_id, "TRAINING_JOB_NAME": prefix})

    def containers():
        return [*engine.list(run=run_id), *engine.sagemaker_siblings(standin_image, prefix, run=run_id)]

    entries, metric = parse_metrics(DROA_METRICS.read_bytes())
    progress = summarise(prefix, prefix, {1: entries}, best_model_metric=metric)
    last_clock = max(float(sim_fields(line)[18]) for line in worker_lines if "SIM_TRACE_LOG:" in line)
    snapshots, screens = [], []

    def show(snapshot) -> None:
        snapshots.append(snapshot)
        screens.append(text_of(render(snapshot, f"run {run_id}")))

    final = follow_session(containers, engine.follow, show, read_progress=lambda: progress,
                           clock=lambda: last_clock + 1, refresh_s=0.1, containers_every_s=0.2, max_refreshes=300)

    traced = [sim_fields(line) for line in worker_lines if "SIM_TRACE_LOG:" in line]
    received = [line for line in trainer_lines if line.startswith("Training>")]
    assert len(snapshots) < 300  # ended because everything exited and was read, not by the bound
    assert final.trainer.state == "exited" and final.trainer.exit_code == 0
    assert final.trainer.episodes == len(received) == 60  # once, not twice
    assert (final.trainer.iteration, final.trainer.checkpoint) == (3, 3)
    [worker] = final.workers
    assert (worker.state, worker.episodes, worker.steps) == ("exited", sum(f[9] == "True" for f in traced),
                                                             len(traced))
    assert worker.checkpoint == 2 and worker.steps_per_s is not None
    assert [(row.number, row.episodes) for row in final.iterations] == [(0, 20), (1, 20), (2, 20)]
    assert final.progress is progress and final.gpus is None  # no nvidia-smi on the test machine
    assert final.best.number == 1  # worker 1 chose checkpoint 1 after evaluating it
    assert final.stalls == ()
    assert "iteration 3 · checkpoint 3" in screens[-1] and "storage  " in screens[-1]
    assert "no GPU" in screens[-1]


def test_watch_run_shows_a_run_with_nothing_running_and_returns(engine: Engine, standin_image: str, tmp_path: Path,
                                                                storage):
    from rich.console import Console

    from session.core.config import load_config

    source, tag = standin_image.split(":")
    (tmp_path / "system.env").write_text(
        f"DR_CLOUD=local\nDR_LOCAL_S3_BUCKET={storage.bucket}\nDR_SIMAPP_SOURCE={source}\nDR_SIMAPP_VERSION={tag}\n"
        "DR_WORKERS=1\nDR_LOCAL_S3_ENDPOINT_URL=http://127.0.0.1:9\nDR_LOCAL_ACCESS_KEY_ID=testing\n"
        "DR_LOCAL_SECRET_ACCESS_KEY=testing\n")
    (tmp_path / "run.env").write_text(f"DR_RUN_ID={9000 + uuid.uuid4().int % 900}\n"
                                      "DR_LOCAL_S3_MODEL_PREFIX=live-nothing\n")
    loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
    console = Console(record=True, width=160, file=io.StringIO(), color_system=None)
    assert watch_run(loaded.system, loaded.run, engine=engine, storage=storage, console=console) == 0
    text = console.export_text()
    assert "nothing of this run runs" in text and "nothing under live-nothing/ yet" in text
