"""`report`: what a run's traces say, as numbers (a terminal table, `--json`) and as a folder of PNG plots with a
self-contained HTML page.

    report = build(["~/models/rl-1", "rl-1-logs.tar.gz"], tracks=Path("/var/lib/deepracer/tracks"))
    print(render_text(report))
    files = write(report, Path("report-rl-1"))   # index.html, report.json, progress/track/actions/laps/workers.png
    as_json(report)                              # the numbers of `report --json`

The steps come from session.insight.analysis (simtrace CSVs, SIM_TRACE_LOG lines of any field count, console/DRoA
tarballs, folders, a bucket prefix). The headline numbers are `session.insight.analysis.summary` of the training
episodes (of the evaluation episodes when nothing was trained), exactly: `episodes`, `completed_laps`,
`best_lap_s`, `mean_progress`, ..., `iterations` and `workers`. Beside the steps the sources are searched for
- the training metrics JSON (one file per worker): the trainer's own evaluation of every checkpoint, shown
  beside the training numbers; and the only numbers when no step was traced (`"from": "metrics"`);
- the track: `--track`, else WORLD_NAME (with TRACK_DIRECTION_CLOCKWISE) of a training_params YAML, else the
  params a simulation log prints when it starts, else a guess among the route files from the traced track
  length and the car's path. Without a route file the path is drawn without borders and a note says why; with
  only another variant's route (`_cw`/`_ccw`/base), that route is moved into the world's frame
  (session.checks.tracks.frame_shift) and drawn if the path fits it;
- the run: the model prefix (and bucket) its training_params YAML or simulation logs name. Sources of two
  different runs are a ReportError, not one report.
Lines the loader could not read are counted (`problems`), never fatal; no trace data at all is a ReportError.

The Report itself is session.insight.report_model's, which the plots and the page read too: this module builds it
and hands it to them, never the other way round.
"""

from __future__ import annotations

import json
import math
import re
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence, Union

from session.checks.tracks import Track, TrackError, TrackLibrary, UnknownTrackError, frame_shift, split_direction
from session.checks.validate import HOST_TRACKS_DIR, tracks_dir
from session.core.envfile import ConfigError
from session.core.errors import DeepracerError
from session.insight import report_html
from session.insight.report_model import (
    EVALUATION,
    GENERATOR,
    TOP_LAPS,
    TRAINING,
    MetricsRun,
    Report,
    TrackChoice,
    iteration_rows,
    rounded,
)
from session.run.evaluation import CLONE_SUFFIX
from session.run.progress import group_iterations, parse_metrics
from session.storage.s3 import Storage, StorageError

# The imports marked `# start-up:` stay inside their functions on purpose: session.insight.analysis pulls in pandas
# and session.insight.report_plots numpy and matplotlib, half a second and more that only reading a trace or drawing
# needs; importing this module (ReportError, the parsers of logs and params) costs none of it.

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from session.insight.analysis.sources import Source

DPI = 100  # the PNGs' resolution; their sizes in inches are fixed in session.insight.report_plots
TABLE_ROWS = 20  # iterations in the terminal table (the last ones); the page and the JSON have all
JSON_NAME = "report.json"
HTML_NAME = "index.html"
BAR_AFTER_S = 1.0  # a load that takes longer shows a progress bar (on a terminal)
HEAD_BYTES = 2 << 20  # of a log, searched for the params the simulator prints when it starts
GUESS_SHARE = 0.9  # of the car's positions on a route's road, for the route to be guessed as the track
FIT_SHARE = 0.5  # ... for another variant's route to be drawn (a route in another frame holds next to none)

_PARAMS = re.compile(r"(^|/)training_params(_\d+)?\.ya?ml$", re.IGNORECASE)
_WORKER_SUFFIX = re.compile(r"_(\d+)\.json$", re.IGNORECASE)
_ARCHIVES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
# How a simulation log names its track, most reliable first: the params dict after the simulator appended the
# direction, the ROS 1 parameter dump, the line before the dict, an environment dump.
_WORLD_PATTERNS = (re.compile(rb"""['"]WORLD_NAME['"]\s*:\s*['"]([\w.-]+)['"]"""),
                   re.compile(rb"/WORLD_NAME:\s*([\w.-]+)"),
                   re.compile(rb"World name passed in YAML:\s*([\w.-]+)"),
                   re.compile(rb"\bWORLD_NAME=([\w.-]+)"))

# The run a simulation log or a training params YAML belongs to: the model prefix the simulator trains into
# (training) or evaluates (evaluation), with its bucket; as a params dict (values in lists for multi-agent
# races) or an environment dump.
_RUN_KEYS = (("SAGEMAKER_SHARED_S3_BUCKET", "SAGEMAKER_SHARED_S3_PREFIX"), ("MODEL_S3_BUCKET", "MODEL_S3_PREFIX"))


def _log_value(key: str) -> "re.Pattern[bytes]":
    return re.compile(rb"""['"]%s['"]\s*:\s*\[?\s*['"]([^'"\s]*)['"]|\b%s=(\S+)""" % (key.encode(), key.encode()))


_RUN_PATTERNS = tuple((_log_value(bucket), _log_value(prefix)) for bucket, prefix in _RUN_KEYS)


class ReportError(DeepracerError):
    """A report that cannot be made: no trace data in the sources, an unknown --track, an --out folder that
    holds someone else's files."""


@dataclass(frozen=True)
class RunId:
    """Which run a source's steps come from: its model prefix, and the bucket when the source says it."""

    prefix: str
    bucket: Optional[str] = None

    def same_as(self, other: "RunId") -> bool:
        return self.prefix == other.prefix and (self.bucket is None or other.bucket is None
                                                or self.bucket == other.bucket)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.bucket else self.prefix


def run_id(bucket: Optional[str], prefix: Optional[str]) -> Optional[RunId]:
    """A RunId, or None without a prefix. `evaluate --clone` evaluates a copy under <prefix>-E: the same run."""
    prefix = (prefix or "").strip().strip("/")
    if not prefix:
        return None
    if prefix.endswith(CLONE_SUFFIX) and len(prefix) > len(CLONE_SUFFIX):
        prefix = prefix[:-len(CLONE_SUFFIX)]
    return RunId(prefix, (bucket or "").strip() or None)


# --- building ------------------------------------------------------------------------------------------------------


def build(sources: Union["Source", Sequence["Source"]], *, track: Optional[str] = None,
          tracks: Optional[Path] = None, progress: Optional[Callable[[int, int], None]] = None) -> Report:
    """Load the sources and work out the numbers, the metrics and the track. `track` is a world name or a route
    file (`--track`), `tracks` the folder of route files (None: no borders, unless `track` is a file);
    `progress(files done, files)` follows the load."""
    from session.insight.analysis import AnalysisError, episodes, load, summary  # start-up: pandas, about 0.5 s

    pair = isinstance(sources, tuple) and len(sources) == 2 and isinstance(sources[1], (bytes, bytearray))
    if pair or isinstance(sources, (str, Path)) or not isinstance(sources, Sequence):
        sources = [sources]  # type: ignore[list-item]
    sources = list(sources)  # type: ignore[arg-type]
    labels = [_label(source) for source in sources]
    side = _Side()
    for source, label in zip(sources, labels):
        _scan(source, label, side)
    _one_run(side.runs)
    try:
        trace = load(sources, progress=progress)
    except AnalysisError as error:
        raise ReportError(str(error)) from None
    notes = [*trace.notes, *side.notes]
    if len(sources) > 1:
        notes.append(f"{len(sources)} sources: their episodes are counted together, iteration by iteration number")
    table = episodes(trace.steps)
    metrics = side.metrics[0] if side.metrics else None
    if len(side.metrics) > 1:
        others = ", ".join(m.source for m in side.metrics[1:])
        shown = metrics.source  # type: ignore[union-attr]
        notes.append(f"the trainer's evaluation is shown from {shown} only, not from {others}")
    if len(table):
        phase = TRAINING if (table["phase"] == TRAINING).any() else EVALUATION
        numbers = summary(table[table["phase"] == phase])
        numbers_from = "trace"
    elif metrics is not None and _training_entries(metrics):
        phase, numbers, numbers_from = TRAINING, metrics_numbers(metrics), "metrics"
        notes.append("no simulation steps in the sources (no simtrace CSV, no SIM_TRACE_LOG line): the numbers come "
                     "from the training metrics JSON (progress in whole percent, no steps, no path)")
    else:
        found = "; " + trace.problems.summary() if trace.problems else ""
        raise ReportError(f"{', '.join(labels)}: no simtrace CSV, SIM_TRACE_LOG line or training metrics JSON "
                          f"found{found}")
    library = _library(tracks)
    choice = choose_track(library, explicit=track, world=side.world, steps=trace.steps)
    if choice.note:
        notes.append(choice.note)
    from session.insight import report_views  # start-up: pandas, as above

    report = Report(title=_title(labels), sources=labels, trace=trace, table=table, phase=phase, numbers=numbers,
                    numbers_from=numbers_from, metrics=metrics, track=choice, notes=notes, actions=side.actions)
    report.views = report_views.views(report)
    return report


def metrics_numbers(run: MetricsRun) -> dict[str, Any]:
    """summary()'s keys from the metrics JSON alone: progress is its whole-percent `completion_percentage`,
    lap time its `elapsed_time_in_milliseconds`, `steps` unknown (None)."""
    def numbers(entries: list[dict[str, Any]]) -> dict[str, Any]:
        laps = [_float(e.get("elapsed_time_in_milliseconds")) for e in entries if _lap(e)]
        lap_s = [t / 1000 for t in laps if t is not None]
        count = len(entries)
        return {"episodes": count, "completed_laps": sum(map(_lap, entries)),
                "completion_rate": rounded(sum(map(_lap, entries)) / count) if count else None,
                "best_lap_s": rounded(min(lap_s)) if lap_s else None,
                "mean_lap_s": rounded(sum(lap_s) / len(lap_s)) if lap_s else None,
                "mean_progress": _mean(e.get("completion_percentage") for e in entries),
                "mean_reward": _mean(e.get("reward_score") for e in entries), "steps": None}

    out = numbers(_training_entries(run))
    out["iterations"] = [{"iteration": it.number, "episodes": it.episodes, "completed_laps": it.laps,
                          "completion_rate": rounded(it.laps / it.episodes) if it.episodes else None,
                          "best_lap_s": rounded(it.best_lap_s), "mean_lap_s": None,
                          "mean_progress": rounded(it.mean_completion), "mean_reward": rounded(it.mean_reward),
                          "steps": None} for it in run.iterations if it.episodes]
    out["workers"] = [{"worker": worker - 1, **numbers([e for e in entries if e.get("phase") == TRAINING])}
                      for worker, entries in sorted(run.entries.items())]
    return out


# --- the track -----------------------------------------------------------------------------------------------------


def choose_track(library: Optional["TrackLibrary"], *, explicit: Optional[str] = None,
                 world: Optional[tuple[str, Optional[bool], str]] = None,
                 steps: Optional["pd.DataFrame"] = None) -> TrackChoice:
    """The track to draw: `explicit` (a name in the library or a .npy file; unknown is a ReportError), else
    `world` = (WORLD_NAME, TRACK_DIRECTION_CLOCKWISE or None, where it was read), else a guess from the steps."""
    if explicit:
        path = Path(explicit).expanduser()
        if explicit.endswith(".npy") and path.is_file():
            try:
                return TrackChoice(path.stem, "--track", Track.load(path))
            except TrackError as error:
                raise ReportError(f"--track: {error}") from None
        if library is None:
            raise ReportError(f"--track {explicit}: no track files to draw it from (--tracks DIR, DR_TRACKS_DIR or "
                              f"{HOST_TRACKS_DIR})")
        try:
            return TrackChoice(explicit, "--track", library.load(explicit))
        except UnknownTrackError as error:
            raise ReportError(f"--track: {error}") from None
        except TrackError as error:
            raise ReportError(f"--track {explicit}: {error}") from None
    if world is not None:
        name, clockwise, origin = world
        if clockwise is not None and split_direction(name)[1] is None:
            name += "_cw" if clockwise else "_ccw"
        if library is None:
            return TrackChoice(name, origin, None, f"track {name}: no track files (--tracks DIR, DR_TRACKS_DIR or "
                                                   f"{HOST_TRACKS_DIR}); the path is drawn without borders")
        for candidate in _variants(library, name):
            try:
                drawn = library.load(candidate)
            except TrackError as error:
                return TrackChoice(name, origin, None, f"track {name}: {error}; the path is drawn without borders")
            if candidate == name:
                return TrackChoice(name, origin, drawn)
            return _fallback(name, origin, drawn, steps)
        return TrackChoice(name, origin, None, f"track {name}: no route file {name}.npy in {library.directory}; the "
                                               "path is drawn without borders")
    if steps is None or not len(steps):
        return TrackChoice()  # no path to draw
    if library is None:
        return TrackChoice(None, "", None, "track unknown (no training_params.yaml or simulation log among the "
                                           "sources, no track files); the path is drawn without borders")
    guess = guess_track(library, steps)
    if guess is None:
        return TrackChoice(None, "", None, "track unknown (no training_params.yaml or simulation log among the "
                                           "sources, and no route file fits the path); the path is drawn without "
                                           "borders (--track NAME draws them)")
    track, length = guess
    return TrackChoice(track.name, f"guessed from the traced track length ({length:.2f} m) and the path", track,
                       f"track {track.name} guessed from the traced track length and the path (--track NAME to "
                       f"set it)")


def _variants(library: "TrackLibrary", name: str) -> list[str]:
    """The route files that can draw world `name`, best first: its own; for a directional world the other
    direction (routes in the same frame), then the base; for a base world its counter-clockwise, then its
    clockwise route."""
    variants = library.directions(name)
    direction = split_direction(name)[1]
    order = ["cw" if direction == "ccw" else "ccw", ""] if direction else ["ccw", "cw"]
    return [candidate for candidate in (name, *(variants.get(key) for key in order))
            if candidate and candidate in library]


def _fallback(name: str, origin: str, drawn: "Track", steps: Optional["pd.DataFrame"]) -> TrackChoice:
    """Another variant's route drawn for world `name`, moved into that world's frame (session.checks.tracks.frame_shift)
    and checked against the path: a route the path does not fit is not drawn."""
    note = f"track {name}: no route file of that name; borders drawn from {drawn.name}, the same layout"
    shift = frame_shift(drawn, name)
    if shift is not None and shift != (0.0, 0.0):
        drawn = drawn.moved(*shift)
        note += f", moved by ({shift[0]:+.2f}, {shift[1]:+.2f}) m to where {name} lies"
    share = _share_on_road(drawn, steps)
    if share is not None and share < FIT_SHARE:
        return TrackChoice(name, origin, None, f"track {name}: no route file of that name, and the path does not fit "
                                               f"the borders of {drawn.name} ({share:.0%} of it on the road); the "
                                               f"path is drawn without borders")
    return TrackChoice(name, origin, drawn, note)


def _share_on_road(track: "Track", steps: Optional["pd.DataFrame"], sample: int = 200) -> Optional[float]:
    """The share of a sample of the car's positions that lies on the road of `track`; None without steps."""
    if steps is None or not len(steps):
        return None
    index = sorted({int(i) for i in _spread(len(steps), sample)})
    points = list(zip(steps["x"].to_numpy()[index].tolist(), steps["y"].to_numpy()[index].tolist()))
    view = track.view()
    return sum(view.on_road(p) for p in points) / len(points)


def guess_track(library: "TrackLibrary", steps: Optional["pd.DataFrame"], *,
                sample: int = 200) -> Optional[tuple["Track", float]]:
    """The route file whose centre line is as long as the traced `track_len` (within 1 %) and whose road holds
    at least 90 % of a sample of the car's positions; (track, traced length) or None."""
    if steps is None or not len(steps) or steps["track_len"].isna().all():
        return None
    length = float(steps["track_len"].median())
    best: Optional[tuple[float, str]] = None
    try:
        names = library.names()
    except TrackError:
        return None
    for name in names:
        try:
            track = library.load(name)
        except TrackError:
            continue
        centre = track.centre
        if abs(sum(math.dist(a, b) for a, b in zip(centre, centre[1:])) - length) > max(0.05, 0.01 * length):
            continue
        inside = _share_on_road(track, steps, sample) or 0.0
        if inside >= GUESS_SHARE and (best is None or inside > best[0]):
            best = (inside, name)
    return (library.load(best[1]), length) if best else None


def world_from_log(head: bytes) -> Optional[tuple[str, None]]:
    """(WORLD_NAME, None) from the first bytes of a simulation log. The params dict it prints already carries
    the direction suffix the simulator appended; a TRACK_DIRECTION_CLOCKWISE elsewhere in the log (DRoA's
    environment dump) need not be in the params, so it is not applied again."""
    for pattern in _WORLD_PATTERNS:
        match = pattern.search(head)
        if match:
            return match.group(1).decode(), None
    return None


def run_from_log(head: bytes) -> Optional[RunId]:
    """The run of a simulation log, from the params it prints when it starts (None when it prints none)."""
    for bucket_pattern, prefix_pattern in _RUN_PATTERNS:
        prefix = prefix_pattern.search(head)
        if prefix:
            bucket = bucket_pattern.search(head)
            return run_id(_value(bucket) if bucket else None, _value(prefix))
    return None


def _value(match: "re.Match[bytes]") -> str:
    """The value a _RUN_PATTERNS match found, in whichever of its two forms."""
    return next(group for group in match.groups() if group is not None).decode(errors="replace")


def run_from_params(data: bytes) -> Optional[RunId]:
    """The run a training (or evaluation) params YAML writes to; None when it names none."""
    document = _yaml(data)
    for bucket_key, prefix_key in _RUN_KEYS:
        prefix, bucket = _first(document.get(prefix_key)), _first(document.get(bucket_key))
        if isinstance(prefix, str) and prefix.strip():
            return run_id(bucket if isinstance(bucket, str) else None, prefix)
    return None


def world_from_params(data: bytes) -> Optional[tuple[str, Optional[bool]]]:
    """(WORLD_NAME, TRACK_DIRECTION_CLOCKWISE or None) of a training_params YAML; None when it names none."""
    document = _yaml(data)
    name = _first(document.get("WORLD_NAME"))
    if not isinstance(name, str) or not name.strip():
        return None
    clockwise = document.get("TRACK_DIRECTION_CLOCKWISE")
    return name.strip(), (None if clockwise is None else _truth(str(clockwise)))


def _yaml(data: bytes) -> dict[str, Any]:
    """A params YAML as a dict ({} when it is not one)."""
    import yaml

    try:
        document = yaml.safe_load(data)
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


def _first(value: Any) -> Any:
    """A params value: multi-agent races give one per car, in a list; the first is the agent's."""
    return value[0] if isinstance(value, list) and value else value


# --- what the sources hold beside the steps ----------------------------------------------------------------------


@dataclass
class _Side:
    world: Optional[tuple[str, Optional[bool], str]] = None
    runs: list[tuple[str, Optional[RunId]]] = field(default_factory=list)  # (source label, its run) per source
    metrics: list[MetricsRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    actions: Optional[list[dict[str, Any]]] = None  # a discrete action space, from model_metadata.json


@dataclass(frozen=True)
class _File:
    kind: str  # params, metrics or log
    name: str  # for people: a path, archive:member, s3://...
    rel: str  # inside its source
    read: Callable[[], bytes]  # a log: its first HEAD_BYTES


def _scan(source: "Source", label: str, side: _Side) -> None:
    """Training params, training metrics and the heads of logs of one source into `side`: the track (from the
    first source that names one) and the run of every source."""
    from session.insight.analysis.sources import StoragePrefix  # start-up: pandas, about 0.5 s

    files = list(_side_files(source, side))
    params = sorted((f for f in files if f.kind == "params"),
                    key=lambda f: (f.rel.count("/"), not f.rel.lower().endswith("training_params.yaml"), f.rel))
    logs = [f for f in files if f.kind == "log"]
    run: Optional[RunId] = None
    for file in [*params, *sorted(logs, key=lambda f: ("sagemaker" in f.rel or "-training" in f.rel, f.rel))]:
        if side.world is not None and run is not None:
            break
        found = _read_quietly(file, side)
        if not found:
            continue
        if side.world is None:
            world = world_from_params(found) if file.kind == "params" else world_from_log(found)
            if world:
                side.world = (*world, file.name)
        if run is None:
            run = run_from_params(found) if file.kind == "params" else run_from_log(found)
    if run is None and isinstance(source, StoragePrefix):
        run = run_id(source.storage.bucket, source.prefix)  # nothing in it says otherwise: where it lies
    side.runs.append((label, run))
    _read_metrics(label, [f for f in files if f.kind == "metrics"], side)
    for file in (f for f in files if f.kind == "metadata" and side.actions is None):
        side.actions = discrete_actions(_read_quietly(file, side) or b"")


def discrete_actions(data: bytes) -> Optional[list[dict[str, Any]]]:
    """model_metadata.json's discrete action space (each action's `index`, `steering_angle`, `speed`), None for
    a continuous one or a file that is not one."""
    try:
        space = json.loads(data).get("action_space")
    except (ValueError, AttributeError):
        return None
    if not isinstance(space, list) or not all(isinstance(a, dict) for a in space):
        return None
    try:
        return [{"index": int(a.get("index", i)), "steering_angle": float(a["steering_angle"]),
                 "speed": float(a["speed"])} for i, a in enumerate(space)]
    except (KeyError, TypeError, ValueError):
        return None


def _one_run(runs: Sequence[tuple[str, Optional[RunId]]]) -> None:
    """Sources of two different runs are refused (their episodes would be counted as one run's); parts of one
    run (each worker's log, its training and its evaluations) and sources that do not say are read together."""
    known = [(label, run) for label, run in runs if run is not None]
    for label, run in known[1:]:
        first_label, first = known[0]
        if not run.same_as(first):
            raise ReportError(f"report: {first_label} and {label} are different runs ({first} and {run}); report "
                              f"them one at a time")


def _read_metrics(label: str, files: list[_File], side: _Side) -> None:
    runs: dict[str, list[tuple[int, _File]]] = {}
    for file in files:
        match = _WORKER_SUFFIX.search(file.rel)
        worker = int(match.group(1)) + 1 if match else 1
        stem = file.rel[:match.start()] if match else file.rel[:-len(".json")]
        runs.setdefault(stem, []).append((worker, file))
    if not runs:
        return
    if len(runs) > 1:  # console folders keep one job's files per training session: the last one's
        side.notes.append(f"{label}: training metrics of {len(runs)} jobs; shown: {sorted(runs)[-1]}.json")
    entries: dict[int, list[dict[str, Any]]] = {}
    metric, names = None, []
    for worker, file in sorted(runs[sorted(runs)[-1]], key=lambda item: item[0]):
        data = _read_quietly(file, side)
        if data is None:
            continue
        try:
            found, metric_name = parse_metrics(data)
        except (ValueError, UnicodeDecodeError) as error:
            side.notes.append(f"{file.name}: not readable as training metrics ({str(error).splitlines()[0][:80]})")
            continue
        if not any(isinstance(e.get("phase"), str) for e in found):
            continue  # an evaluation's metrics (no phase), or something else
        entries[worker], metric = found, metric or metric_name
        names.append(file.name)
    if entries:
        iterations = group_iterations(entries)[0]
        side.metrics.append(MetricsRun(label, tuple(names), entries, iterations, metric))


def _read_quietly(file: _File, side: _Side) -> Optional[bytes]:
    try:
        return file.read()
    except Exception as error:  # noqa: BLE001 - an unreadable side file costs its numbers, never the report
        side.notes.append(f"{file.name}: not read ({str(error).splitlines()[0] if str(error) else repr(error)})")
        return None


def _kind(rel: str) -> Optional[str]:
    lower = rel.lower()
    if _PARAMS.search(lower):
        return "params"
    if lower.endswith(".json") and "metrics" in lower and "evaluation" not in lower:
        return "metrics"
    if lower.endswith(".log"):
        return "log"
    if lower.endswith("model_metadata.json"):
        return "metadata"
    return None


def _side_files(source: "Source", side: _Side) -> Iterator[_File]:
    from session.insight.analysis.sources import StoragePrefix  # start-up: pandas, about 0.5 s

    if isinstance(source, StoragePrefix):
        yield from _storage_files(source)
    elif isinstance(source, tuple):
        name, data = source
        kind = _kind(name)
        if kind:
            yield _File(kind, name, name, lambda: data[:HEAD_BYTES] if kind == "log" else data)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                rel = file.relative_to(path).as_posix()
                kind = _kind(rel)
                if kind:
                    # The ignores on lambdas: mypy cannot type a lambda's default argument.
                    yield _File(kind, str(file), rel, lambda file=file, kind=kind: _read_local(file, kind))  # type: ignore[misc]
        elif path.is_file() and path.name.lower().endswith(_ARCHIVES):
            yield from _archive_files(path, side)
        elif path.is_file():
            kind = _kind(path.name)
            if kind:
                yield _File(kind, str(path), path.name, lambda: _read_local(path, kind))


def _read_local(path: Path, kind: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(HEAD_BYTES) if kind == "log" else handle.read()


def _archive_files(path: Path, side: _Side) -> Iterator[_File]:
    """The wanted members, read while the archive is walked once (a log only its head)."""
    found: list[_File] = []
    try:
        with tarfile.open(path, "r:*") as archive:
            for info in archive:
                rel = info.name.split("/", 1)[1] if "/" in info.name else info.name
                kind = _kind(rel) if info.isfile() else None
                handle = archive.extractfile(info) if kind else None
                if handle is None:
                    continue
                data = handle.read(HEAD_BYTES) if kind == "log" else handle.read()
                found.append(_File(kind, f"{path}:{info.name}", rel, lambda data=data: data))  # type: ignore[arg-type, misc]
    except (tarfile.TarError, OSError, EOFError) as error:
        side.notes.append(f"{path}: read up to a damaged part ({error})")
    return iter(found)


def _storage_files(source: Any) -> Iterator[_File]:
    storage, prefix = source.storage, source.prefix
    for info in storage.list_objects(prefix):
        rel = info.key[len(prefix):].lstrip("/") if prefix else info.key
        kind = _kind(rel)
        if kind == "log":
            yield _File(kind, storage.url(info.key), rel, lambda key=info.key: _storage_head(storage, key))  # type: ignore[misc]
        elif kind:
            yield _File(kind, storage.url(info.key), rel, lambda key=info.key: storage.get_bytes(key))  # type: ignore[misc]


def _storage_head(storage: "Storage", key: str) -> bytes:
    response = storage.client.get_object(Bucket=storage.bucket, Key=key, Range=f"bytes=0-{HEAD_BYTES - 1}")
    return response["Body"].read()


# --- the sources a user names ---------------------------------------------------------------------------------------


def resolve_sources(names: Sequence[str], storage: Callable[[], "Storage"]) -> list["Source"]:
    """Local files and folders as they are; `s3://<bucket>/PREFIX` and any other name that is not a local path
    are model prefixes in the working bucket, opened through `storage()` (which reads system.env) only then.
    A name is a local path when it exists, starts with `.`, `/` or `~`, ends in a file extension the report
    reads, or starts with a folder that exists here."""
    from session.insight.analysis import from_storage  # start-up: pandas, about 0.5 s

    found: list["Source"] = []
    bucket: Optional["Storage"] = None
    for name in names:
        path = Path(name).expanduser()
        if path.exists():
            found.append(path)
            continue
        missing = f"report: {name}: no such file or folder"
        if not name.startswith("s3://") and _local_path(name, path):
            raise ReportError(f"{missing}, and not a model prefix")
        try:
            bucket = bucket or storage()
        except (ConfigError, StorageError) as error:
            if name.startswith("s3://"):
                raise
            raise ReportError(f"{missing}; no bucket to look for a model prefix in: {error}") from None
        prefix = name
        if name.startswith("s3://"):
            named, _, prefix = name[len("s3://"):].partition("/")
            if named != bucket.bucket:
                raise ReportError(f"{name}: only the working bucket s3://{bucket.bucket}/ is read; download the run "
                                  f"and give its folder")
        prefix = prefix.strip("/")
        if not prefix or not bucket.prefix_has_objects(prefix):
            raise ReportError(f"{name}: not a local file or folder, and {bucket.url(prefix + '/')} holds nothing")
        found.append(from_storage(bucket, prefix))
    return found


def _local_path(name: str, path: Path) -> bool:
    """Whether a name that does not exist can only mean a local path (a model prefix has none of these)."""
    if name.startswith((".", "/", "~")) or name.lower().endswith((*_ARCHIVES, ".log", ".csv", ".json", ".txt")):
        return True
    return "/" in name.rstrip("/") and Path(name.split("/", 1)[0]).expanduser().exists()


# --- output --------------------------------------------------------------------------------------------------------


def as_json(report: Report, files: Sequence[str] = ()) -> dict[str, Any]:
    """The numbers for programs: summary()'s keys first (`episodes`, `completed_laps`, `best_lap_s`,
    `mean_progress`, ..., `iterations`, `workers`), then where they came from and what else was found."""
    out: dict[str, Any] = {**report.numbers}
    out["phase"] = report.phase
    out["from"] = report.numbers_from
    out["best_lap"] = _best_lap(report)
    out["evaluation"] = _evaluation(report)
    if report.phase == EVALUATION:
        out["trials"] = trials(report.episodes)
    out["trainer_evaluation"] = _trainer_evaluation(report.metrics)
    out["track"] = report.track.as_json()
    out["problems"] = report.trace.problems.as_json()
    out["sources"] = list(report.sources)
    out["files_read"] = len(report.trace.files) + (len(report.metrics.files) if report.metrics else 0)
    out["notes"] = list(report.notes)
    if report.views is not None:
        out.update(report.views.as_json())
    if report.rescore is not None:
        out["rescore"] = report.rescore.as_json()
    if files:
        out["files"] = list(files)
    return out


def render_text(report: Report, files: Sequence[str] = (), out: Optional[Path] = None, *,
                rows: int = TABLE_ROWS) -> str:
    """The terminal summary: headline numbers, the last `rows` iterations, the workers, the evaluation, what was
    skipped, and where the page is."""
    n = report.numbers
    lines = [f"report of {report.title}"]
    lines.append(f"  sources         {', '.join(report.sources)}")
    track = report.track
    origin = track.describe()
    lines.append(f"  track           {track.name or 'unknown'}" + (f" ({origin})" if origin else ""))
    what = f"{n['episodes']} {report.phase} episodes"
    if n["iterations"]:
        what += f" in {len(n['iterations'])} iteration{'s' if len(n['iterations']) != 1 else ''}"
    what += f", {len(n['workers'])} worker{'s' if len(n['workers']) != 1 else ''}"
    if n.get("steps"):
        what += f", {n['steps']:,} steps"
    lines.append(f"  episodes        {what}" + (" (from the training metrics JSON)"
                                                 if report.numbers_from == "metrics" else ""))
    lines.append("")
    lines.append(f"  completed laps  {n['completed_laps']}" + (f" ({_pct(n['completion_rate'])} of episodes)"
                                                               if n["completion_rate"] is not None else ""))
    best = _best_lap(report)
    where = (f" (iteration {best['iteration']}, worker {best['worker']}, episode {best['episode']})"
             if best else "")
    lines.append(f"  best lap        {_seconds(n['best_lap_s'])}{where}")
    lines.append(f"  mean lap        {_seconds(n['mean_lap_s'])}")
    lines.append(f"  mean progress   {_pct(n['mean_progress'], 100)}")
    lines.append(f"  mean reward     {_num(n['mean_reward'])}")
    iterations = iteration_rows(report)
    if iterations:
        lines.append("")
        eval_column = any(row["trainer_eval_progress"] is not None for row in iterations)
        header = f"  {'ITERATION':>9}  {'EPISODES':>8}  {'LAPS':>5}  {'BEST LAP':>9}  {'PROGRESS':>8}  {'REWARD':>9}"
        lines.append(header + ("  TRAINER EVAL" if eval_column else ""))
        if len(iterations) > rows:
            lines.append(f"  ... {len(iterations) - rows} earlier iterations in the page and the JSON")
        for row in iterations[-rows:]:
            line = (f"  {row['iteration']:>9}  {row['episodes']:>8}  {row['completed_laps']:>5}  "
                    f"{_seconds(row['best_lap_s']):>9}  {_pct(row['mean_progress'], 100):>8}  "
                    f"{_num(row['mean_reward']):>9}")
            if eval_column:
                line += f"  {_pct(row['trainer_eval_progress'], 100):>12}"
            lines.append(line)
    if len(n["workers"]) > 1:
        lines.append("")
        lines.append(f"  {'WORKER':>9}  {'EPISODES':>8}  {'LAPS':>5}  {'BEST LAP':>9}  {'PROGRESS':>8}  {'REWARD':>9}")
        for row in n["workers"]:
            lines.append(f"  {row['worker']:>9}  {row['episodes']:>8}  {row['completed_laps']:>5}  "
                         f"{_seconds(row['best_lap_s']):>9}  {_pct(row['mean_progress'], 100):>8}  "
                         f"{_num(row['mean_reward']):>9}")
    evaluation = _evaluation(report)
    if report.phase == EVALUATION:
        lines.append("")
        lines.append(f"  {'TRIAL':>9}  {'LAP TIME':>9}  {'PROGRESS':>8}  {'OFF TRACK':>9}  {'CRASHES':>7}")
        for row in trials(report.episodes):
            lines.append(f"  {row['trial']:>9}  {_seconds(row['lap_s']):>9}  {_pct(row['progress'], 100):>8}  "
                         f"{row['off_track']:>9}  {row['crashed']:>7}")
    lines.append("")
    if evaluation:
        runs = len(evaluation["streams"])
        lines.append(f"  evaluation      {evaluation['episodes']} episodes in {runs} run{'s' if runs != 1 else ''}, "
                     f"{evaluation['completed_laps']} laps, best {_seconds(evaluation['best_lap_s'])}, "
                     f"mean progress {_pct(evaluation['mean_progress'], 100)}")
    for line in report.views.lines() if report.views is not None else ():
        lines.append(f"  look at         {line}")
    if report.rescore is not None:
        lines.append(f"  re-scored       {_rescore_line(report.rescore)}")
    lines.append(f"  problems        {report.trace.problems.summary()}")
    for note in report.notes:
        lines.append(f"  note            {note}")
    if out is not None and files:
        pictures = sum(1 for name in files if name.endswith(".png"))
        plural = "s" if pictures != 1 else ""
        lines.append(f"  wrote           {out / HTML_NAME} ({pictures} plot{plural}, {JSON_NAME})")
    return "\n".join(lines) + "\n"


def write(report: Report, out: Path, *, dpi: int = DPI, laps: int = TOP_LAPS) -> list[str]:
    """The plots, the page and report.json into `out` (created; a folder that holds files of its own but no
    report is refused). Returns the names written, in order."""
    from session.insight import report_plots, report_views  # start-up: numpy at import, matplotlib to draw

    out = Path(out).expanduser()
    _check_out(out)
    plots = report_plots.render(report, dpi=dpi, laps=laps)
    if report.views is not None:
        plots += report_views.render(report, report.views, dpi=dpi)
    names = [plot.name for plot in plots] + [JSON_NAME, HTML_NAME]
    data = as_json(report, names)
    out.mkdir(parents=True, exist_ok=True)
    for plot in plots:
        (out / plot.name).write_bytes(plot.png)
    (out / JSON_NAME).write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    (out / HTML_NAME).write_text(report_html.render(report, plots, data), encoding="utf-8")
    return names


def default_out(report: Report) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", report.title).strip("-.") or "run"
    return Path(f"report-{slug[:60]}")


def run(sources: Sequence[str], storage: Callable[[], "Storage"], *, track: Optional[str] = None,
        tracks: Optional[str] = None, out: Optional[str] = None, laps: Optional[int] = None,
        json_output: bool = False, reward: Optional[str] = None) -> int:
    """`report SOURCE... [--out DIR] [--json] [--track NAME] [--tracks DIR] [--laps N] [--reward FILE]`, each
    option its keyword (None: not given; `json_output` is --json). `storage` opens the working bucket, only for a
    model prefix."""
    import sys

    if tracks and not Path(tracks).expanduser().is_dir():
        raise ReportError(f"--tracks {tracks}: no such folder (expected a folder of track .npy files)")
    library = Path(tracks).expanduser() if tracks else tracks_dir()
    groups = runs_of(resolve_sources(sources, storage))
    if len(groups) > 1:
        return _compare(groups, track=track, tracks=library, out=out, laps=laps, json_output=json_output,
                        reward=reward)
    with LoadBar() as bar:
        report = build(groups[0], track=track, tracks=library, progress=bar)
    if reward is not None:
        from session.insight.rescore import RescoreError, for_report  # start-up: numpy, the reward sandbox

        if report.numbers_from != "trace":
            raise ReportError("--reward: the sources hold no steps to replay (only the training metrics JSON)")
        try:
            report.rescore = for_report(report, Path(reward).expanduser())
        except RescoreError as error:
            raise ReportError(str(error)) from None
    folder = Path(out).expanduser() if out else default_out(report)
    files = write(report, folder, laps=laps or TOP_LAPS)
    if json_output:
        print(json.dumps({**as_json(report, files), "out": str(folder)}, indent=2, allow_nan=False))
    else:
        sys.stdout.write(render_text(report, files, folder))
    return 0


class LoadBar:
    """A progress bar on stderr for a load that takes a while: shown on a terminal only, once BAR_AFTER_S have
    passed with files left (a quick load shows nothing), gone when the load ends."""

    def __init__(self) -> None:
        import sys
        import time

        self._clock = time.monotonic
        self._started = self._clock()
        self._tty = sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            if not self._tty or done >= total or self._clock() - self._started < BAR_AFTER_S:
                return
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("reading logs"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task("load", total=total)
        self._bar.update(self._task, completed=done, total=total)

    def __enter__(self) -> "LoadBar":
        return self

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def runs_of(sources: Sequence["Source"]) -> list[list["Source"]]:
    """The sources grouped by the run each names, in the order given: one group when they are parts of one run
    (or name none), else one per run, for `report A B` to put side by side. A source that names no run among
    sources of several runs cannot be placed: refused."""
    named: list[tuple[RunId, list["Source"]]] = []
    unnamed: list[str] = []
    for source in sources:
        side = _Side()
        label = _label(source)
        _scan(source, label, side)
        run = side.runs[0][1]
        if run is None:
            unnamed.append(label)
            continue
        group = next((members for known, members in named if known.same_as(run)), None)
        if group is None:
            named.append((run, [source]))
        else:
            group.append(source)
    if len(named) <= 1:
        return [list(sources)]
    if unnamed:
        raise ReportError(f"report: {unnamed[0]} names no run, and the other sources are {len(named)} different "
                          f"runs; report it alone or with the files of its own run")
    return [members for _, members in named]


def _compare(groups: list[list["Source"]], *, track: Optional[str], tracks: Optional[Path], out: Optional[str],
             laps: Optional[int], json_output: bool, reward: Optional[str]) -> int:
    """`report A B`: each run's own report in a folder of its own, and the comparison's page over them."""
    import sys

    from session.insight import report_compare  # start-up: numpy at import, matplotlib to draw

    if reward is not None:
        raise ReportError("--reward: re-score one run at a time (these sources are "
                          f"{len(groups)} different runs)")
    if len(groups) > report_compare.MAX_RUNS:
        raise ReportError(f"report: {len(groups)} different runs; at most {report_compare.MAX_RUNS} side by side")
    reports = []
    for group in groups:
        with LoadBar() as bar:
            reports.append(build(group, track=track, tracks=tracks, progress=bar))
    folder = Path(out).expanduser() if out else Path("report-compare-" + default_out(reports[0]).name[7:40])
    _check_out(folder)
    names = report_compare.folder_names(reports)
    runs = [as_json(report, write(report, folder / name, laps=laps or TOP_LAPS))
            for report, name in zip(reports, names)]
    plots = report_compare.render(reports)
    for plot in plots:
        (folder / plot.name).write_bytes(plot.png)
    data = {"compared": [r.title for r in reports], "folders": names,
            "headlines": [report_compare.headline(r) for r in reports], "runs": runs}
    (folder / JSON_NAME).write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    (folder / HTML_NAME).write_text(report_compare.render_html(reports, plots, names), encoding="utf-8")
    if json_output:
        print(json.dumps({**data, "out": str(folder)}, indent=2, allow_nan=False))
    else:
        sys.stdout.write(report_compare.render_text(reports, names, folder))
    return 0


# --- helpers -------------------------------------------------------------------------------------------------------


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out}: is a file; give a folder for the report")
    if out.is_dir() and any(out.iterdir()):
        page = out / HTML_NAME
        ours = page.is_file() and GENERATOR in page.read_text(errors="replace")[:2000]
        if not ours:
            raise ReportError(f"--out {out}: the folder holds files that are not a report; give an empty or new "
                              f"folder")


def _rescore_line(found: Any) -> str:
    data = found.as_json()
    correlation = data["correlation"]
    agree = "" if correlation is None else f", correlation per episode with the run's {correlation:+.2f}"
    return (f"{data['steps']:,} steps of {data['episodes_replayed']:,} episodes through {data['reward_file']}"
            f"{agree}")


def _library(tracks: Optional[Path]) -> Optional["TrackLibrary"]:
    return TrackLibrary(Path(tracks)) if tracks is not None and Path(tracks).is_dir() else None


def _best_lap(report: Report) -> Optional[dict[str, Any]]:
    table = report.episodes
    if report.numbers_from != "trace" or not len(table) or not table["complete"].any():
        return None
    row = report.best_laps(1).iloc[0]
    return {"lap_s": rounded(row["lap_time"]), "iteration": int(row["iteration"]), "worker": int(row["worker"]),
            "episode": int(row["episode"]), "unique_episode": int(row["unique_episode"]),
            "source": str(row["source"])}


def _evaluation(report: Report) -> Optional[dict[str, Any]]:
    """The evaluation runs' numbers when the headline is training (else they are the headline)."""
    from session.insight.analysis import summary  # start-up: pandas, about 0.5 s

    table = report.table
    if report.phase != TRAINING or not len(table):
        return None
    evaluation = table[table["phase"] == EVALUATION]
    if not len(evaluation):
        return None
    numbers = {k: v for k, v in summary(evaluation).items() if k not in ("iterations", "workers")}
    streams = []
    for stream, group in evaluation.groupby(evaluation["stream"].astype(str), sort=True):
        streams.append({"stream": stream, **{k: v for k, v in summary(group).items()
                                             if k not in ("iterations", "workers")}, "trials": trials(group)})
    return {**numbers, "streams": streams}


def trials(table: "pd.DataFrame") -> list[dict[str, Any]]:
    """An evaluation's trials in order: `trial` (1-based, per run), `lap_s` (None unless completed), `progress`
    (%), `off_track` and `crashed` (how often: with resets allowed a trial goes on after each), `status`."""
    rows = []
    for stream, group in table.groupby(table["stream"].astype(str), sort=True) if len(table) else ():
        for number, row in enumerate(group.sort_values("unique_episode", kind="stable").itertuples(), start=1):
            rows.append({"stream": stream, "trial": number, "lap_s": rounded(row.lap_time),
                         "progress": rounded(row.progress), "off_track": int(row.off_track),
                         "crashed": int(row.crashed), "status": str(row.status)})
    return rows


def _trainer_evaluation(run: Optional[MetricsRun]) -> Optional[dict[str, Any]]:
    if run is None:
        return None
    return {"files": list(run.files), "best_model_metric": run.best_model_metric,
            "iterations": [{k: (rounded(v) if isinstance(v, float) else v) for k, v in asdict(it).items()}
                           for it in run.iterations]}


def _training_entries(run: MetricsRun) -> list[dict[str, Any]]:
    return [e for _, entries in sorted(run.entries.items()) for e in entries if e.get("phase") == TRAINING]


def _lap(entry: dict[str, Any]) -> bool:
    return entry.get("episode_status") == "Lap complete"


def _label(source: "Source") -> str:
    from session.insight.analysis.sources import StoragePrefix  # start-up: pandas, about 0.5 s

    if isinstance(source, StoragePrefix):
        return source.storage.url(source.prefix + "/")
    if isinstance(source, tuple):
        return source[0]
    return str(source)


def _title(labels: Sequence[str]) -> str:
    first = labels[0].rstrip("/")
    name = first.rsplit("/", 1)[-1] or first
    for suffix in _ARCHIVES:
        if name.lower().endswith(suffix):
            name = name[:-len(suffix)]
            break
    return name + (f" and {len(labels) - 1} more" if len(labels) > 1 else "")


def _spread(n: int, k: int) -> Iterable[int]:
    return range(n) if n <= k else (i * (n - 1) // (k - 1) for i in range(k))


def _truth(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes")


def _float(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _mean(values: Iterable[Any]) -> Optional[float]:
    numbers = [v for v in (_float(value) for value in values) if v is not None]
    return rounded(sum(numbers) / len(numbers)) if numbers else None


def _seconds(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _pct(value: Optional[float], scale: float = 1.0) -> str:
    """A percentage: `value` is a fraction (scale 1) or already percent (scale 100)."""
    return "-" if value is None else f"{value * 100 / scale:.1f} %"


def _num(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"
