"""`report A B`: runs side by side instead of merged. Each run keeps its own report (built and written as
alone, in a folder of its own under the comparison's); the comparison's page puts the same pictures over one
another, one colour per run, and its JSON holds each run's numbers.

- progress.png: mean reward, mean progress and the share of laps completed per iteration;
- laps.png: the fastest lap of each iteration;
- track.png: each run's fastest lap (or furthest episode) on the first run's track;
- exits.png: where episodes ended, as a share per run of waypoints (only for runs on the same route).

Iterations are each run's own (a model and its increment both start at 0): the plots compare how each learned,
iteration by iteration, not one continued curve.
"""

from __future__ import annotations

import base64
import re
from html import escape
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from session import __version__
from session.insight.report_html import STYLE
from session.insight.report_model import GENERATOR, Report
from session.insight.report_plots import SQUARE, WIDE, Plot, empty, figure, gapped, per_row_values, png

if TYPE_CHECKING:  # pragma: no cover
    from session.insight.report_views import Views

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
MAX_RUNS = len(COLOURS)


def folder_names(reports: Sequence[Report]) -> list[str]:
    """One folder name per run, in order: `1-<title>`, `2-<title>`, ..."""
    return [f"{n}-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", r.title).strip("-.")[:50] or "run")
            for n, r in enumerate(reports, start=1)]


def render(reports: Sequence[Report], *, dpi: int = 100) -> list[Plot]:
    labels = [r.title for r in reports]
    plots = [
        Plot("progress.png", "Reward and completion per iteration", "Each run's mean reward per episode (top), mean "
             "progress (solid) and share of episodes completing a lap (dashed), per iteration of its own.",
             progress_plot(reports, labels, dpi=dpi)),
        Plot("laps.png", "Fastest lap per iteration", "The fastest completed lap of each iteration, per run.",
             laps_plot(reports, labels, dpi=dpi)),
        Plot("track.png", "Fastest laps on the track", "Each run's fastest lap (or the episode that got furthest) "
             "on the first run's track.", track_plot(reports, labels, dpi=dpi)),
    ]
    views = [r.views for r in reports]
    if all(v is not None for v in views) and len({len(v.places) for v in views}) == 1:
        plots.append(Plot("exits.png", "Where episodes ended", "The share of each run's exits (off track or "
                          "crashed) in each run of waypoints, in driving order.",
                          exits_plot(views, labels, dpi=dpi)))
    return plots


def headline(report: Report) -> dict[str, Any]:
    n = report.numbers
    return {"run": report.title, "phase": report.phase, "episodes": n["episodes"],
            "iterations": len(n["iterations"]), "completed_laps": n["completed_laps"],
            "completion_rate": n["completion_rate"], "best_lap_s": n["best_lap_s"],
            "mean_progress": n["mean_progress"], "mean_reward": n["mean_reward"]}


def render_text(reports: Sequence[Report], folders: Sequence[str], out: Any) -> str:
    lines = [f"comparison of {len(reports)} runs"]
    lines.append(f"  {'RUN':<40}  {'EPISODES':>8}  {'LAPS':>5}  {'BEST LAP':>9}  {'PROGRESS':>8}  {'REWARD':>9}")
    for row in (headline(r) for r in reports):
        best = "-" if row["best_lap_s"] is None else f"{row['best_lap_s']:.3f} s"
        progress = "-" if row["mean_progress"] is None else f"{row['mean_progress']:.1f} %"
        reward = "-" if row["mean_reward"] is None else f"{row['mean_reward']:.2f}"
        lines.append(f"  {row['run'][:40]:<40}  {row['episodes']:>8}  {row['completed_laps']:>5}  {best:>9}  "
                     f"{progress:>8}  {reward:>9}")
    lines.append(f"  wrote           {out}/index.html and each run's own report: "
                 + ", ".join(f"{out}/{name}/" for name in folders))
    return "\n".join(lines) + "\n"


def render_html(reports: Sequence[Report], plots: Sequence[Plot], folders: Sequence[str]) -> str:
    """The comparison's page: self-contained (plots inline), linking each run's own page beside it."""
    title = " vs ".join(r.title for r in reports)
    rows = "".join(
        f'<tr><td><span style="color:{COLOURS[i]}">&#9632;</span> {escape(row["run"])}</td>'
        f'<td class="n">{row["episodes"]:,}</td><td class="n">{row["completed_laps"]:,}</td>'
        f'<td class="n">{"-" if row["best_lap_s"] is None else format(row["best_lap_s"], ".3f") + " s"}</td>'
        f'<td class="n">{"-" if row["mean_progress"] is None else format(row["mean_progress"], ".1f") + " %"}'
        f'</td><td><a href="{escape(folder)}/index.html">its report</a></td></tr>'
        for i, (row, folder) in enumerate(zip((headline(r) for r in reports), folders)))
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta name="generator" content="{GENERATOR}">', f"<title>DeepRacer comparison: {escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>DeepRacer comparison: {escape(title)}</h1>",
             "<table><tr><th>run</th><th>episodes</th><th>completed laps</th><th>best lap</th><th>mean progress</th>"
             f"<th></th></tr>{rows}</table>"]
    for plot in plots:
        encoded = base64.b64encode(plot.png).decode("ascii")
        parts.append(f"<h2>{escape(plot.title)}</h2><figure>"
                     f'<img alt="{escape(plot.title)}" src="data:image/png;base64,{encoded}">'
                     f"<figcaption>{escape(plot.caption)}</figcaption></figure>")
    parts.append(f'<p class="muted">{escape(GENERATOR)}, deepracer-cloud session {escape(__version__)}; the numbers '
                 f"are also in report.json.</p></body></html>")
    return "\n".join(parts) + "\n"


# --- the plots -----------------------------------------------------------------------------------------------------


def progress_plot(reports: Sequence[Report], labels: Sequence[str], *, dpi: int = 100) -> bytes:
    fig = figure(WIDE, hspace=0.3)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for colour, report, label in zip(COLOURS, reports, labels):
        rows = sorted(report.numbers["iterations"], key=lambda row: row["iteration"])
        x = np.array([row["iteration"] for row in rows], float)
        top.plot(*gapped(x, per_row_values(rows, "mean_reward")), marker="o", ms=3, color=colour, label=label)
        bottom.plot(*gapped(x, per_row_values(rows, "mean_progress")), marker="o", ms=3, color=colour, label=label)
        bottom.plot(*gapped(x, per_row_values(rows, "completion_rate", 100)), ls="--", color=colour)
    top.set_ylabel("reward per episode")
    top.set_title("Reward per iteration")
    bottom.set_ylim(0, 105)
    bottom.set_ylabel("percent (%)")
    bottom.set_xlabel("iteration (each run's own)")
    bottom.set_title("Mean progress (solid) and laps completed (dashed)")
    for axes in (top, bottom):
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", fontsize=8)
    return png(fig, dpi)


def laps_plot(reports: Sequence[Report], labels: Sequence[str], *, dpi: int = 100) -> bytes:
    fig = figure(WIDE)
    axes = fig.subplots()
    drawn = 0
    for colour, report, label in zip(COLOURS, reports, labels):
        laps = report.episodes[report.episodes["complete"]] if len(report.episodes) else report.episodes
        if not len(laps):
            continue
        best = laps.groupby("iteration", sort=True)["lap_time"].min()
        axes.plot(*gapped(best.index.to_numpy(float), best.to_numpy(float)), marker="o", ms=4, color=colour,
                  label=f"{label}: best {best.min():.3f} s")
        drawn += 1
    if not drawn:
        empty(axes, "no run completed a lap")
    else:
        axes.legend(loc="upper right", fontsize=8)
    axes.set_xlabel("iteration (each run's own)")
    axes.set_ylabel("fastest lap of the iteration (s)")
    axes.grid(True, alpha=0.3)
    return png(fig, dpi)


def track_plot(reports: Sequence[Report], labels: Sequence[str], *, dpi: int = 100) -> bytes:
    fig = figure(SQUARE, left=0.08, right=0.97, bottom=0.1)
    axes = fig.subplots()
    axes.set_aspect("equal", adjustable="datalim")
    track = reports[0].track.track
    if track is not None:
        for points in (track.outer, track.inner):
            xy = np.asarray(points, float)
            axes.plot(xy[:, 0], xy[:, 1], color="0.3", lw=1.2)
    for index, (colour, report, label) in enumerate(zip(COLOURS, reports, labels)):
        chosen = report.best_laps(1)
        if not len(chosen) or report.numbers_from != "trace":
            continue
        row = chosen.iloc[0]
        path = report.steps[report.steps["unique_episode"] == row["unique_episode"]]
        what = f"{row['lap_time']:.3f} s" if row["complete"] else f"{row['progress']:.1f} %"
        axes.plot(path["x"].to_numpy(float), path["y"].to_numpy(float), color=colour, lw=2.4 - 0.3 * index,
                  label=f"{label}: {what}")
    axes.autoscale_view()
    axes.grid(True, alpha=0.2)
    axes.set_xlabel("x (m)")
    axes.set_ylabel("y (m)")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper right", fontsize=8)
    else:
        empty(axes, "no path")
    axes.set_title(reports[0].track.name or "track unknown", fontsize=10)
    return png(fig, dpi)


def exits_plot(views: Sequence["Views"], labels: Sequence[str], *, dpi: int = 100) -> bytes:
    fig = figure(WIDE, bottom=0.14)
    axes = fig.subplots()
    count = len(views[0].sections)
    width = 0.8 / len(views)
    x = np.arange(count)
    for index, (colour, found, label) in enumerate(zip(COLOURS, views, labels)):
        share = [(s["share"] or 0.0) * 100 for s in found.sections]
        axes.bar(x - 0.4 + width * (index + 0.5), share, width=width, color=colour,
                 label=f"{label}: {len(found.exits):,} exits")
    axes.set_xticks(x, [f"{s['first']}-{s['last']}" for s in views[0].sections], fontsize=7, rotation=45)
    axes.set_xlabel("waypoints (driving order)")
    axes.set_ylabel("share of the run's exits (%)")
    axes.legend(loc="upper right", fontsize=8)
    axes.grid(True, axis="y", alpha=0.3)
    return png(fig, dpi)
