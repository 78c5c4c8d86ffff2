"""One function per command: arguments in, output and an exit code out. The work lives in the other modules.

User mistakes are raised as the modules' own errors and turned into one line and exit 2 by `session.cli.main`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

from session.core import console
from session.core.config import LoadedConfig, default_run_env_text, load_config
from session.core.paths import DEFAULTS_DIR, custom_files_dir, default_run_env, default_system_env


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    run_env = Path(args.run_env).expanduser() if args.run_env else default_run_env()
    system_env = Path(args.system_env).expanduser() if args.system_env else default_system_env()
    return run_env, system_env


def _load(args: argparse.Namespace, quiet: bool = False) -> tuple[LoadedConfig, Path]:
    run_env, system_env = _paths(args)
    loaded = load_config(run_env, system_env)
    if not quiet:
        for warning in loaded.warnings:
            console.warn(f"warning: {warning}")
    return loaded, run_env


def _storage(system, engine=None):
    """The working bucket; on azure/local clouds MinIO is started first if it isn't running."""
    from session.host.factory import open_storage  # start-up: botocore loads only for commands that use storage

    return open_storage(system, engine)


def _host(args: argparse.Namespace):
    from session.host.factory import open_host  # start-up: botocore and the Docker SDK only when a command needs them

    loaded, run_env = _load(args)
    return open_host(run_env, _paths(args)[1], loaded=loaded), run_env


# --- commands ------------------------------------------------------------------------------------------------

def init(args: argparse.Namespace) -> int:
    """A run.env with DRfC's defaults and the default custom files, where they are missing; never overwrites."""
    run_env, _ = _paths(args)
    custom = custom_files_dir(run_env)
    custom.mkdir(parents=True, exist_ok=True)
    if run_env.exists():
        print(f"kept {run_env}")
    else:
        run_env.write_text(default_run_env_text())
        print(f"wrote {run_env}")
    for default in sorted(p for p in DEFAULTS_DIR.iterdir() if p.is_file() and not p.name.startswith(".")):
        target = custom / default.name
        if target.exists():
            print(f"kept {target}")
        else:
            shutil.copyfile(default, target)
            print(f"wrote {target}")
    return 0


def swarm_init(args: argparse.Namespace) -> int:
    from session.core.config import load_system_config
    from session.engine.containers import Engine
    from session.host.join_token import publisher_for
    from session.host.swarm_init import swarm_init as init_swarm

    publish = publisher_for(load_system_config(_paths(args)[1]), say=console.say)
    init_swarm(Engine(), args.advertise_addr, publish_join_token=publish, say=console.say)
    return 0


def swarm_rotate(args: argparse.Namespace) -> int:
    """Exit 1 when the nodes did not all join in time: the token stays as it was (the unit shows failed)."""
    from session.core.config import load_system_config
    from session.engine.containers import Engine
    from session.host.join_token import publisher_for
    from session.host.swarm_init import rotate_after_joined

    system = load_system_config(_paths(args)[1])
    expected = args.nodes if args.nodes is not None else system.sim_nodes
    if expected == 0:
        console.say("no simulation nodes to wait for (DR_SIM_NODES is 0): nothing to rotate")
        return 0
    rotation = rotate_after_joined(Engine(), expected, publish_join_token=publisher_for(system, say=console.say),
                                   timeout_s=args.timeout_minutes * 60, say=console.say)
    return 0 if rotation.rotated else 1


def custom_files(args: argparse.Namespace) -> int:
    loaded, run_env = _load(args)
    local = custom_files_dir(run_env)
    prefix = loaded.run.local_s3_custom_files_prefix
    storage = _storage(loaded.system)
    if args.direction == "upload":
        result = storage.sync_up(local, prefix, dry_run=args.dry_run)
    else:
        preview = storage.sync_down(prefix, local, dry_run=True)
        if preview.changed and not args.overwrite and not args.dry_run:
            from session.run.training import TrainingError

            raise TrainingError(f"custom-files download would replace your local {', '.join(preview.changed)} in "
                                f"{local}; pass --overwrite to replace them (or upload them first)")
        result = preview if args.dry_run else storage.sync_down(prefix, local)
    verb = "would copy" if args.dry_run else "copied"
    for name in result.added:
        print(f"{verb} {name} (new)")
    for name in result.changed:
        print(f"{verb} {name} (changed)")
    if not result.has_changes:
        print(f"{result.target}: up to date ({len(result.unchanged)} files)")
    return 0


# Without a system.env (validating on a laptop before anything is deployed) these stand in; storage is skipped.
_LAPTOP_SYSTEM_ENV = "DR_CLOUD=local\nDR_SIMAPP_VERSION=6.0.4-gpu\n"


def validate(args: argparse.Namespace) -> int:
    import tempfile

    from session.checks.validate import NotChecked, tracks_dir
    from session.checks.validate import validate as run_checks

    run_env, system_env = _paths(args)
    notes = []
    if system_env.is_file():
        loaded = load_config(run_env, system_env)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            stand_in = Path(scratch) / "system.env"
            stand_in.write_text(_LAPTOP_SYSTEM_ENV)
            loaded = load_config(run_env, stand_in)
        notes.append(f"note: {system_env} not found: storage checks skipped")
    storage = None
    if system_env.is_file() and not args.offline:
        storage = _storage(loaded.system)
    elif system_env.is_file():
        notes.append("note: --offline: storage checks skipped")
    problems = run_checks(loaded.system, loaded.run, custom_files_dir(run_env), workers=args.workers,
                          tracks=tracks_dir(args.tracks), calls=args.calls, storage=storage)
    failed = any(p.is_error for p in problems)
    # Exit 1: no error found, but a check could not run (e.g. the reward dry run without track files).
    unchecked = [p for p in problems if isinstance(p, NotChecked)]
    code = 2 if failed else 1 if unchecked else 0
    if args.json:
        console.emit_json({"ok": not failed, "complete": not unchecked, "problems": [
            {"file": p.file, "where": p.where, "message": p.message, "severity": p.severity} for p in problems],
            "notes": notes, "warnings": [str(w) for w in loaded.warnings],
            "sizing": problems.sizing.as_dict() if problems.sizing is not None else None})
        return code
    for warning in loaded.warnings:
        console.warn(f"warning: {warning}")
    for line in [*notes, *(str(p) for p in problems)]:
        print(line)
    errors = sum(p.is_error for p in problems)
    summary = f"{errors} error(s), {len(problems) - errors} warning(s)" if problems else "all checks passed"
    print(summary + ("; NOT everything was checked (see above)" if unchecked else ""))
    return code


def train(args: argparse.Namespace) -> int:
    from session.lifecycle.limits import max_minutes_for
    from session.run.state import RunStateStore
    from session.run.training import restore_pretrained, start_recorded

    host, run_env = _host(args)
    restore_pretrained(host)  # Azure: a pretrained model only in Blob comes back into MinIO before validation
    max_minutes = max_minutes_for(host.run, args.max_minutes)
    store = RunStateStore()
    if max_minutes is not None:
        store.check_writable()  # the limit lives in the run state: refuse before spending GPU time
    if not args.skip_validation:
        from session.checks.validate import validate_for_training

        problems = validate_for_training(host, workers=args.workers)
        if any(p.severity == "error" for p in problems):
            for problem in problems:
                console.warn(str(problem))
            console.warn("not starting: fix the problems above (or `deepracer validate` to see them again)")
            return 2
        for problem in problems:
            console.warn(str(problem))
    # Recorded as starting before the first container: a notice or a shutdown during the start-up stops it too.
    started, state = start_recorded(host, store, run_env, _paths(args)[1], max_minutes=max_minutes,
                                    workers=args.workers, overwrite=args.overwrite)
    print(f"training {host.run.local_s3_model_prefix}: {len(started)} containers running "
          f"(`deepracer status`, `deepracer logs trainer --follow`, `deepracer stop`)")
    if state is not None and max_minutes is not None:
        from session.lifecycle.limits import arm

        print(arm(store, state))
    from session.lifecycle.notify import notify

    notify(host.system, "training started", host.run.local_s3_model_prefix,
           f"{len(started)} containers on {host.system.simapp_source}:{host.system.simapp_version}", say=console.warn)
    if args.follow:
        return _follow(host.engine, [c for c in started if c.role == "trainer"][0])
    return 0


def stop(args: argparse.Namespace) -> int:
    from session.lifecycle.stopping import stop_by_user

    host, _ = _host(args)
    stop_by_user(host, timeout=args.timeout)  # Azure: the keeper copies the run's prefix to Blob
    return 0


def resume(args: argparse.Namespace) -> int:
    from session.lifecycle.resume import resume as resume_run
    from session.run.state import RunStateError

    if args.run_env or args.system_env:  # refused, not ignored: the files are the ones the run recorded
        raise RunStateError("resume continues the interrupted run with the run.env and system.env it was started "
                          "with; --run-env and --system-env do not apply (`deepracer train` starts another run)")
    # Azure: a deallocated VM comes back with an empty MinIO; the host's keeper brings the prefix back from Blob.
    result = resume_run(force=args.force, say=console.say)
    return 1 if result.failed else 0


def idle_check(args: argparse.Namespace) -> int:
    from session.core.config import load_system_config
    from session.lifecycle.idle import idle_check as check

    _, system_env = _paths(args)
    check(load_system_config(system_env), dry_run=args.dry_run, say=console.say)
    return 0


def swarm_watch(args: argparse.Namespace) -> int:
    """One tick of deepracer-swarm-watch.timer: a run whose swarm node is lost past the grace is stopped."""
    from session.lifecycle.swarm_watch import check

    check(say=console.say)
    return 0


def sync_models(args: argparse.Namespace) -> int:
    from session.storage.keeper import mirror_for, require_mirror, sync_running
    from session.storage.mirror_sync import sync_all, sync_prefix_to_mirror

    if args.running:
        from session.core.config import load_system_config
        from session.engine.containers import Engine

        system = load_system_config(_paths(args)[1])
        engine = Engine()
        sync_running(system, engine, _storage(system, engine), say=console.say)
        return 0
    loaded, _ = _load(args)
    require_mirror(loaded.system, "sync-models")
    storage, mirror = _storage(loaded.system), mirror_for(loaded.system)
    if args.all:
        sync_all(storage, mirror, delete=args.delete, say=console.say)
    else:
        print(sync_prefix_to_mirror(storage, mirror, args.prefix or loaded.run.local_s3_model_prefix,
                                    delete=args.delete).summary())
    return 0


def spot_watch(args: argparse.Namespace) -> int:
    from session.core.config import load_system_config
    from session.lifecycle.notify import notify
    from session.lifecycle.spot import watch as watch_notices

    _, system_env = _paths(args)

    def after_stop(host, stopped):  # the stop is recorded and the models kept (Azure: Blob) by now
        notify(host.system, "training interrupted by spot", host.run.local_s3_model_prefix,
               "the host is being stopped by the cloud; training resumes from the last checkpoint when it is back",
               say=console.say)

    return watch_notices(load_system_config(system_env), say=console.say, after_stop=after_stop)


def shutdown_stop(args: argparse.Namespace) -> int:
    """deepracer-shutdown.service's ExecStop: at a shutdown without a notice, what a notice does."""
    from session.core.config import load_system_config
    from session.core.errors import DeepracerError
    from session.lifecycle.notify import notify
    from session.lifecycle.shutdown import on_shutdown
    from session.lifecycle.spot import host_bystanders

    _, system_env = _paths(args)
    try:
        bystanders = host_bystanders(load_system_config(system_env))
    except DeepracerError as error:  # the run's own system.env is in the run state: the stop goes on
        console.warn(f"warning: {error}")
        bystanders = None

    def after_stop(host, stopped):
        notify(host.system, "training interrupted by a shutdown", host.run.local_s3_model_prefix,
               "the host is shutting down without a spot notice; training resumes from the last checkpoint when it "
               "is back", say=console.say)

    on_shutdown(say=console.say, after_stop=after_stop, bystanders=bystanders)
    return 0


def logs(args: argparse.Namespace) -> int:
    from session.engine.containers import Engine
    from session.run.training import run_containers

    loaded, _ = _load(args, quiet=True)
    engine = Engine()
    containers = run_containers(engine, loaded.system, loaded.run)
    if args.role == "trainer":
        # The SageMaker sibling holds the training itself; the rl_coach container only starts it.
        wanted = [c for c in containers if c.role == "sagemaker"] or [c for c in containers if c.role == "trainer"]
    elif args.role == "evaluation":
        wanted = engine.list(run=str(loaded.run.run_id), role="evaluation")
    else:
        wanted = [c for c in containers if c.role == "worker" and c.worker == (args.worker or 1)]
    if not wanted:
        which = f"worker {args.worker or 1}" if args.role == "worker" else args.role
        from session.run.training import TrainingError

        raise TrainingError(f"run {loaded.run.run_id} has no {which} container; `deepracer status` shows what runs")
    container = sorted(wanted, key=lambda c: c.started_at or 0)[-1]
    if args.follow:
        return _follow(engine, container, tail=args.tail)
    sys.stdout.write(engine.logs(container, tail=args.tail))
    return 0


def _follow(engine, container, tail: Optional[int] = None) -> int:
    if tail:  # the last lines, then only what comes after them (not the whole log again)
        sys.stdout.write(engine.logs(container, tail=tail))
    try:
        for line in engine.follow(container, new_only=bool(tail)):
            print(line, flush=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends following, not the training
    return 0


def status(args: argparse.Namespace) -> int:
    if args.follow:
        if args.json:
            console.warn("deepracer: status --follow shows a live view; --json is for a single status")
            return 2
        return watch(args)
    # Kept light: when nothing runs this answers from Docker's socket and a local cache, without boto3.
    from session.insight.status import as_json, render, run_status

    run_env, system_env = _paths(args)
    loaded = load_config(run_env, system_env)
    result = run_status(loaded.system, loaded.run, system_env=system_env,
                        progress="always" if args.progress else "auto")
    if args.json:
        console.emit_json(as_json(result))
    else:
        sys.stdout.write(render(result))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from session.run.evaluation import render_table, save_result, start_evaluation, stop_evaluation, wait_for_result

    host, _ = _host(args)
    say = console.say  # under --json on stderr: stdout holds the JSON alone
    evaluation = start_evaluation(host, checkpoint=args.checkpoint, trials=args.trials, mp4=args.mp4,
                                  clone=args.clone, say=say)
    if args.detach:
        say(f"evaluating {evaluation.model_prefix}; `deepracer stop-evaluation` ends it and shows the result")
        return 0
    try:
        result = wait_for_result(host, evaluation, say=say)
    except KeyboardInterrupt:
        console.warn("the evaluation keeps running; `deepracer stop-evaluation` stops it and shows the result so far")
        return 130
    stop_evaluation(host, say=say)  # a worker may idle after its last trial; this ends it and saves its log
    key = save_result(host.storage, evaluation.source_prefix, result)
    print(json.dumps(result.to_dict(), indent=2) if args.json else render_table(result))
    say(f"saved {host.storage.url(key)}")
    return 0 if result.complete else 1


def stop_evaluation(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from session.run import evaluation as ev

    host, _ = _host(args)
    say = console.say  # under --json on stderr: stdout holds the JSON alone
    found = ev.find_evaluation(host)
    was_running = found is not None and found.container is not None and found.container.running
    ev.stop_evaluation(host, say=say, timeout=args.timeout)
    result = ev.result_so_far(host.storage, found) if found is not None and was_running else None
    if result is None:
        return 0
    if not result.complete:
        result = replace(result, note=result.note or "stopped by `deepracer stop-evaluation`")
    key = ev.save_result(host.storage, found.source_prefix, result)  # type: ignore[union-attr]  # was_running: found
    print(json.dumps(result.to_dict(), indent=2) if args.json else ev.render_table(result))
    say(f"saved {host.storage.url(key)}")
    return 0


def watch(args: argparse.Namespace) -> int:
    """The live view until the run ends or Ctrl-C."""
    from session.insight.live import StallRules
    from session.insight.live_view import watch_run

    loaded, _ = _load(args)
    rules = StallRules(checkpoint_minutes=args.stall_minutes, worker_minutes=args.worker_minutes,
                       evaluation_loop=args.eval_loop)
    return watch_run(loaded.system, loaded.run, rules=rules, refresh_s=args.refresh,
                     progress_every_s=args.progress_every)


def dashboard(args: argparse.Namespace) -> int:
    """The dashboard until Ctrl-C (or its unit stops)."""
    from session.dashboard.server import build_app, serve
    from session.insight.live import StallRules

    run_env, system_env = _paths(args)
    _load(args)  # its warnings, once, here; the app reads the files itself
    rules = StallRules(checkpoint_minutes=args.stall_minutes, worker_minutes=args.worker_minutes,
                       evaluation_loop=args.eval_loop)
    # The token's URL is a result, printed even with --quiet: it is shown once, when the token is made.
    app = build_app(run_env, system_env, port=args.port, rules=rules, refresh_s=args.refresh,
                    progress_every_s=args.progress_every, say=print)
    return serve(app, args.port)


def models(args: argparse.Namespace) -> int:
    from session.cli.model_commands import models as run_models

    loaded, _ = _load(args, quiet=getattr(args, "json", False))
    return run_models(args, loaded, _storage(loaded.system))


def report(args: argparse.Namespace) -> int:
    from session.insight.report import run as run_report

    def storage():  # only for a model prefix in the bucket: local folders need no system.env (nor run.env)
        from session.core.config import load_system_config

        return _storage(load_system_config(_paths(args)[1]))

    return run_report(args.sources, storage, track=args.track, tracks=args.tracks, out=args.out, laps=args.laps,
                      json_output=args.json, reward=args.reward)


def increment(args: argparse.Namespace) -> int:
    from session.run.increment import increment as do_increment

    loaded, run_env = _load(args)
    storage = None if args.offline else _storage(loaded.system)
    result = do_increment(run_env, loaded.run, storage, checkpoint=args.checkpoint, prefix=args.prefix)
    print(result.summary(run_env))
    return 0


def host(args: argparse.Namespace) -> int:
    from session.host.first_boot import host_state, print_host_state

    return print_host_state(as_json=args.json, state=host_state(_paths(args)[1]))


def doctor(args: argparse.Namespace) -> int:
    """Exit 0 when this host can train (warnings allowed), 1 when a check failed."""
    from session.checks.doctor import render, run_checks
    from session.engine.containers import Engine
    from session.host.factory import docker_socket_path

    _, system_env = _paths(args)
    engine = Engine()
    report = run_checks(system_env, engine, docker_socket_path())
    diagnosis = _run_diagnosis(args, engine)
    if args.json:
        console.emit_json({**report.as_dict(), **({"run": diagnosis.as_dict()} if diagnosis else {})})
    else:
        for line in render(report):
            print(line)
        if diagnosis is not None:
            from session.insight.diagnosis import render as render_diagnosis

            for line in render_diagnosis(diagnosis):
                print(line)
    return 0 if report.ok and (diagnosis is None or diagnosis.ok) else 1


def _run_diagnosis(args: argparse.Namespace, engine: Any) -> Any:
    """The run's diagnosis from its containers' logs (session.insight.diagnosis); None without a run.env here."""
    import time

    from session.core.errors import DeepracerError
    from session.insight.diagnosis import TAIL_LINES, diagnose
    from session.run.training import run_containers

    try:
        loaded, _ = _load(args, quiet=True)
        containers = run_containers(engine, loaded.system, loaded.run)
    except (DeepracerError, OSError):
        return None  # a fresh host, or no run.env: the host's checks are the whole answer
    return diagnose(containers, lambda c: engine.logs(c, tail=TAIL_LINES), time.time(), run=str(loaded.run.run_id))


def keep_awake(args: argparse.Namespace) -> int:
    """`deepracer keep-awake [MINUTES]`: the idle auto-stop leaves the host up that long (0 ends it)."""
    from session.lifecycle.idle import KEEP_AWAKE_DEFAULT_MIN
    from session.lifecycle.idle import keep_awake as keep

    keep(KEEP_AWAKE_DEFAULT_MIN if args.minutes is None else args.minutes, say=console.say)
    return 0
