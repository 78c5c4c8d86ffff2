"""The report's page: one self-contained HTML file (styles inline, the plots as base64 `data:` URIs, no script,
no link to anything), so it can be mailed, archived or opened from a bucket without its folder."""

from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING, Any, Optional, Sequence

from session import __version__
from session.insight.report_model import GENERATOR, Report, iteration_rows

if TYPE_CHECKING:  # pragma: no cover
    # For the annotation only: report_plots imports numpy, which the page does not need to be imported.
    from session.insight.report_plots import Plot

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .25em .7em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.headline td { font-size: 1.05em; } .muted { color: #777; } .problems { background: #fff4e5; padding: .6em 1em; }
.ok { background: #eef8ee; padding: .6em 1em; } figure { margin: 1.5em 0; } img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .92em; } code { font-size: .92em; }
"""


def render(report: "Report", plots: Sequence["Plot"], data: dict[str, Any]) -> str:
    """The page for `report` with its `plots` and the numbers `data` (session.insight.report.as_json)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta name="generator" content="{GENERATOR}">',
        f"<title>DeepRacer report: {escape(report.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>DeepRacer report: {escape(report.title)}</h1>",
        _about(report, data),
        _headline(report, data),
        _problems(data["problems"]),
        _notes(data["notes"]),
    ]
    for plot in plots:
        encoded = base64.b64encode(plot.png).decode("ascii")
        parts.append(f"<h2>{escape(plot.title)}</h2><figure>"
                     f'<img alt="{escape(plot.title)}" src="data:image/png;base64,{encoded}">'
                     f"<figcaption>{escape(plot.caption)}</figcaption></figure>")
    rows = iteration_rows(report)
    if rows:
        trainer = any(row["trainer_eval_progress"] is not None for row in rows)
        columns = [("iteration", "iteration", _int), ("episodes", "episodes", _int),
                   ("completed laps", "completed_laps", _int), ("completion", "completion_rate", _fraction),
                   ("best lap", "best_lap_s", _seconds), ("mean lap", "mean_lap_s", _seconds),
                   ("mean progress", "mean_progress", _percent), ("mean reward", "mean_reward", _number),
                   ("steps", "steps", _int)]
        if trainer:
            columns += [("trainer eval progress", "trainer_eval_progress", _percent),
                        ("trainer eval laps", "trainer_eval_laps", _int)]
        parts.append(f"<h2>Per iteration</h2>{_table(rows, columns)}")
    workers = data.get("workers") or []
    if workers:
        parts.append("<h2>Per worker</h2>" + _table(workers, [
            ("worker", "worker", _int), ("episodes", "episodes", _int), ("completed laps", "completed_laps", _int),
            ("completion", "completion_rate", _fraction), ("best lap", "best_lap_s", _seconds),
            ("mean lap", "mean_lap_s", _seconds), ("mean progress", "mean_progress", _percent),
            ("mean reward", "mean_reward", _number), ("steps", "steps", _int)]))
    trial_columns = [("run", "stream", _text), ("trial", "trial", _int), ("lap time", "lap_s", _seconds),
                     ("progress", "progress", _percent), ("off track", "off_track", _int),
                     ("crashes", "crashed", _int)]
    if data.get("trials"):
        parts.append("<h2>Trials</h2>" + _table(data["trials"], trial_columns))
    evaluation = data.get("evaluation")
    if evaluation:
        parts.append("<h2>Evaluation runs</h2>" + _table(evaluation["streams"], [
            ("run", "stream", _text), ("trials", "episodes", _int), ("completed laps", "completed_laps", _int),
            ("best lap", "best_lap_s", _seconds), ("mean lap", "mean_lap_s", _seconds),
            ("mean progress", "mean_progress", _percent)]))
        parts.append("<h2>Evaluation trials</h2>" + _table(
            [trial for stream in evaluation["streams"] for trial in stream["trials"]], trial_columns))
    parts.append(f'<p class="muted">{escape(GENERATOR)}, deepracer-cloud session {escape(__version__)}; the numbers '
                 f"are also in report.json.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _about(report: "Report", data: dict[str, Any]) -> str:
    track = data["track"]
    name = track["name"] or "unknown"
    origin = f" ({report.track.describe()})" if track["origin"] else ""
    drawn = "" if not track["drawn"] or track["drawn"] == track["name"] else f", drawn from {track['drawn']}"
    sources = "".join(f"<li><code>{escape(source)}</code></li>" for source in data["sources"])
    what = f"{data['episodes']:,} {escape(report.phase)} episodes"
    if data["from"] == "metrics":
        what += " (from the training metrics JSON: no simulation steps were found)"
    return (f"<p>{what} from {data['files_read']:,} files of:</p><ul>{sources}</ul>"
            f"<p>Track: <b>{escape(name)}</b>{escape(origin)}{escape(drawn)}</p>")


def _headline(report: "Report", data: dict[str, Any]) -> str:
    best = data.get("best_lap")
    where = (f" (iteration {best['iteration']}, worker {best['worker']}, episode {best['episode']})"
             if best else "")
    rows = [("episodes", _int(data["episodes"])),
            ("completed laps", f"{_int(data['completed_laps'])} ({_fraction(data['completion_rate'])})"),
            ("best lap", _seconds(data["best_lap_s"]) + where),
            ("mean lap", _seconds(data["mean_lap_s"])),
            ("mean progress", _percent(data["mean_progress"])),
            ("mean reward per episode", _number(data["mean_reward"])),
            ("steps", _int(data["steps"]))]
    body = "".join(f"<tr><th>{escape(key)}</th><td>{escape(value)}</td></tr>" for key, value in rows)
    return f'<table class="headline">{body}</table>'


def _problems(problems: dict[str, Any]) -> str:
    count = problems["count"]
    if not count:
        return '<p class="ok">Every line was read: no malformed or truncated lines.</p>'
    reasons = "".join(f"<tr><td class=\"n\">{n:,}</td><td>{escape(reason)}</td></tr>"
                      for reason, n in sorted(problems["reasons"].items(), key=lambda item: (-item[1], item[0])))
    examples = "".join(f"<tr><td><code>{escape(p['file'])}</code></td><td>{escape(p['where'])}</td>"
                       f"<td>{escape(p['message'])}</td></tr>" for p in problems["examples"])
    shown = len(problems["examples"])
    return (f'<div class="problems"><h2>Lines skipped: {count:,}</h2>'
            f"<p>These lines could not be read and are left out of every number and plot.</p>"
            f"<table><tr><th>lines</th><th>reason</th></tr>{reasons}</table>"
            f"<p>The first {shown:,}:</p><table><tr><th>file</th><th>where</th><th>what</th></tr>{examples}</table>"
            f"</div>")


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return f"<h2>Notes</h2><ul>{items}</ul>"


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, Any]]) -> str:
    head = "".join(f"<th>{escape(title)}</th>" for title, _, _ in columns)
    body = []
    for row in rows:
        cells = "".join(f'<td class="{"" if show is _text else "n"}">{escape(show(row.get(key)))}</td>'
                        for _, key, show in columns)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _text(value: Any) -> str:
    return "-" if value in (None, "") else str(value)


def _int(value: Optional[float]) -> str:
    return "-" if value is None else f"{int(value):,}"


def _number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _seconds(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f} %"


def _fraction(value: Optional[float]) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"
