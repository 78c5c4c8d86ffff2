"""The track a report draws: `--track`, else the world the sources name, else a guess from the car's path.

Without a route file the path is drawn without borders and a note says why; with only another variant's route
(`_cw`/`_ccw`/base), that route is moved into the world's frame (session.checks.tracks.frame_shift) and drawn if
the path fits it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from session.checks.tracks import Track, TrackError, TrackLibrary, UnknownTrackError, frame_shift, split_direction
from session.checks.validate import HOST_TRACKS_DIR
from session.insight.report_model import ReportError, TrackChoice

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

GUESS_SHARE = 0.9  # of the car's positions on a route's road, for the route to be guessed as the track
FIT_SHARE = 0.5  # ... for another variant's route to be drawn (a route in another frame holds next to none)


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


def track_library(tracks: Optional[Path]) -> Optional["TrackLibrary"]:
    return TrackLibrary(Path(tracks)) if tracks is not None and Path(tracks).is_dir() else None


def _spread(n: int, k: int) -> Iterable[int]:
    return range(n) if n <= k else (i * (n - 1) // (k - 1) for i in range(k))
