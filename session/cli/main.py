"""Command line of the on-VM tool: parses arguments and calls one function per command; nothing else."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from session import __version__
from session.core import console
from session.core.console import Console
from session.core.defaults import (
    DASHBOARD_PORT,
    MAX_WORKERS,
    STALL_CHECKPOINT_MINUTES,
    STALL_EVALUATION_LOOP,
    STALL_WORKER_MINUTES,
)
from session.core.errors import EXIT_USER_ERROR, DeepracerError


class _Parser(argparse.ArgumentParser):
    """A wrong argument is one line on stderr and exit 2, like every other user error (no usage dump)."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: {message} (`{self.prog} --help` lists the options)\n")


def _whole_number(low: int, high: Optional[int] = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            expected = f"a whole number from {low} to {high}" if high is not None else \
                f"a whole number of at least {low}"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


def _workers(text: str) -> int:
    return _whole_number(1, MAX_WORKERS)(text)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stall-minutes", type=_positive, default=STALL_CHECKPOINT_MINUTES, metavar="N",
                        help="flag the trainer when it saves no checkpoint for N minutes (default %(default)g)")
    parser.add_argument("--worker-minutes", type=_positive, default=STALL_WORKER_MINUTES, metavar="M",
                        help="flag a worker without a simulation step for M minutes (default %(default)g)")
    parser.add_argument("--eval-loop", type=lambda t: int(_positive(t)), default=STALL_EVALUATION_LOOP, metavar="K",
                        help="flag worker 1 after K extra evaluations waiting for one checkpoint (default %(default)d)")
    parser.add_argument("--refresh", type=_positive, default=1.0, metavar="S",
                        help="seconds between updates (default 1)")
    parser.add_argument("--progress-every", type=_positive, default=30.0, metavar="S",
                        help="seconds between progress reads from storage (default 30)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deepracer", description="DeepRacer training on this host (also `python -m session`).")
    parser.add_argument("--version", action="version", version=f"deepracer-cloud session {__version__}")
    _global_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    host = commands.add_parser("host", help="is this host ready to train? (first-boot state and system.env)")
    host.add_argument("--json", action="store_true", help="print the result as JSON")

    doctor = commands.add_parser("doctor", help="can this host train? the GPU, storage and Compose from containers of "
                                                "the simulator image on sagemaker-local, and the disk")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")

    commands.add_parser("init", help="write a default run.env and custom files where they are missing")

    swarm_init = commands.add_parser("swarm-init", help="make this host a Docker Swarm manager for workers on more "
                                                        "nodes: labels, overlay network, join token (first boot)")
    swarm_init.add_argument("--advertise-addr", required=True, metavar="IP",
                            help="this host's private IP, where the nodes join (2377/tcp, 7946/tcp+udp, 4789/udp)")

    swarm_rotate = commands.add_parser(
        "swarm-rotate", help="once the simulation nodes joined: label them, rotate the worker join token and publish "
                             "the new one (first boot, deepracer-swarm-rotate.service)")
    swarm_rotate.add_argument("--nodes", type=_whole_number(0), metavar="N",
                              help="how many nodes to wait for (default: DR_SIM_NODES in system.env)")
    swarm_rotate.add_argument("--timeout-minutes", type=_positive, default=70.0, metavar="M",
                              help="stop waiting after M minutes without rotating (default 70: a node gives up "
                                   "waiting for the token after 60)")

    validate = commands.add_parser("validate", help="check run.env, custom files and reward function before training")
    validate.add_argument("--tracks", metavar="DIR",
                          help="track .npy files (default: $DR_TRACKS_DIR or the host's cache)")
    validate.add_argument("--workers", type=_workers, help="check for this many workers (default: DR_WORKERS)")
    validate.add_argument("--calls", type=_whole_number(1), default=500,
                          help="reward function calls in the dry run (default 500)")
    validate.add_argument("--offline", action="store_true", help="skip the checks that need storage")
    validate.add_argument("--json", action="store_true", help="print the problems as JSON")

    files = commands.add_parser("custom-files", help="sync custom_files/ with storage, printing what changed")
    files.add_argument("direction", choices=["upload", "download"])
    files.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    files.add_argument("--overwrite", action="store_true", help="download: replace local files that differ")

    train = commands.add_parser("train", help="validate, upload, start the trainer and workers, watch them start")
    train.add_argument("--overwrite", action="store_true",
                       help="delete what the model prefix already holds (default: refuse)")
    train.add_argument("--workers", type=_workers, help="simulation workers (default: DR_WORKERS)")
    train.add_argument("--follow", action="store_true", help="follow the trainer's log once running")
    train.add_argument("--skip-validation", action="store_true", help=argparse.SUPPRESS)
    train.add_argument("--max-minutes", type=int, metavar="N",
                       help="stop training cleanly after N minutes of training, spot resumes included "
                            "(default: DR_TRAIN_MAX_MINUTES; none)")

    stop = commands.add_parser("stop", help="stop this run's containers; checkpoints stay, logs go to <prefix>/logs/")
    stop.add_argument("--timeout", type=float, default=30, help="seconds before a container is killed (default 30)")

    status = commands.add_parser("status", help="host readiness, what runs, and the run's progress")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.add_argument("--progress", action="store_true", help="read progress from storage even when idle")
    status.add_argument("--follow", "-f", action="store_true", help="a live view of the running session (= watch)")
    _watch_options(status)

    watch = commands.add_parser("watch", help="live view: workers' episodes and steps/s, iterations, policy, best "
                                              "checkpoint, GPU and disk, stalls with their likely cause")
    _watch_options(watch)

    dashboard = commands.add_parser("dashboard", help="the run in a browser: video, metrics, stalls with causes, "
                                                      "time, stop; on 127.0.0.1 only, with the host's token")
    dashboard.add_argument("--port", type=_whole_number(1, 65535), default=DASHBOARD_PORT,
                           help="port on 127.0.0.1 (default %(default)d; reach it through a port forward or tunnel)")
    _watch_options(dashboard)

    evaluate = commands.add_parser("evaluate", help="race the model N trials, print lap times, save them as JSON")
    evaluate.add_argument("--checkpoint", choices=["last", "best"], help="default: DR_EVAL_CHECKPOINT")
    evaluate.add_argument("--trials", type=int, help="default: DR_EVAL_NUMBER_OF_TRIALS")
    evaluate.add_argument("--mp4", action="store_true", default=None,
                          help="save videos to <prefix>/mp4 (default: DR_EVAL_SAVE_MP4)")
    evaluate.add_argument("--clone", action="store_true",
                          help="evaluate a copy of model/ and ip/ under <prefix>-E (e.g. while training goes on)")
    evaluate.add_argument("--detach", action="store_true",
                          help="return once the car drives; `deepracer stop-evaluation` ends it and shows the result")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")

    stop_eval = commands.add_parser("stop-evaluation",
                                    help="stop the evaluation; show and save its result so far, log to <prefix>/logs/")
    stop_eval.add_argument("--timeout", type=float, default=30, help="seconds before the worker is killed (default 30)")
    stop_eval.add_argument("--json", action="store_true", help="print the result as JSON")

    logs = commands.add_parser("logs", help="a container's log: logs trainer | worker [N] | evaluation")
    logs.add_argument("role", choices=["trainer", "worker", "evaluation"])
    logs.add_argument("worker", nargs="?", type=int, help="worker number (default 1)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines (Ctrl-C to end)")
    logs.add_argument("--tail", type=int, help="only the last N lines")

    models = commands.add_parser("models", help="the bucket's models: list, show, export, car-package, download")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every model with its iterations, last/best checkpoints, size, date")
    listing.add_argument("--json", action="store_true", help="print the models as JSON")
    show = actions.add_parser("show", help="a model's metadata, hyperparameters, reward-function hash, checkpoints")
    show.add_argument("prefix", help="the model's prefix (or a console/DRoA model's root)")
    show.add_argument("--json", action="store_true", help="print the details as JSON")
    export = actions.add_parser("export", help="one checkpoint packaged as DRoA imports it: to s3://... or a folder")
    export.add_argument("prefix")
    export.add_argument("--to", required=True, metavar="s3://BUCKET/PREFIX|DIR", help="where the package goes")
    export.add_argument("--checkpoint", default="last", help="last, best or a number (default last)")
    export.add_argument("--as", dest="location", metavar="s3://BUCKET/PREFIX",
                        help="for a folder: the S3 location its training_params.yaml should name")
    export.add_argument("--overwrite", action="store_true", help="write into a target that already holds files")
    export.add_argument("--json", action="store_true", help="print the result as JSON")
    car = actions.add_parser("car-package",
                             help="the physical car's model tar.gz (model_metadata.json, agent/model.pb)")
    car.add_argument("prefix")
    car.add_argument("--checkpoint", default="last", help="last, best or a number (default last)")
    car.add_argument("--out", metavar="FILE", help="default: <prefix>-<checkpoint>.tar.gz in this folder")
    download = actions.add_parser("download", help="bring a model from s3://... into the bucket as a pretrained base")
    download.add_argument("source", metavar="s3://BUCKET/PREFIX")
    download.add_argument("prefix", help="its prefix in the working bucket")
    download.add_argument("--overwrite", action="store_true", help="write into a prefix that already holds files")
    restore = actions.add_parser("restore", help="Azure, or local with DR_MODEL_COPY_URL: bring a model prefix "
                                                 "back from where it is kept into MinIO")
    restore.add_argument("prefix")
    restore.add_argument("--overwrite", action="store_true", help="replace objects MinIO holds with other content")
    imp = actions.add_parser("import-droa", help="export a model and import it into a DeepRacer on AWS install")
    imp.add_argument("prefix")
    imp.add_argument("--url", help="the DRoA web app's address (default: DR_DROA_URL)")
    imp.add_argument("--username",
                     help="DRoA user (default: DR_DROA_USERNAME); password: $DR_DROA_PASSWORD or asked, never stored")
    imp.add_argument("--checkpoint", default="last", help="last, best or a number (default last)")
    imp.add_argument("--name", help="DRoA model name (default: the prefix, made DRoA-safe)")
    imp.add_argument("--description", default="")
    imp.add_argument("--wait", action="store_true", help="wait until DRoA has validated the model")
    imp.add_argument("--timeout", type=float, default=1800.0, help="seconds --wait waits (default 1800)")

    report = commands.add_parser("report", help="plots, an HTML page and the numbers of a run: reward and completion "
                                                "per iteration, path on the track, actions, lap times, workers, "
                                                "where episodes end, reward along the track, step timing")
    report.add_argument("sources", nargs="+", metavar="PREFIX|LOGDIR",
                        help="a model prefix in the bucket (or s3://BUCKET/PREFIX), a folder, a console/DRoA logs "
                             ".tar.gz, a simulation log or a simtrace CSV; sources of different runs are compared "
                             "side by side")
    report.add_argument("--out", metavar="DIR", help="folder for index.html, report.json and the PNGs "
                                                     "(default: ./report-<name>)")
    report.add_argument("--json", action="store_true", help="print the numbers as JSON instead of the summary")
    report.add_argument("--track", metavar="NAME|FILE.npy",
                        help="the track to draw (default: the run's training_params.yaml or simulation log)")
    report.add_argument("--tracks", metavar="DIR",
                        help="track .npy files (default: $DR_TRACKS_DIR or the host's cache)")
    report.add_argument("--laps", type=lambda t: int(_positive(t)), default=1, metavar="N",
                        help="draw the N fastest laps on the track (default 1)")
    report.add_argument("--reward", metavar="FILE.py",
                        help="re-score: replay the logged steps through this reward function (validate's sandbox) "
                             "and show its reward beside the run's")

    increment = commands.add_parser("increment", help="continue from the current model under the next prefix")
    increment.add_argument("--checkpoint", default="last",
                           help="last or best, the checkpoints the simulator starts from (default last); for a "
                                "numbered one, `models export --checkpoint N` it first")
    increment.add_argument("--prefix", help="the new model prefix (default: the next serial that is free)")
    increment.add_argument("--offline", action="store_true", help="don't check storage (no checkpoint check)")

    resume = commands.add_parser("resume", help="continue a run a spot interruption stopped, from its last "
                                                "checkpoint under the next prefix (deepracer-resume.service at boot)")
    resume.add_argument("--force", action="store_true",
                        help="also a run not marked interrupted (e.g. one `deepracer stop` ended, or one whose "
                             "resume failed)")

    idle = commands.add_parser("idle-check", help="power the host off after DR_IDLE_STOP_MINUTES without training "
                                                  "or evaluation (deepracer-idle.timer, as root, every 5 min)")
    idle.add_argument("--dry-run", action="store_true", help="say what it would decide; power nothing off")

    awake = commands.add_parser("keep-awake", help="keep the idle auto-stop from powering the host off for "
                                                   "MINUTES (default 60; 0 ends it)")
    awake.add_argument("minutes", nargs="?", type=int, metavar="MINUTES",
                       help="how long from now (default 60, at most 1440; 0 ends a keep-awake)")

    sync = commands.add_parser("sync-models",
                               help="Azure (or local with DR_MODEL_COPY_URL): copy model prefixes from MinIO to the "
                                    "blob container (or the copy's bucket)")
    which = sync.add_mutually_exclusive_group()
    which.add_argument("prefix", nargs="?", help="a model prefix (default: DR_LOCAL_S3_MODEL_PREFIX)")
    which.add_argument("--running", action="store_true", help="the prefixes of the runs on this host (the timer)")
    which.add_argument("--all", action="store_true", help="every top-level folder of the bucket")
    sync.add_argument("--delete", action="store_true", help="also delete copies whose objects MinIO no longer holds")

    commands.add_parser("spot-watch", help="stop training gracefully on a spot interruption notice and mark it "
                                           "resumable (deepracer-spot-watch.service)")
    commands.add_parser("swarm-watch", help="stop training when a swarm node with its workers has been down for 2 "
                                           "min (deepracer-swarm-watch.timer, as root, every 30 s)")
    commands.add_parser("shutdown-stop", help="at a shutdown without a spot notice, stop training as a notice does "
                                              "and mark it resumable (deepracer-shutdown.service, at shutdown)")
    _share_global_options(parser)
    return parser


def _global_options(parser: argparse.ArgumentParser, on_subcommand: bool = False) -> None:
    """--run-env, --system-env and --debug. On a subcommand they default to SUPPRESS: argparse copies every
    value a subcommand's parser sets over the main parser's, so a default there would undo `--debug status`."""
    unset = argparse.SUPPRESS if on_subcommand else None
    group = parser.add_argument_group("global options")
    group.add_argument("--run-env", metavar="FILE", default=unset,
                       help="the run's settings (default: $DR_RUN_ENV, else ~/deepracer/run.env)")
    group.add_argument("--system-env", metavar="FILE", default=unset,
                       help="the host's settings (default: $DR_SYSTEM_ENV, else /etc/deepracer/system.env)")
    group.add_argument("--debug", action="store_true", default=unset if on_subcommand else False,
                       help="show tracebacks")
    group.add_argument("--quiet", "-q", action="store_true", default=unset if on_subcommand else False,
                       help="print only results, warnings and errors, not the progress lines")


def _share_global_options(parser: argparse.ArgumentParser) -> None:
    """The global options on every subcommand (nested ones too), so they work after the command's name as well
    as before it."""
    for action in parser._actions:  # argparse offers no public way to walk the subcommands
        if isinstance(action, argparse._SubParsersAction):
            for subcommand in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                _global_options(subcommand, on_subcommand=True)
                _share_global_options(subcommand)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from session.cli import commands

    handler = getattr(commands, args.command.replace("-", "_"))
    previous = console.use(Console(quiet=args.quiet, as_json=bool(getattr(args, "json", False))))
    try:
        return handler(args)
    except DeepracerError as error:  # a user's mistake; anything else is a bug and keeps its traceback
        if args.debug:
            raise
        for line in str(error).splitlines():  # several mistakes (e.g. in run.env) are one line each
            console.warn(f"deepracer: {line}")
        return EXIT_USER_ERROR
    finally:
        console.use(previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
