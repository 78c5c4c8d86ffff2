"""The report's pictures: PNG bytes from the loader's tables, drawn with matplotlib's Agg canvas on Figures of
their own (no pyplot, no global state). Sizes in inches and the dpi are fixed and every series is sorted, so the
same data gives the same bytes; matplotlib is imported only when a report is drawn.

- progress.png: mean reward, mean progress and completion rate per iteration (with the trainer's evaluation of
  each checkpoint when the metrics JSON is there); an evaluation: reward and progress per trial;
- track.png: the fastest laps (or the furthest episode) on the track's borders, coloured by commanded speed;
- actions.png: how often each discrete action was taken, or where the continuous steering/speed choices fell;
- laps.png: the lap times of completed laps by iteration, and their spread;
- workers.png: the workers side by side (progress per iteration, completion rate and mean progress).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from session.insight.report_model import EVALUATION, Report
from session.insight.report_progress import quiet

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from session.checks.tracks import Track

WIDE = (10.0, 6.0)  # inches
SQUARE = (9.0, 7.5)
MIN_HISTOGRAM = 10  # laps; fewer are drawn as dots
MAX_POINTS = 20_000  # per-episode scatters beyond this are thinned evenly (the picture stays the same)
_SPEED_MAP = "plasma"


@dataclass(frozen=True)
class Plot:
    name: str  # file name
    title: str
    caption: str  # one sentence for the page: what is drawn, from what
    png: bytes


class Plots(list[Plot]):
    """Plots in page order that tell `drew` of each one added, for a progress display (a plot is a fifth of a
    second at a million steps)."""

    def __init__(self, drew: Callable[[str], None]) -> None:
        super().__init__()
        self._drew = drew

    def append(self, plot: Plot) -> None:
        super().append(plot)
        self._drew(plot.name)


def render(report: "Report", *, dpi: int = 100, laps: int = 1, drew: Callable[[str], None] = quiet) -> list[Plot]:
    """Every plot the report's data allows, in page order; `drew(name)` follows them (a progress display)."""
    table = report.episodes
    trainer = [(it.number, it.eval_completion) for it in report.metrics.iterations
               if it.eval_completion is not None] if report.metrics else []
    plots = Plots(drew)
    if report.phase == EVALUATION:
        plots.append(Plot("progress.png", "Reward and progress per trial",
                          "Each evaluation trial's total reward and progress (percent of a lap).",
                          trials_plot(table, dpi=dpi)))
    else:
        plots.append(Plot("progress.png", "Reward and completion per iteration",
                          "Mean reward per episode, mean progress and the share of episodes that completed a lap, "
                          "per training iteration (the checkpoint that played them)"
                          + ("; the trainer's evaluation of each checkpoint from the training metrics JSON."
                             if report.metrics else "."),
                          progress_plot(report.numbers["iterations"], table, dpi=dpi, trainer=trainer)))
    if report.numbers_from != "trace":
        return list(plots)
    chosen = report.best_laps(laps)
    runs = [(_lap_label(row), report.steps[report.steps["unique_episode"] == row.unique_episode])
            for row in chosen.itertuples()]
    if len(chosen) and chosen["complete"].any():
        what = "The fastest completed lap" if len(runs) == 1 else f"The {len(runs)} fastest completed laps"
    else:
        what = "No lap was completed: the episode that got furthest"
    plots.append(Plot("track.png", "Path on the track", f"{what}, coloured by the commanded speed.",
                      track_plot(runs, report.track.track, note=report.track.note, title=report.track.name, dpi=dpi)))
    steps = report.steps[report.steps["phase"] == report.phase]
    plots.append(Plot("actions.png", "Action-space use", "Steps per action the model chose.",
                      actions_plot(steps, report.actions, dpi=dpi)))
    plots.append(Plot("laps.png", "Lap times", "The time of every completed lap and how they spread.",
                      laps_plot(table, report.phase, dpi=dpi)))
    plots.append(Plot("workers.png", "Workers compared",
                      "Each simulation worker's mean progress per iteration, completion rate and mean progress.",
                      workers_plot(table, dpi=dpi)))
    return list(plots)


# --- the plots -----------------------------------------------------------------------------------------------------


def progress_plot(rows: Sequence[dict[str, Any]], episodes: "pd.DataFrame", *, dpi: int = 100,
                  trainer: Sequence[tuple[int, float]] = ()) -> bytes:
    """`rows`: per iteration `iteration`, `mean_reward`, `mean_progress` (%) and `completion_rate` (0-1), as
    summary() gives them; `episodes`: the per-episode table, drawn faintly behind the means; `trainer`:
    (iteration, mean progress % of the trainer's evaluation of that checkpoint)."""
    fig = figure(WIDE, hspace=0.3)
    top, bottom = fig.subplots(2, 1, sharex=True)
    rows = sorted(rows, key=lambda row: row["iteration"])
    x = np.array([row["iteration"] for row in rows], float)
    if len(episodes):
        thin = _thin(len(episodes))
        top.scatter(episodes["iteration"].to_numpy()[thin], episodes["reward"].to_numpy()[thin], s=4,
                    color="0.75", label="one episode", rasterized=True, zorder=1)
        bottom.scatter(episodes["iteration"].to_numpy()[thin], episodes["progress"].to_numpy()[thin], s=4,
                       color="0.8", label="one episode", rasterized=True, zorder=1)
    top.plot(*gapped(x, per_row_values(rows, "mean_reward")), marker="o", ms=3, color="tab:blue", label="mean reward",
             zorder=3)
    top.set_ylabel("reward per episode")
    top.set_title("Reward per iteration")
    bottom.plot(*gapped(x, per_row_values(rows, "mean_progress")), marker="o", ms=3, color="tab:green",
                label="mean progress", zorder=3)
    bottom.plot(*gapped(x, per_row_values(rows, "completion_rate", 100.0)), marker="s", ms=3, color="tab:orange",
                label="episodes completing a lap", zorder=3)
    if trainer:
        ordered = sorted(trainer)
        bottom.plot([n for n, _ in ordered], [value for _, value in ordered], marker="^", ms=3, color="tab:purple",
                    label="trainer's evaluation of the checkpoint (progress)", zorder=3)
    bottom.set_ylim(0, 105)
    bottom.set_ylabel("percent (%)")
    bottom.set_xlabel("iteration (checkpoint)")
    bottom.set_title("Completion per iteration")
    _integer_ticks(bottom)
    for axes in (top, bottom):
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", fontsize=8)
    if not rows and not trainer:
        empty(top, "no iterations")
    return png(fig, dpi)


def trials_plot(episodes: "pd.DataFrame", *, dpi: int = 100) -> bytes:
    """An evaluation's trials in order: total reward and progress of each, with how often each went off track or
    crashed."""
    fig = figure(WIDE, hspace=0.3)
    top, bottom = fig.subplots(2, 1, sharex=True)
    table = episodes.sort_values(["unique_episode"], kind="stable")
    x = np.arange(1, len(table) + 1)
    complete = table["complete"].to_numpy(bool)
    colours = np.where(complete, "tab:green", "tab:red")
    top.bar(x, table["reward"].to_numpy(float), color="tab:blue")
    top.set_ylabel("reward per trial")
    top.set_title("Reward per trial")
    bottom.bar(x, table["progress"].to_numpy(float), color=colours)
    for position, off, crashed in zip(x, table["off_track"].to_numpy(int), table["crashed"].to_numpy(int)):
        said = ", ".join(text for n, text in ((off, f"{off} off track"), (crashed, f"{crashed} crashed")) if n)
        if said:  # with resets allowed a trial goes on after each; the count is what it cost
            bottom.text(position, 50, said, ha="center", va="center", rotation=90, fontsize=8, color="white")
    bottom.set_ylim(0, 105)
    bottom.set_ylabel("progress (%)")
    bottom.set_xlabel("trial (green: lap completed)")
    bottom.set_title("Progress per trial")
    _integer_ticks(bottom)
    for axes in (top, bottom):
        axes.grid(True, axis="y", alpha=0.3)
    if not len(table):
        empty(top, "no trials")
    return png(fig, dpi)


def track_plot(runs: Sequence[tuple[str, "pd.DataFrame"]], track: Optional["Track"], *, note: str = "",
               title: Optional[str] = None, dpi: int = 100) -> bytes:
    """The borders of `track` (none when it is None) and each run's path (label, its steps in order) coloured
    by commanded speed, with a colour bar; `note` is written under the drawing."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    fig = figure(SQUARE, left=0.08, right=0.97, bottom=0.1)
    axes = fig.subplots()
    axes.set_aspect("equal", adjustable="datalim")
    if track is not None:
        for points, style in ((track.outer, dict(color="0.2", lw=1.4, label="borders")),
                              (track.inner, dict(color="0.2", lw=1.4)),
                              (track.centre, dict(color="0.6", lw=0.8, ls="--", label="centre line"))):
            xy = np.asarray(points, float)
            axes.plot(xy[:, 0], xy[:, 1], **style)  # type: ignore[arg-type]  # matplotlib's keywords, mixed types
    speeds = [run["speed"].to_numpy(float) for _, run in runs if len(run)]
    finite = np.concatenate(speeds) if speeds else np.zeros(0)
    finite = finite[np.isfinite(finite)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    norm = Normalize(low, high)
    collection = None
    for index, (_label, run) in enumerate(runs):
        xy = run[["x", "y"]].to_numpy(float)
        if len(xy) < 2:
            continue
        segments = np.stack([xy[:-1], xy[1:]], axis=1)
        collection = LineCollection(segments,  # type: ignore[arg-type]  # an (n, 2, 2) array, as it takes
                                    cmap=_SPEED_MAP, norm=norm, linewidths=3.0 if index == 0 else 1.6,
                                    alpha=1.0 if index == 0 else 0.6, zorder=3 + (len(runs) - index))
        collection.set_array(run["speed"].to_numpy(float)[:-1])
        axes.add_collection(collection)
        if index == 0:
            axes.plot(xy[0, 0], xy[0, 1], marker="o", color="black", ms=7, zorder=10, ls="none", label="start")
            axes.plot(xy[-1, 0], xy[-1, 1], marker="X", color="black", ms=7, zorder=10, ls="none", label="end")
    if collection is not None:
        from matplotlib.cm import ScalarMappable

        fig.colorbar(ScalarMappable(norm, _SPEED_MAP), ax=axes, shrink=0.8, label="commanded speed (m/s)")
    else:
        empty(axes, "no path")
    axes.autoscale_view()
    axes.set_xlabel("x (m)")
    axes.set_ylabel("y (m)")
    more = f"; {len(runs) - 1} more, thinner" if len(runs) > 1 else ""
    axes.set_title(f"{title or 'track unknown'}\n{runs[0][0] if runs else ''}{more}", fontsize=10)
    axes.grid(True, alpha=0.2)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper right", fontsize=8)
    if note:
        fig.supxlabel(_wrap(note, 110), fontsize=8, color="tab:red")
    return png(fig, dpi)


def actions_plot(steps: "pd.DataFrame", space: Optional[Sequence[dict[str, Any]]] = None, *,
                 dpi: int = 100) -> bytes:
    """Discrete action spaces: the share of steps per action (labelled with its steering and speed), every action
    of `space` (model_metadata.json's) included, an unused one marked unused; continuous ones (action -1): a 2-D
    histogram of the commanded steering angle and speed."""
    fig = figure(WIDE, bottom=0.15)
    axes = fig.subplots()
    actions = steps["action"].to_numpy()
    discrete = actions >= 0
    if not len(steps):
        empty(axes, "no steps")
    elif discrete.any():
        counts = action_counts(steps[discrete], space)
        used = int((counts["n"] > 0).sum())
        share = counts["n"].to_numpy(float) * 100 / counts["n"].sum()
        x = np.arange(len(counts))
        axes.bar(x, share, color="tab:blue")
        for position, n in zip(x, counts["n"].to_numpy(float)):
            if n == 0:
                axes.text(float(position), 0, "unused", rotation=90, ha="center", va="bottom", fontsize=8,
                          color="tab:red")
        small = len(counts) > 12
        axes.set_xticks(x, [f"{a}\n{s:+.0f}°\n{v:.2g} m/s" if not small else f"{a}\n{s:+.0f}°\n{v:.2g}"
                            for a, s, v in zip(counts.index, counts["steer"], counts["speed"])],
                        fontsize=8)
        axes.set_xlabel("action: index, steering angle (°), speed (m/s)")
        axes.set_ylabel("share of steps (%)")
        of = f" of {len(counts)}" if len(counts) != used else ""
        axes.set_title(f"Discrete action space: {used}{of} actions used in {int(discrete.sum()):,} steps")
        axes.grid(True, axis="y", alpha=0.3)
        if (~discrete).any():
            axes.text(0.99, 0.98, f"{int((~discrete).sum()):,} continuous steps not shown", ha="right", va="top",
                      transform=axes.transAxes, fontsize=8)
    else:
        steer, speed = steps["steering_angle"].to_numpy(float), steps["speed"].to_numpy(float)
        ok = np.isfinite(steer) & np.isfinite(speed)
        steer, speed = steer[ok], speed[ok]
        steer_edges = np.linspace(min(steer.min(), -1.0), max(steer.max(), 1.0), 31) if len(steer) \
            else np.linspace(-30, 30, 31)
        speed_edges = np.linspace(min(speed.min(), 0.0), max(speed.max(), 0.5), 21) if len(speed) \
            else np.linspace(0, 4, 21)
        counts, _, _ = np.histogram2d(steer, speed, bins=[steer_edges, speed_edges])
        mesh = axes.pcolormesh(steer_edges, speed_edges, np.ma.masked_equal(counts.T, 0), cmap="viridis")
        fig.colorbar(mesh, ax=axes, label="steps")
        axes.set_xlabel("steering angle (degrees, + is left)")
        axes.set_ylabel("speed (m/s)")
        axes.set_title(f"Continuous action space: {len(steer):,} steps by commanded steering and speed")
    return png(fig, dpi)


def action_counts(chosen: "pd.DataFrame", space: Optional[Sequence[dict[str, Any]]] = None) -> "pd.DataFrame":
    """Per action index: steps `n` that chose it, its `steer` and `speed` (the action space's when given, else the
    median commanded); with `space`, every declared action is a row, 0 steps where none chose it."""
    counts = chosen.groupby("action", sort=True).agg(n=("action", "size"), steer=("steering_angle", "median"),
                                                     speed=("speed", "median"))
    if not space:
        return counts
    import pandas as pd

    declared = pd.DataFrame([{"action": a["index"], "steer": a["steering_angle"], "speed": a["speed"]}
                             for a in space]).set_index("action")
    joined = counts[["n"]].join(declared, how="outer")
    joined["steer"] = joined["steer"].fillna(counts["steer"])  # an index the space does not declare
    joined["speed"] = joined["speed"].fillna(counts["speed"])
    joined["n"] = joined["n"].fillna(0).astype("int64")
    return joined


def laps_plot(episodes: "pd.DataFrame", phase: str = "training", *, dpi: int = 100) -> bytes:
    """Lap times of completed laps: by iteration (by trial for an evaluation) with the best per iteration, and
    their histogram."""
    fig = figure(WIDE, wspace=0.15)
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    table = episodes.sort_values(["unique_episode"], kind="stable")
    laps = table[table["complete"]] if len(table) else table
    if not len(laps):
        empty(left, f"no completed laps in {len(table):,} episodes")
        empty(right, "")
    else:
        if phase == "training":
            x = laps["iteration"].to_numpy(float)
            left.set_xlabel("iteration (checkpoint)")
        else:
            x = np.flatnonzero(table["complete"].to_numpy(bool)).astype(float) + 1
            left.set_xlabel("trial")
        times = laps["lap_time"].to_numpy(float)
        left.scatter(x, times, s=14, color="tab:blue", label="completed lap", zorder=2)
        if phase == "training":
            best = laps.groupby("iteration", sort=True)["lap_time"].min()
            left.plot(*gapped(best.index.to_numpy(float), best.to_numpy(float)), color="tab:orange", marker=".",
                      label="fastest of the iteration", zorder=3)
        fastest = int(np.argmin(times))
        left.scatter([x[fastest]], [times[fastest]], s=120, marker="*", color="tab:red", zorder=4,
                     label=f"fastest: {times[fastest]:.3f} s")
        left.legend(loc="best", fontsize=8)
        _integer_ticks(left)
        if len(times) >= MIN_HISTOGRAM:
            bins = int(min(20, max(5, len(times) // 3)))
            right.hist(times, bins=bins, color="tab:blue", orientation="horizontal")
            right.set_xlabel("laps")
        else:  # a histogram of a few laps says nothing a dot does not
            right.scatter(np.zeros(len(times)), times, s=20, color="tab:blue")
            right.set_xticks([])
            empty(right, f"{len(times)} laps: too few\nfor a histogram")
        right.set_ylim(left.get_ylim())
    left.set_ylabel("lap time (s)")
    left.set_title(f"{len(laps):,} completed laps")
    right.set_title("Spread")
    for axes in (left, right):
        axes.grid(True, alpha=0.3)
    return png(fig, dpi)


def workers_plot(episodes: "pd.DataFrame", *, dpi: int = 100) -> bytes:
    """Per worker: mean progress per iteration (one line each), and completion rate / mean progress as bars."""
    fig = figure(WIDE, bottom=0.12, wspace=0.2)
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    workers = sorted(int(w) for w in episodes["worker"].unique()) if len(episodes) else []
    for worker in workers:
        mine = episodes[episodes["worker"] == worker]
        means = mine.groupby("iteration", sort=True)["progress"].mean()
        left.plot(*gapped(means.index.to_numpy(float), means.to_numpy(float)), marker="o", ms=3,
                  label=f"worker {worker}")
    left.set_xlabel("iteration (checkpoint)")
    left.set_ylabel("mean progress (%)")
    left.set_ylim(0, 105)
    left.set_title("Mean progress per iteration")
    _integer_ticks(left)
    if workers:
        left.legend(loc="upper left", fontsize=8)
        x = np.arange(len(workers))
        by_worker = episodes.groupby("worker", sort=True)
        rate = by_worker["complete"].mean().to_numpy(float) * 100
        progress = by_worker["progress"].mean().to_numpy(float)
        count = by_worker.size().to_numpy()
        right.bar(x - 0.2, progress, width=0.4, color="tab:green", label="mean progress")
        right.bar(x + 0.2, rate, width=0.4, color="tab:orange", label="episodes completing a lap")
        right.set_xticks(x, [f"worker {w}\n{n:,} ep." for w, n in zip(workers, count)], fontsize=8)
        right.legend(loc="upper right", fontsize=8)
    else:
        empty(left, "no episodes")
    right.set_ylim(0, 105)
    right.set_ylabel("percent (%)")
    right.set_title("Whole run")
    for axes in (left, right):
        axes.grid(True, axis="y", alpha=0.3)
    return png(fig, dpi)


# --- helpers -------------------------------------------------------------------------------------------------------


def figure(size: tuple[float, float], **margins: float) -> "Figure":
    """A Figure on an Agg canvas with fixed margins (fractions of the fixed size: the same at any dpi; a layout
    engine would measure every label and take as long as the drawing itself)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(**{"left": 0.08, "right": 0.97, "bottom": 0.09, "top": 0.94, **margins})
    return fig


def png(fig: "Figure", dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def per_row_values(rows: Sequence[dict[str, Any]], key: str, scale: float = 1.0) -> np.ndarray:
    return np.array([np.nan if row.get(key) is None else row[key] * scale for row in rows], float)


def gapped(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The series with a break (NaN) where iterations are missing, so a line never bridges absent data."""
    if len(x) < 2:
        return x, y
    gaps = np.flatnonzero(np.diff(x) > 1) + 1
    return np.insert(x, gaps, np.nan), np.insert(y, gaps, np.nan)


def _thin(n: int) -> np.ndarray:
    return np.arange(n) if n <= MAX_POINTS else np.linspace(0, n - 1, MAX_POINTS).astype(int)


def _integer_ticks(axes: "Axes") -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def empty(axes: "Axes", text: str) -> None:
    if text:
        axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, fontsize=12, color="0.4")


def _lap_label(row: Any) -> str:
    where = f"iteration {row.iteration}, worker {row.worker}, episode {row.episode}"
    if row.complete:
        return f"{row.lap_time:.3f} s ({where})"
    return f"{row.progress:.1f} % ({where})"


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
