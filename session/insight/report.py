"""`report`: what a run's traces say, as numbers (a terminal table, `--json`) and as a folder of PNG plots with a
self-contained HTML page.

    report = build(["~/models/rl-1", "rl-1-logs.tar.gz"], tracks=Path("/var/lib/deepracer/tracks"))
    print(render_text(report))
    files = write(report, Path("report-rl-1"))   # index.html, report.json, progress/track/actions/laps/workers.png
    as_json(report)                              # the numbers of `report --json`

The steps come from session.insight.analysis (simtrace CSVs, SIM_TRACE_LOG lines of any field count, console/DRoA
tarballs, folders, a bucket prefix). The headline numbers are `session.insight.analysis.summary` of the training
episodes (of the evaluation episodes when nothing was trained), exactly: `episodes`, `completed_laps`,
`best_lap_s`, `mean_progress`, ..., `iterations` and `workers`. What the sources say beside the steps (the
trainer's metrics, the world, the run, the action space) is session.insight.report_sources'; the track drawn is
session.insight.report_track's choice. With only the training metrics JSON the numbers come from it
(`"from": "metrics"`). Lines the loader could not read are counted (`problems`), never fatal; no trace data at
all is a ReportError. `report A B` (sources of different runs) puts the runs side by side
(session.insight.report_compare).

The Report itself is session.insight.report_model's, which the plots and the page read too: this module builds it
and hands it to them, never the other way round.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence, Union

from session.checks.validate import tracks_dir
from session.insight import report_html
from session.insight.report_model import (
    EVALUATION,
    GENERATOR,
    TOP_LAPS,
    TRAINING,
    MetricsRun,
    Report,
    ReportError,
    iteration_rows,
    rounded,
)
from session.insight.report_progress import DRAWING, ReportProgress, quiet
from session.insight.report_sources import (
    ARCHIVES,
    SourceFacts,
    check_one_run,
    resolve_sources,
    runs_of,
    scan,
    source_label,
)
from session.insight.report_track import choose_track, track_library

# The imports marked `# start-up:` stay inside their functions on purpose: session.insight.analysis pulls in pandas
# and session.insight.report_plots numpy and matplotlib, half a second and more that only reading a trace or drawing
# needs; importing this module (ReportError, the parsers of logs and params) costs none of it.

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from session.insight.analysis.sources import Source
    from session.storage.s3 import Storage

DPI = 100  # the PNGs' resolution; their sizes in inches are fixed in session.insight.report_plots
TABLE_ROWS = 20  # iterations in the terminal table (the last ones); the page and the JSON have all
JSON_NAME = "report.json"
HTML_NAME = "index.html"


# --- building ------------------------------------------------------------------------------------------------------


def build(sources: Union["Source", Sequence["Source"]], *, track: Optional[str] = None,
          tracks: Optional[Path] = None, progress: Optional[ReportProgress] = None) -> Report:
    """Load the sources and work out the numbers, the metrics and the track. `track` is a world name or a route
    file (`--track`), `tracks` the folder of route files (None: no borders, unless `track` is a file);
    `progress` follows the load and the steps after it."""
    from session.insight.analysis import AnalysisError, episodes, load, summary  # start-up: pandas, about 0.5 s

    pair = isinstance(sources, tuple) and len(sources) == 2 and isinstance(sources[1], (bytes, bytearray))
    if pair or isinstance(sources, (str, Path)) or not isinstance(sources, Sequence):
        sources = [sources]  # type: ignore[list-item]
    sources = list(sources)  # type: ignore[arg-type]
    labels = [source_label(source) for source in sources]
    facts = SourceFacts()
    for source, label in zip(sources, labels):
        scan(source, label, facts)
    check_one_run(facts.runs)
    try:
        trace = load(sources, progress=progress)
    except AnalysisError as error:
        raise ReportError(str(error)) from None
    if progress is not None:
        progress.step("working out the numbers")
    notes = [*trace.notes, *facts.notes]
    if len(sources) > 1:
        notes.append(f"{len(sources)} sources: their episodes are counted together, iteration by iteration number")
    table = episodes(trace.steps)
    metrics = facts.metrics[0] if facts.metrics else None
    if len(facts.metrics) > 1:
        others = ", ".join(m.source for m in facts.metrics[1:])
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
    library = track_library(tracks)
    choice = choose_track(library, explicit=track, world=facts.world, steps=trace.steps)
    if choice.note:
        notes.append(choice.note)
    from session.insight import report_views  # start-up: pandas, as above

    if progress is not None:
        progress.step("working out the views")
    report = Report(title=_title(labels), sources=labels, trace=trace, table=table, phase=phase, numbers=numbers,
                    numbers_from=numbers_from, metrics=metrics, track=choice, notes=notes, actions=facts.actions)
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


def write(report: Report, out: Path, *, dpi: int = DPI, laps: int = TOP_LAPS,
          progress: Optional[ReportProgress] = None) -> list[str]:
    """The plots, the page and report.json into `out` (created; a folder that holds files of its own but no
    report is refused). Returns the names written, in order. `progress` counts the plots."""
    from session.insight import report_plots, report_views  # start-up: numpy at import, matplotlib to draw

    out = Path(out).expanduser()
    _check_out(out)
    drew = progress.drew if progress is not None else quiet
    if progress is not None:
        progress.step(DRAWING)
    plots = report_plots.render(report, dpi=dpi, laps=laps, drew=drew)
    if report.views is not None:
        plots += report_views.render(report, report.views, dpi=dpi, drew=drew)
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
    with ReportProgress() as progress:
        report = build(groups[0], track=track, tracks=library, progress=progress)
        if reward is not None:
            from session.insight.rescore import RescoreError, for_report  # start-up: numpy, the reward sandbox

            if report.numbers_from != "trace":
                raise ReportError("--reward: the sources hold no steps to replay (only the training metrics JSON)")
            progress.step(f"re-scoring with {Path(reward).name}")
            try:
                report.rescore = for_report(report, Path(reward).expanduser())
            except RescoreError as error:
                raise ReportError(str(error)) from None
        folder = Path(out).expanduser() if out else default_out(report)
        files = write(report, folder, laps=laps or TOP_LAPS, progress=progress)
    if json_output:
        print(json.dumps({**as_json(report, files), "out": str(folder)}, indent=2, allow_nan=False))
    else:
        sys.stdout.write(render_text(report, files, folder))
    return 0


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
    with ReportProgress() as progress:
        reports = [build(group, track=track, tracks=tracks, progress=progress) for group in groups]
        folder = Path(out).expanduser() if out else Path("report-compare-" + default_out(reports[0]).name[7:40])
        _check_out(folder)
        names = report_compare.folder_names(reports)
        runs = [as_json(report, write(report, folder / name, laps=laps or TOP_LAPS, progress=progress))
                for report, name in zip(reports, names)]
        progress.step("drawing the comparison")
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


def _title(labels: Sequence[str]) -> str:
    first = labels[0].rstrip("/")
    name = first.rsplit("/", 1)[-1] or first
    for suffix in ARCHIVES:
        if name.lower().endswith(suffix):
            name = name[:-len(suffix)]
            break
    return name + (f" and {len(labels) - 1} more" if len(labels) > 1 else "")


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
