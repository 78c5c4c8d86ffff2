"""The page's JSON (session.dashboard.api): the live view's numbers as `watch` computes them, plain JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from session.core.config import load_config
from session.core.pricing import hourly_price
from session.dashboard.api import COUNTED, CostFacts, month_start, state_json
from session.engine.containers import ContainerInfo
from session.insight.live import LiveState
from session.run.state import RunState, Status

T0 = 1_800_000_000.0
NOW = datetime.fromtimestamp(T0 + 30, timezone.utc)
AGENT = "[download_params_and_roslaunch_agent_node-1] [agent-9] "


def sim_trace(episode: int, step: int, reward: str, done: bool, progress: float, at: float) -> str:
    status = "lap_complete" if done and progress >= 100 else "off_track" if done else "in_progress"
    return (f"{AGENT}SIM_TRACE_LOG:{episode},{step},1.0,2.0,0.1,0.0,1.0,3,{reward},{done},True,{progress},5,23.12,"
            f"{step / 15:.3f},{status},0,0,{at:.3f}")


def configs(tmp_path: Path):
    (tmp_path / "system.env").write_text("DR_CLOUD=local\nDR_SIMAPP_VERSION=6.0.4-gpu\nDR_LOCAL_S3_BUCKET=models\n"
                                         "DR_WORKERS=2\n")
    (tmp_path / "run.env").write_text("DR_RUN_ID=3\nDR_LOCAL_S3_MODEL_PREFIX=fast-1\n")
    loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
    return loaded.system, loaded.run


def container(role: str, status: str, worker=None, exit_code=None) -> ContainerInfo:
    name = f"deepracer-3-{role}" + (f"-{worker}" if worker else "")
    return ContainerInfo(id=name, name=name, image="simapp", role=role, run="3", worker=worker, prefix="fast-1",
                         status=status, exit_code=exit_code,
                         started_at=datetime.fromtimestamp(T0, timezone.utc))


def test_iterations_workers_and_stalls_are_the_live_views_in_plain_json(tmp_path: Path):
    system, run = configs(tmp_path)
    state = LiveState()
    state.trainer_line("Checkpoint> Saving in path=['./checkpoint_sagemaker/agent/0_Step-0.ckpt']", T0)
    state.worker_line(1, f"{AGENT}Checkpoint> Restoring from path=./checkpoint/agent/0_Step-0.ckpt", T0)
    for step, (reward, done, progress) in enumerate([("1.5", False, 2.0), ("2.5", True, 4.0)], start=1):
        state.worker_line(1, sim_trace(1, step, reward, done, progress, T0 + step), T0 + step)
    state.worker_line(2, f"{AGENT}Checkpoint> Restoring from path=./checkpoint/agent/0_Step-0.ckpt", T0)
    state.worker_line(2, sim_trace(1, 1, "nan", True, 1.0, T0 + 1), T0 + 1)  # a NaN reward: JSON has no NaN
    containers = [container("trainer", "running"), container("worker", "running", 1),
                  container("worker", "exited", 2, 137)]
    state.set_containers(containers)
    document = state_json(system=system, run=run, snapshot=state.snapshot(T0 + 30), containers=containers,
                          run_state=None, now=NOW)
    json.dumps(document, allow_nan=False)  # what the browser parses

    live = document["live"]
    [row] = live["iterations"]
    assert (row["number"], row["checkpoint"], row["episodes"]) == (0, 0, 2)
    assert row["mean_reward"] is None  # (4.0 + NaN) / 2: not a number, shown as none
    assert [(w["number"], w["name"], w["episodes"], w["state"]) for w in live["workers"]] == [
        (1, "worker 1", 1, "running"), (2, "worker 2", 1, "exited")]
    [stall] = live["stalls"]
    assert (stall["kind"], stall["subject"], stall["message"]) == ("exited", "worker 2", "worker 2 exited with code 137")
    assert stall["cause"].startswith("killed (SIGKILL): out of memory")
    assert [(c["role"], c["worker"], c["running"]) for c in document["containers"]] == [
        ("trainer", None, True), ("worker", 1, True), ("worker", 2, False)]
    assert document["running"] is True and document["run"]["model_prefix"] == "fast-1"


def test_time_comes_from_this_runs_record_only(tmp_path: Path):
    system, run = configs(tmp_path)
    started = NOW - timedelta(minutes=20)
    ours = RunState(status=Status.RUNNING, run_id=3, prefix="fast-1", run_env="run.env", system_env="system.env",
                    started=started, max_minutes=60, trained_s=600.0)
    time = state_json(system=system, run=run, snapshot=None, containers=(), run_state=ours, now=NOW)["time"]
    assert (time["trained_s"], time["max_minutes"], time["time_left_s"]) == (1800.0, 60, 1800.0)
    assert time["idle_stop_minutes"] == 30 and time["status"] == "running"
    other = RunState(status=Status.RUNNING, run_id=4, prefix="other-1", run_env="run.env", system_env="system.env",
                     started=started, max_minutes=60)
    time = state_json(system=system, run=run, snapshot=None, containers=(), run_state=other, now=NOW)["time"]
    assert (time["status"], time["trained_s"], time["time_left_s"]) == (None, None, None)


def test_a_failure_the_logs_name_reaches_the_page_with_its_cause(tmp_path: Path):
    # session.insight.causes' rules, as `watch` and `doctor` apply them: the page gets the same stall.
    system, run = configs(tmp_path)
    state = LiveState()
    state.trainer_line("tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor "
                       "with shape[64,3,120,160]", T0)
    containers = [container("trainer", "running")]
    state.set_containers(containers)
    document = state_json(system=system, run=run, snapshot=state.snapshot(T0 + 30), containers=containers,
                          run_state=None, now=NOW)
    json.dumps(document, allow_nan=False)
    kinds = {stall["kind"]: stall for stall in document["live"]["stalls"]}
    assert "gpu-memory" in kinds and kinds["gpu-memory"]["subject"] == "trainer" and kinds["gpu-memory"]["cause"]


def test_the_cost_card_is_this_runs_and_the_months_training_at_this_machines_price(tmp_path: Path):
    system, run = configs(tmp_path)
    price = hourly_price("aws", "g4dn.2xlarge", spot=True)  # $0.3158 an hour
    ours = RunState(status=Status.RUNNING, run_id=3, prefix="fast-1", run_env="run.env", system_env="system.env",
                    started=NOW - timedelta(hours=1), trained_s=3600.0)  # resumed once: 2 h trained in all
    earlier = RunState(status=Status.INTERRUPTED, run_id=3, prefix="fast-0", run_env="run.env",
                       system_env="system.env", started=NOW - timedelta(hours=3), stopped=NOW - timedelta(hours=2))
    last_month = RunState(status=Status.STOPPED, run_id=2, prefix="old-1", run_env="run.env", system_env="system.env",
                          started=datetime(2026, 11, 30, 23, tzinfo=timezone.utc),
                          stopped=datetime(2026, 12, 1, 1, tzinfo=timezone.utc))  # one hour in each month
    facts = CostFacts(price=price, machine="g4dn.2xlarge", budget_usd=50.0, history=(last_month, earlier),
                      idle_stop_left=timedelta(minutes=12))
    cost = state_json(system=system, run=run, snapshot=None, containers=[container("trainer", "running")],
                      run_state=ours, now=NOW, cost=facts)["cost"]
    assert NOW.strftime("%Y-%m") == "2027-01"  # NOW is in January: November's and December's hours are not counted
    assert cost == {
        "cloud": "local", "machine": "g4dn.2xlarge", "spot": True, "hourly_usd": 0.3158, "basis": price.basis,
        "price_note": None,
        "run_training_s": 7200.0, "run_usd": 0.63,  # 2 h x 0.3158
        "month": "2027-01", "month_training_s": 7200.0, "month_usd": 0.63,  # this part and the earlier one: 1 h each
        "budget_usd": 50.0, "budget_used_pct": 1.3, "budget_error": None, "counted": COUNTED,
        "idle_stop_in_s": None,  # training: no idle countdown
    }
    idle = state_json(system=system, run=run, snapshot=None, containers=[], run_state=ours, now=NOW,
                      cost=facts)["cost"]
    assert idle["idle_stop_in_s"] == 720.0


def test_the_month_begins_on_the_first_at_midnight_utc():
    assert month_start(datetime(2026, 12, 6, 12, 30, 5, 7, tzinfo=timezone.utc)) == datetime(2026, 12, 1,
                                                                                               tzinfo=timezone.utc)


def test_without_a_price_there_is_no_spend_only_why(tmp_path: Path):
    system, run = configs(tmp_path)
    ours = RunState(status=Status.RUNNING, run_id=3, prefix="fast-1", run_env="run.env", system_env="system.env",
                    started=NOW - timedelta(minutes=30))
    cost = state_json(system=system, run=run, snapshot=None, containers=(), run_state=ours, now=NOW,
                      cost=CostFacts(budget_usd=50.0))["cost"]
    assert (cost["hourly_usd"], cost["run_usd"], cost["month_usd"], cost["budget_used_pct"]) == (None,) * 4
    assert (cost["run_training_s"], cost["month_training_s"], cost["budget_usd"]) == (1800.0, 1800.0, 50.0)
    assert cost["price_note"] == "no price on DR_CLOUD=local: a machine of your own"
    failed = CostFacts(price_error="cannot reach http://169.254.169.254/latest/api/token: timed out")
    cost = state_json(system=system, run=run, snapshot=None, containers=(), run_state=None, now=NOW,
                      cost=failed)["cost"]
    assert cost["price_note"] == "no price: cannot reach http://169.254.169.254/latest/api/token: timed out"
    assert (cost["run_training_s"], cost["run_usd"], cost["month_training_s"]) == (None, None, 0.0)
