"""Start and stop a training run: storage first, then containers, then watch them until they really run."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from session.checks.pretrained import PretrainedError, check_pretrained
from session.core import console
from session.core.config import RunConfig, SystemConfig
from session.core.console import Say
from session.core.errors import DeepracerError
from session.engine.containers import LABEL_PREFIX, LABEL_RUN, ContainerInfo, Engine, EngineError, WatchEvent
from session.engine.specs import (
    NETWORK,
    SAGEMAKER_TMP,
    StorageAccess,
    comms_dir,
    image_of,
    trainer_spec,
    worker_service_name,
    worker_service_spec,
    worker_specs,
)
from session.engine.swarm import ROBOMAKER_CONSTRAINT, ServiceSpec, Swarm, Task
from session.host.factory import Host
from session.run.state import (
    Event,
    RunState,
    RunStateError,
    RunStateStore,
    Status,
    end_start,
    record_running,
    record_starting,
)
from session.run.training_params import Params, dump, multi_config, params_files
from session.storage.mirror_sync import SyncReport

# Lines that prove a container is past start-up (FORMATS.md §5.5, §5.1): the trainer has loaded the model
# and its hyperparameters (SageMaker-local's output reaches the rl_coach container's log), a worker simulates.
READY_PATTERNS = {
    "trainer": [r"Using the following hyper-parameters", r"Training> ", r"Sensor list \["],
    "worker": [r"SIM_TRACE_LOG:"],
}
READY_TIMEOUT_S = 15 * 60  # a cold simulator start (Gazebo, track meshes) can take several minutes


class TrainingError(DeepracerError):
    """A reason not to start (or a failed start); `str()` is one line for the user."""


TRAINING_ROLES = ("trainer", "worker")


def run_containers(engine: Engine, system: SystemConfig, run: RunConfig) -> list[ContainerInfo]:
    """This run's training containers (any state), plus the trainer's SageMaker sibling, which carries no
    labels. An evaluation of the same run is not training: `train` and `stop` leave it alone. On a swarm's
    manager the workers are the replicas of the run's worker service on every node, each with its node (`lost`
    when that node is down)."""
    ours = [c for c in engine.list(run=str(run.run_id)) if c.role in TRAINING_ROLES]
    siblings = engine.sagemaker_siblings(image_of(system), run.local_s3_model_prefix, run=str(run.run_id))
    found = ours + [s for s in siblings if s.id not in {o.id for o in ours}]
    swarm = Swarm(engine)
    if not swarm.is_manager():
        return found
    replicas = swarm_workers(swarm, run)
    by_id = {c.id: c for c in replicas}
    # A replica on this node is listed by the engine too: the engine's view (times, exit code) with its node (this
    # node, the manager's, which cannot be down while it answers).
    merged = [replace(c, node=by_id[c.id].node) if c.id in by_id else c for c in found]
    return merged + [c for c in replicas if c.id not in {m.id for m in merged}]


def swarm_workers(swarm: Swarm, run: RunConfig) -> list[ContainerInfo]:
    """The replicas of the run's worker service, the newest task of each slot, as ContainerInfos."""
    return [info for _, info in _replicas(swarm, run)]


def _replicas(swarm: Swarm, run: RunConfig) -> list[tuple[Task, ContainerInfo]]:
    """Each replica's task and its ContainerInfo."""
    name = worker_service_name(run.run_id)
    service = swarm.service(name)
    if service is None:
        return []
    prefix = (service.get("Spec", {}).get("Labels") or {}).get(LABEL_PREFIX)
    nodes = {node.id: node for node in swarm.nodes()}
    found = []
    for task in swarm.current_tasks(name):
        found.append((task, swarm.task_container(task, nodes, run=str(run.run_id), prefix=prefix)))
    return found


def _refuse_to_clobber(host: Host, overwrite: bool, say: Say) -> None:
    prefix = host.run.local_s3_model_prefix
    if not host.storage.prefix_has_objects(f"{prefix}/"):
        return
    where = host.storage.url(f"{prefix}/")
    if not overwrite:
        raise TrainingError(f"{where} already holds a model; set a new DR_LOCAL_S3_MODEL_PREFIX "
                            "(`deepracer increment` does it) or pass --overwrite to delete it first")
    removed = host.storage.delete_prefix(f"{prefix}/")
    say(f"--overwrite: deleted {removed} objects under {where}")


def _check_pretrained(host: Host) -> None:
    try:
        check_pretrained(host.run, host.storage)
    except PretrainedError as error:
        raise TrainingError(str(error)) from None


def upload_inputs(host: Host, workers: int, say: Say) -> dict[str, Params]:
    """Custom files, the reward function beside the model (console layout) and the params files.

    Returns the params files by name, one per worker with multi-config, else one shared file."""
    system, run, storage = host.system, host.run, host.storage
    synced = storage.sync_up(host.custom_files, run.local_s3_custom_files_prefix)
    for name in synced.transferred:
        say(f"uploaded custom_files/{name}")
    storage.put_bytes(f"{run.local_s3_model_prefix}/reward_function.py",
                      (host.custom_files / "reward_function.py").read_bytes(), "text/x-python")
    endpoint = StorageAccess.from_system(system).endpoint_url
    files = params_files(system, run, workers, s3_endpoint_url=endpoint)
    for name, params in files.items():
        storage.put_text(f"{run.local_s3_model_prefix}/{name}", dump(params), "application/x-yaml")
        say(f"wrote {storage.url(f'{run.local_s3_model_prefix}/{name}')}")
    return files


def start_training(host: Host, *, workers: Optional[int] = None, overwrite: bool = False,
                   timeout_s: float = READY_TIMEOUT_S, say: Say = console.say,
                   on_event: Optional[Callable[[WatchEvent], None]] = None,
                   before_start: Optional[Callable[[], object]] = None) -> list[ContainerInfo]:
    """Everything `train` does after validation. Raises TrainingError; on a failed start nothing keeps running.
    `before_start` runs after the checks and the uploads, just before the first container starts (the run state
    records the run there: a notice during the start-up must find it); if it raises, nothing starts."""
    system, run, engine = host.system, host.run, host.engine
    run.check_training()
    workers = workers or system.workers
    running = [c for c in run_containers(engine, system, run) if c.running]
    if running:
        raise TrainingError(f"run {run.run_id} is already running ({', '.join(c.name for c in running)}); "
                            "`deepracer stop` first, or use another DR_RUN_ID")
    image = image_of(system)
    if not engine.image_present(image):
        raise TrainingError(f"image {image} is not on this host; pull it with `docker pull {image}`")
    _refuse_to_clobber(host, overwrite, say)
    host.keeper.claim(run.local_s3_model_prefix, overwrite=overwrite, say=say)  # an earlier VM's model, kept
    restore_pretrained(host, say=say)
    _check_pretrained(host)
    files = upload_inputs(host, workers, say)
    names = list(files)
    if before_start is not None:
        before_start()

    swarm = Swarm(engine)
    swarmed = swarm.is_manager()
    if swarmed:
        swarm.ensure_overlay(NETWORK)
    else:
        engine.ensure_network(NETWORK)
    os.makedirs(SAGEMAKER_TMP, exist_ok=True)
    if workers > 1 and not swarmed:
        # Workers coordinate through files here; leftovers of an earlier run would confuse them.
        shutil.rmtree(comms_dir(run.run_id), ignore_errors=True)
        os.makedirs(comms_dir(run.run_id))
    storage_access = StorageAccess.from_system(system)
    multi = multi_config(files) if len(names) > 1 else None
    specs = [trainer_spec(system, run, storage_access, host.docker_socket)]
    if not swarmed:
        specs += worker_specs(system, run, storage_access, workers, names, multi)
    started: list[ContainerInfo] = []
    try:
        for spec in specs:
            started.append(engine.start(spec))
            say(f"started {spec.name}")
        if swarmed:
            started += _start_worker_service(swarm, worker_service_spec(system, run, storage_access, workers, names,
                                                                        multi), timeout_s, say)
        say(f"waiting until the trainer and {workers} worker(s) run (up to {timeout_s / 60:.0f} min) ...")
        # Every replica by its ready line, those on other nodes through the manager's log of the service (and their
        # end by their task's state), so a remote worker that dies at start-up fails `train` as a local one does.
        readiness = engine.watch_until_ready(started, READY_PATTERNS, timeout_s, on_event=on_event)
    except BaseException:
        _stop_run(engine, system, run, timeout=10)
        raise
    if not readiness.ready:
        for line in readiness.error_lines:
            say(f"  | {line}")
        _stop_run(engine, system, run, timeout=10)
        raise TrainingError(f"training did not start: {readiness.summary}; stopped the run's containers "
                            f"(`deepracer logs` shows their logs)")
    return started


def _start_worker_service(swarm: Swarm, spec: ServiceSpec, timeout_s: float, say: Say) -> list[ContainerInfo]:
    """The workers as a swarm service on the nodes labelled Robomaker, once each replica runs: the ones on this
    node as the engine lists them, the others as their tasks. A replica that fails or cannot be placed (no node
    with room or the image) is a failed start."""
    for node in swarm.label_workers():  # nodes that joined since the last train or swarm-init
        say(f"labelled node {node.hostname} ({node.id[:12]}) Robomaker=true")
    if not any(node.ready and node.robomaker for node in swarm.nodes()):
        raise TrainingError(f"no ready node of the swarm is labelled {ROBOMAKER_CONSTRAINT.split(' ')[0]}=true: "
                            f"`deepracer swarm-init` labels this host, the infra labels the nodes that join")
    swarm.run_service(spec)
    say(f"started service {spec.name}: {spec.replicas} worker(s) on the swarm's nodes labelled Robomaker")
    deadline = time.monotonic() + timeout_s
    while True:  # swarm offers no event for "every replica runs"; its task list is the truth
        tasks = swarm.current_tasks(spec.name)
        failed = [task for task in tasks if task.failed or task.state in ("complete", "shutdown")]
        if failed:
            task = failed[0]
            if _image_missing(task):
                where = next((f"{n.hostname} ({n.id[:12]})" for n in swarm.nodes() if n.id == task.node_id),
                             task.node_id)
                raise TrainingError(f"worker {task.slot} cannot start on node {where}: image {spec.container.image} "
                                    f"is not there ({task.error}); run `docker pull {spec.container.image}` on "
                                    "that node (or wait for its bootstrap to finish), then train again")
            raise TrainingError(f"worker {task.slot} of service {spec.name} did not start: {task.state}"
                                f"{': ' + (task.error or task.message) if task.error or task.message else ''}")
        if len(tasks) == spec.replicas and all(task.state == "running" for task in tasks):
            break
        if time.monotonic() > deadline:
            waiting = ", ".join(f"worker {t.slot}: {t.state} ({t.message or t.error})" for t in tasks) or "no task"
            raise TrainingError(f"the workers of service {spec.name} did not all run in time: {waiting}")
        time.sleep(0.5)
    nodes = {node.id: node for node in swarm.nodes()}
    here = swarm.node_id()
    replicas = []
    for task in tasks:
        shown = swarm.task_container(task, nodes, run=spec.container.labels.get(LABEL_RUN),
                                     prefix=spec.container.labels.get(LABEL_PREFIX))
        local = swarm.engine.get(task.container_id) if task.node_id == here and task.container_id else None
        replicas.append(replace(local, node=shown.node) if local is not None else shown)
        say(f"worker {task.slot} runs on node {shown.node}")
    return replicas


# How a node's engine words a task it rejected for want of its image (no registry holds ours, or the pull failed).
_NO_IMAGE = ("No such image", "pull access denied", "manifest unknown", "repository does not exist")


def _image_missing(task: Task) -> bool:
    return task.state == "rejected" and any(words in task.error for words in _NO_IMAGE)


def start_recorded(host: Host, store: RunStateStore, run_env: Path, system_env: Path, *,
                   max_minutes: Optional[int] = None, trained_s: float = 0.0, resumed_from: Optional[str] = None,
                   workers: Optional[int] = None, overwrite: bool = False, timeout_s: float = READY_TIMEOUT_S,
                   say: Say = console.say, warn: Say = console.warn,
                   when: Optional[Callable[[Optional[RunState]], bool]] = None,
                   failed: Event = Event.END) -> tuple[list[ContainerInfo], Optional[RunState]]:
    """`start_training` with the run recorded in the run state as it goes: starting before the first container
    (so a spot notice or a shutdown during the start-up stops it and leaves it resumable), running once it
    runs, ended (`failed`: a resume's part, resume-failed) when it did not start. `when` (a resume) must hold for
    the record replaced, else nothing starts. Returns the containers and the state recorded (None where the
    run state cannot be written: a host without it still trains, unresumable, with a warning)."""
    recorded: list[RunState] = []

    def record() -> None:
        try:
            state = record_starting(store, host, run_env, system_env, max_minutes=max_minutes, trained_s=trained_s,
                                    resumed_from=resumed_from, when=when or (lambda _: True))
        except RunStateError as error:
            if when is not None:
                raise
            warn(f"warning: {error}: this run is not resumed after a spot interruption")
            return
        if state is None:
            raise TrainingError(f"the run state in {store.path} changed meanwhile (a spot notice or a shutdown?): "
                                "not starting")
        recorded.append(state)

    try:
        started = start_training(host, workers=workers, overwrite=overwrite, timeout_s=timeout_s, say=say,
                                 before_start=record)
    except BaseException as failure:
        if recorded:
            token = recorded[0].token
            end_start(store, token, f"{host.run.local_s3_model_prefix} did not start: {failure}", event=failed)
            _raise_if_interrupted(store, token, failure)
        raise
    if not recorded:
        return started, None
    state = record_running(store, recorded[0].token)
    if state is None:  # a notice, a shutdown or `deepracer stop` came between readiness and now
        _raise_if_interrupted(store, recorded[0].token, None)
        raise TrainingError(f"{host.run.local_s3_model_prefix} was stopped during its start-up")
    return started, state


def _raise_if_interrupted(store: RunStateStore, token: str, failure: Optional[BaseException]) -> None:
    current = store.read_or_none()
    if current is not None and current.token == token and current.status is Status.INTERRUPTED:
        raise TrainingError(f"the start of {current.prefix} was interrupted ({current.reason}): it is resumed at "
                            "the next boot (`deepracer resume` continues it by hand)") from failure


def _stop_run(engine: Engine, system: SystemConfig, run: RunConfig, timeout: float,
              logs: Optional[dict[str, str]] = None) -> list[ContainerInfo]:
    """The trainer first, so it starts no new SageMaker container; then the sibling(s), listed only now; then
    the workers (a worker stopping under a running trainer looks to it like a crash)."""
    ours = [c for c in engine.list(run=str(run.run_id)) if c.running and c.role in TRAINING_ROLES and not c.service]
    stopped = engine.stop([c for c in ours if c.role == "trainer"], timeout=timeout)
    # The prefix the containers were started with: run.env may name a new one already (after `increment`).
    prefixes = {c.prefix for c in ours if c.prefix} | {run.local_s3_model_prefix}
    siblings = {c.id: c for prefix in sorted(prefixes)
                for c in engine.sagemaker_siblings(image_of(system), prefix, run=str(run.run_id)) if c.running}
    stopped += engine.stop(list(siblings.values()), timeout=timeout)
    stopped += engine.stop([c for c in ours if c.role != "trainer"], timeout=timeout)
    return stopped + _stop_worker_service(engine, run, timeout, logs)


def _stop_worker_service(engine: Engine, run: RunConfig, timeout: float,
                         logs: Optional[dict[str, str]] = None) -> list[ContainerInfo]:
    """A swarm's workers: each replica's log read through the manager (into `logs`, by container id), then the
    service scaled to none, which stops and removes every node's replica, then the service removed. Scaling
    down removes the containers, so the logs are read first: the last moment of a replica's log may miss them.
    A replica on a node that is down (lost) can be neither read nor stopped from here: it is reported as it is,
    and its node stops it when it comes back (swarm removes the task) or goes with its node."""
    swarm = Swarm(engine)
    name = worker_service_name(run.run_id)
    if not swarm.is_manager() or swarm.service(name) is None:
        return []
    replicas = [(task, c) for task, c in _replicas(swarm, run) if c.running or c.lost]
    if logs is not None:
        for _, replica in replicas:
            # The manager asks only the node of the task it reads (swarmkit manager/logbroker/subscription.go),
            # so a node that is down holds up the reading of its own replicas only: they are not asked.
            if not replica.lost:
                try:
                    logs[replica.id] = engine.logs(replica)
                except EngineError as error:  # the stop goes on; the saved log says why it is empty
                    logs[replica.id] = f"[deepracer: this log could not be read through the swarm manager: {error}]\n"
    swarm.scale(name, 0)
    deadline = time.monotonic() + timeout + 30
    while any(t.live for t in swarm.tasks(name) if _node_ready(swarm, t.node_id)):
        if time.monotonic() > deadline:
            break  # the service's removal below stops them all the same
        time.sleep(0.5)
    swarm.remove_service(name)
    # As each task is now: shut down, its container gone with it; a lost one stays lost (its node's end stops it).
    nodes = {node.id: node for node in swarm.nodes()}
    return [c if c.lost else swarm.task_container(replace(task, state="shutdown"), nodes, run=c.run, prefix=c.prefix)
            for task, c in replicas]


def _node_ready(swarm: Swarm, node_id: str) -> bool:
    return any(node.id == node_id and node.ready for node in swarm.nodes())


def stop_training(host: Host, *, say: Say = console.say, timeout: float = 30, keep: bool = True) -> list[ContainerInfo]:
    """Stops the run's containers, the trainer's sibling included; checkpoints in storage stay, the logs go
    to `<prefix>/logs/` so they outlive the containers, and with `keep` the keeper keeps the stopped prefixes
    (Azure: to Blob). The graceful stop of a notice passes keep=False: it records the checkpoint first."""
    logs: dict[str, str] = {}
    stopped = _stop_run(host.engine, host.system, host.run, timeout, logs)
    if not stopped:
        say(f"run {host.run.run_id}: nothing is running")
        return []
    for container in stopped:
        say(f"stopped {container.name}")
    upload_logs(host, stopped, say, logs)
    if keep:
        host.keeper.keep(stopped_prefixes(stopped, host.run), say=say)
    return stopped


def stopped_prefixes(stopped: list[ContainerInfo], run: RunConfig) -> list[str]:
    """The model prefix each container trained, which run.env may no longer name (after `increment`); the
    SageMaker sibling carries no prefix label and counts for run.env's."""
    return sorted({c.prefix or run.local_s3_model_prefix for c in stopped})


def restore_pretrained(host: Host, *, say: Say = console.say) -> Optional[SyncReport]:
    """The model the run starts from, back in the working bucket where the keeper kept it (a fresh Azure VM);
    asked once per host, so `train` may call it before validating and start_training again. None when there
    was nothing to restore."""
    if not host.run.local_s3_pretrained:
        return None
    return host.keeper.restore(host.run.local_s3_pretrained_prefix, say=say)


def upload_logs(host: Host, containers: list[ContainerInfo], say: Say,
                captured: Optional[dict[str, str]] = None) -> None:
    """Each container's log to `<prefix>/logs/`; `captured` holds the logs of those already gone (a swarm's
    replicas), by container id."""
    for container in containers:
        if container.lost:
            say(f"the log of worker {container.worker} is on node {container.node}, which is down: not saved")
            continue
        if container.service and container.id not in (captured or {}):
            say(f"the log of worker {container.worker} on node {container.node} could not be read through the "
                "swarm manager: not saved")
            continue
        # The prefix the container trained, which run.env may no longer name (after `increment`).
        prefix = container.prefix or host.run.local_s3_model_prefix
        role = container.role or "sagemaker"
        name = f"{role}-{container.worker}" if container.worker else role
        stamp = (container.started_at.strftime("%Y%m%d%H%M%S") if container.started_at else "unknown")
        key = f"{prefix}/logs/{stamp}-{name}.log"
        text = (captured or {}).get(container.id)
        host.storage.put_text(key, text if text is not None else host.engine.logs(container))
        say(f"saved the {name} log to {host.storage.url(key)}")
