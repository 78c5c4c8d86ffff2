"""The report's pictures of where things happen on the track and how well the simulation kept time, drawn as
session.insight.report_plots draws (fixed sizes, sorted series, the same bytes for the same data):

- exits.png: where episodes ended off the track or crashed, on the track and counted by run of waypoints;
- along_track.png: mean reward and mean commanded speed at each waypoint, as colour on the track;
- timing.png: each worker's step interval (mean, 95th percentile, max) against the simulator's 15 a second, the
  share of late steps and the real-time factor;
- rescore.png (with --reward): the candidate reward function's reward for the logged steps beside the run's own.

Colour scales span the values drawn (no empty half scales); a picture with too little to show says so instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from session.insight.analysis import along_track, timing
from session.insight.analysis.timing import FRAME_S, LATE_S, LATE_SHARE_LIMIT
from session.insight.report_model import Report
from session.insight.report_plots import WIDE, Plot, Plots, empty, figure, png
from session.insight.report_progress import quiet

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes

    from session.checks.tracks import Track

_STATUS_COLOURS = {"off_track": "tab:red", "crashed": "tab:purple"}
_TOP_SECTIONS = 3  # sections named in the text summary


@dataclass(frozen=True)
class Views:
    """What the views show, worked out once from the headline phase's steps and episodes."""

    exits: "pd.DataFrame"
    sections: list[dict[str, Any]]
    places: "pd.DataFrame"
    timing: "pd.DataFrame"
    episodes: int

    def as_json(self) -> dict[str, Any]:
        return {"exits": {"total": len(self.exits), "by_section": self.sections},
                "along_track": along_track.as_records(self.places),
                "step_timing": timing.as_json(self.timing)}

    def lines(self) -> list[str]:
        return [*("exits at " + line for line in exit_lines(self.sections)), *timing_lines(self.timing)]


def views(report: Report) -> Optional[Views]:
    """The views of a report built from steps (None when its numbers came from the metrics JSON alone)."""
    if report.numbers_from != "trace":
        return None
    steps = report.steps[report.steps["phase"] == report.phase]
    chosen = report.track.track if report.track.track is not None and report.track.track.name == report.track.name \
        else None  # another route's indices need not be the driven one's
    waypoints = along_track.waypoint_count(chosen.view() if chosen is not None else None, steps)
    exits = along_track.exits(steps, report.episodes)
    return Views(exits=exits, sections=along_track.exits_by_section(exits, waypoints),
                 places=along_track.by_waypoint(steps, waypoints), timing=timing.step_timing(steps),
                 episodes=len(report.episodes))


def render(report: Report, found: Views, *, dpi: int = 100, drew: Callable[[str], None] = quiet) -> list[Plot]:
    """The views' plots in page order; `drew(name)` follows them (a progress display)."""
    track = report.track.track
    plots = Plots(drew)
    plots.append(
        Plot("exits.png", "Where episodes ended", "Where each episode that left the track or crashed ended, and "
             "how many ended in each run of waypoints (numbered on the map where it starts).",
             exits_plot(found.exits, found.sections, found.places, track, episodes=found.episodes, dpi=dpi)))
    plots.append(
        Plot("along_track.png", "Reward and speed along the track", "The mean reward and the mean commanded speed "
             "of the steps nearest each waypoint, drawn where the car was.",
             along_track_plot(found.places, track, dpi=dpi)))
    plots.append(
        Plot("timing.png", "Step timing", "Each worker's time between steps in the simulator's clock against its "
             "15 steps a second; late steps mean dropped frames, a real-time factor under 1 a slow simulation.",
             timing_plot(found.timing, dpi=dpi)))
    if report.rescore is not None:
        plots.append(
            Plot("rescore.png", f"Re-scored with {report.rescore.reward_file}", "What the candidate reward function "
                 "gives the steps the car drove, beside what the run's own gave: mean reward per episode by "
                 "iteration, and mean reward per step at each waypoint (each on its own scale).",
                 rescore_plot(report.rescore.episodes, report.rescore.per_waypoint, report.rescore.reward_file,
                              dpi=dpi)))
    return list(plots)


def rescore_plot(episodes: "pd.DataFrame", per_waypoint: "pd.DataFrame", reward_file: str, *,
                 dpi: int = 100) -> bytes:
    """Left: mean episode reward per iteration, the run's (left scale) and the candidate's (right scale); right:
    the same per waypoint for a step. Two scales, because a candidate is usually on another one: the shapes are
    what to compare."""
    fig = figure(WIDE, left=0.07, right=0.93, wspace=0.45)
    panels = fig.subplots(1, 2)
    by_iteration = episodes.groupby("iteration", sort=True)[["old", "new"]].mean() if len(episodes) else None
    series = ((panels[0], by_iteration.index.to_numpy(float) if by_iteration is not None else np.zeros(0),
               by_iteration, "iteration", "mean reward per episode"),
              (panels[1], per_waypoint["waypoint"].to_numpy(float), per_waypoint, "waypoint", "mean reward per step"))
    for axes, x, table, xlabel, ylabel in series:
        if table is None or not len(table):
            empty(axes, "no steps")
            continue
        twin = axes.twinx()
        axes.plot(x, table["old"].to_numpy(float), color="tab:blue", marker="o" if len(x) < 60 else None, ms=3,
                  label="the run's reward")
        twin.plot(x, table["new"].to_numpy(float), color="tab:orange", marker="s" if len(x) < 60 else None, ms=3,
                  label=reward_file)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(f"{ylabel}: the run's", color="tab:blue")
        twin.set_ylabel(f"{ylabel}: {reward_file}", color="tab:orange")
        axes.grid(True, alpha=0.3)
        handles = axes.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        axes.legend(handles=handles, loc="upper left", fontsize=8)
    panels[0].set_title("Per iteration", fontsize=10)
    panels[1].set_title("Along the track", fontsize=10)
    return png(fig, dpi)


def exits_plot(exit_table: "pd.DataFrame", sections: Sequence[dict[str, Any]], places: "pd.DataFrame",
               track: Optional["Track"], *, episodes: int, dpi: int = 100) -> bytes:
    """Left: the track (borders when known) and each exit's position, with the sections numbered where they
    start; right: exits per section. `places`: by_waypoint()'s table (where each waypoint is)."""
    fig = figure(WIDE, left=0.05, wspace=0.25)
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    _borders(left, track)
    _route(left, places)
    for status in sorted(exit_table["status"].unique()) if len(exit_table) else ():
        mine = exit_table[exit_table["status"] == status]
        left.scatter(mine["x"].to_numpy(float), mine["y"].to_numpy(float), s=10, alpha=0.6, zorder=4,
                     color=_STATUS_COLOURS.get(str(status), "tab:gray"), label=f"{status} ({len(mine):,})")
    for number, section in enumerate(sections, start=1):
        where = _place(places, section["first"])
        if where is not None:
            left.annotate(str(number), where, fontsize=8, ha="center", va="center", zorder=5,
                          bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": "0.5", "lw": 0.5})
    left.set_aspect("equal", adjustable="datalim")
    left.set_title(f"{len(exit_table):,} of {episodes:,} episodes ended off the track or crashed", fontsize=10)
    left.set_xticks([])
    left.set_yticks([])
    if len(exit_table):
        left.legend(loc="upper right", fontsize=8)
        y = np.arange(len(sections))
        counts = np.array([s["exits"] for s in sections])
        right.barh(y, counts, color="tab:red")
        right.set_yticks(y, [f"{i} (wp {s['first']}-{s['last']})" for i, s in enumerate(sections, start=1)],
                         fontsize=8)
        right.invert_yaxis()
        right.set_xlabel("exits")
        right.grid(True, axis="x", alpha=0.3)
    else:
        empty(left, "no episode ended off the track")
        empty(right, "")
    right.set_title("By section (driving order)")
    return png(fig, dpi)


def along_track_plot(places: "pd.DataFrame", track: Optional["Track"], *, dpi: int = 100) -> bytes:
    """Mean reward (left) and mean commanded speed (right) per waypoint, as colour at where the car was when
    that waypoint was its nearest."""
    from matplotlib.colors import Normalize

    fig = figure(WIDE, left=0.03, right=0.97, wspace=0.08)
    panels = fig.subplots(1, 2)
    seen = places[places["steps"] > 0] if len(places) else places
    for axes, column, label, cmap in ((panels[0], "mean_reward", "mean reward per step", "viridis"),
                                      (panels[1], "mean_speed", "mean commanded speed (m/s)", "plasma")):
        _borders(axes, track)
        axes.set_aspect("equal", adjustable="datalim")
        axes.set_xticks([])
        axes.set_yticks([])
        values = seen[column].to_numpy(float) if len(seen) else np.zeros(0)
        finite = np.isfinite(values)
        if not finite.any():
            empty(axes, "no steps")
            continue
        low, high = float(values[finite].min()), float(values[finite].max())
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        dots = axes.scatter(seen["mean_x"].to_numpy(float)[finite], seen["mean_y"].to_numpy(float)[finite],
                            c=values[finite], cmap=cmap, norm=Normalize(low, high), s=28, zorder=4)
        fig.colorbar(dots, ax=axes, orientation="horizontal", shrink=0.8, pad=0.04, label=label)
        axes.set_title(f"{label.split(' (')[0].capitalize()} at each waypoint", fontsize=10)
    return png(fig, dpi)


def timing_plot(timing: "pd.DataFrame", *, dpi: int = 100) -> bytes:
    """Per worker: the mean and 95th percentile step interval (simulated ms) against one frame at 15 a second and
    the 1.5-frame lateness line, the longest written above, with the late share and real-time factor under each."""
    fig = figure(WIDE, bottom=0.16)
    axes = fig.subplots()
    rows = timing[timing["intervals"] > 0] if len(timing) else timing
    if not len(rows):
        empty(axes, "no step intervals (no episode with two steps)")
        return png(fig, dpi)
    x = np.arange(len(rows))
    width = 0.35
    for offset, column, colour, name in ((-width / 2, "mean_ms", "tab:blue", "mean"),
                                         (width / 2, "p95_ms", "tab:orange", "95th percentile")):
        axes.bar(x + offset, rows[column].to_numpy(float), width=width, color=colour, label=name)
    # The longest interval is written under its worker, not drawn: one pause of seconds would flatten every bar.
    top = max(float(np.nanmax(rows["p95_ms"].to_numpy(float))), LATE_S * 1000) * 1.5
    axes.axhline(FRAME_S * 1000, color="tab:green", lw=1.2, ls="--", label="one frame at 15/s (66.7 ms)")
    axes.axhline(LATE_S * 1000, color="tab:red", lw=1.0, ls=":", label="late: over 1.5 frames (100 ms)")
    axes.set_xlim(-0.8, len(rows) - 0.2)
    axes.set_xticks(x, [_worker_label(row) for row in rows.to_dict("records")], fontsize=8)
    axes.set_ylabel("simulated time between steps (ms)")
    axes.set_ylim(0, top)
    flagged = sum(1 for flags in rows["flags"] if flags)
    axes.set_title(f"Step timing: {len(rows)} worker(s), {flagged} flagged", fontsize=10)
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(loc="upper center", fontsize=8, ncol=4)
    return png(fig, dpi)


def timing_lines(timing: "pd.DataFrame") -> list[str]:
    """One line per worker a flag was raised for, saying what it means; none when all kept time."""
    lines = []
    for row in timing.to_dict("records") if len(timing) else ():
        where = f"worker {row['worker']}" + (f" ({row['phase']})" if row.get("phase") else "")
        if "dropped frames" in row["flags"]:
            lines.append(f"{where}: {row['late_share']:.0%} of steps came over 1.5 frames late (limit "
                         f"{LATE_SHARE_LIMIT:.0%}): the simulation is short of CPU; run fewer workers per machine")
        if "slower than real time" in row["flags"]:
            lines.append(f"{where}: {row['real_time_factor']:.2f} simulated seconds per second: fewer episodes an "
                         "hour than the machine should give; run fewer workers or a larger machine")
    return lines


def exit_lines(sections: Sequence[dict[str, Any]]) -> list[str]:
    """The sections with the most exits, for the text summary."""
    ranked = sorted((s for s in sections if s["exits"]), key=lambda s: (-s["exits"], s["first"]))[:_TOP_SECTIONS]
    return [f"waypoints {s['first']}-{s['last']}: {s['exits']} exits ({s['share']:.0%})" for s in ranked]


def _worker_label(row: dict[str, Any]) -> str:
    rtf = row.get("real_time_factor")
    speed = f", {rtf:.2f}x real time" if rtf is not None and np.isfinite(rtf) else ""
    phase = f" {row['phase']}" if row.get("phase") else ""
    return (f"worker {row['worker']}{phase}\n{row['steps_per_sim_s']:.1f} steps/s, "
            f"{row['late_share']:.1%} late{speed}\nlongest {row['max_ms']:,.0f} ms")


def _borders(axes: "Axes", track: Optional["Track"]) -> None:
    if track is None:
        return
    for points in (track.outer, track.inner):
        xy = np.asarray(points, float)
        axes.plot(xy[:, 0], xy[:, 1], color="0.3", lw=1.0, zorder=2)


def _route(axes: "Axes", places: "pd.DataFrame") -> None:
    """Where the car drove, faintly, for a map without a route file."""
    seen = places[places["steps"] > 0] if len(places) else places
    if len(seen):
        axes.plot(seen["mean_x"].to_numpy(float), seen["mean_y"].to_numpy(float), color="0.8", lw=3, zorder=1)


def _place(places: "pd.DataFrame", waypoint: int) -> Optional[tuple[float, float]]:
    if not len(places) or waypoint >= len(places):
        return None
    row = places.iloc[waypoint]
    if not np.isfinite(row["mean_x"]):
        return None
    return float(row["mean_x"]), float(row["mean_y"])
