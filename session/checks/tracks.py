"""The simulator's tracks: route files (`bundle/routes/<WORLD_NAME>.npy`), their geometry as the simulator
computes it, and the rules for naming one in `DR_WORLD_NAME`.

A route file is a float64 array of shape (N, 6): centre x,y | inner border x,y | outer border x,y, in metres.
A route is a closed loop when its first row equals its last row exactly. Geometry follows the simapp's
`TrackData` (shapely `project`/`interpolate` on the three lines, `prev/next` waypoints by bisecting the
waypoints' normalised distances), re-implemented in plain Python so that reading tracks needs no numpy.
"""

from __future__ import annotations

import ast
import bisect
import difflib
import math
import struct
from array import array
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from session.core.errors import DeepracerError
from session.core.problems import Problem

Point = Tuple[float, float]

CLOCKWISE_SUFFIX = "_cw"
COUNTER_CLOCKWISE_SUFFIX = "_ccw"
_NPY_MAGIC = b"\x93NUMPY"
_NPY_DTYPES = {"f8": "d", "f4": "f"}
_CHUNK = 8
CENTRED_WITHIN = 0.5  # metres: a route whose box centre is this close to the origin is centred on it


class TrackError(DeepracerError):
    """A route file that cannot be read as a track."""


class UnknownTrackError(TrackError):
    """A world name with no route file; carries the closest existing names."""

    def __init__(self, name: str, message: str, suggestions: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.suggestions = list(suggestions)


# --- .npy ---------------------------------------------------------------------------------------------------


def read_npy(path: Path) -> Tuple[Tuple[int, ...], List[float]]:
    """Shape and values (row-major) of a float `.npy` file, without numpy."""
    data = Path(path).read_bytes()
    if not data.startswith(_NPY_MAGIC) or len(data) < 10:
        raise TrackError(f"{path}: not a .npy file")
    major = data[6]
    if major == 1:
        (header_len,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif major in (2, 3):
        (header_len,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        raise TrackError(f"{path}: unsupported .npy format version {major}")
    try:
        header = ast.literal_eval(data[start:start + header_len].decode("latin1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError) as ex:
        raise TrackError(f"{path}: unreadable .npy header ({ex})") from None
    if not isinstance(descr, str) or descr[1:] not in _NPY_DTYPES or descr[0] not in "<>|=":
        raise TrackError(f"{path}: expected a float64 array, found dtype {descr!r}")
    values = array(_NPY_DTYPES[descr[1:]])
    count = math.prod(shape)
    body = data[start + header_len:]
    if len(body) != count * values.itemsize:
        raise TrackError(f"{path}: {len(body)} data bytes for shape {shape}")
    values.frombytes(body)
    if (descr[0] == ">") != (struct.pack("=H", 1) == b"\x00\x01"):
        values.byteswap()
    flat = values.tolist()
    if fortran and len(shape) == 2:
        rows, cols = shape
        flat = [flat[c * rows + r] for r in range(rows) for c in range(cols)]
    return shape, flat  # type: ignore[return-value]  # floats: only float64 arrays are read


# --- polylines (what shapely's LineString / LinearRing do for the simulator) --------------------------------


def _closest_on_segment(p: Point, a: Point, b: Point) -> Tuple[float, float]:
    """(distance from p to segment ab, fraction 0..1 of the closest point along ab)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    len2 = dx * dx + dy * dy
    if len2 == 0.0:
        return math.hypot(p[0] - a[0], p[1] - a[1]), 0.0
    r = ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2
    if r <= 0.0:
        return math.hypot(p[0] - a[0], p[1] - a[1]), 0.0
    if r >= 1.0:
        return math.hypot(p[0] - b[0], p[1] - b[1]), 1.0
    cross = (a[1] - p[1]) * dx - (a[0] - p[0]) * dy
    return abs(cross) / math.sqrt(len2), r


class Polyline:
    """A line through `coords` (a loop repeats its first point at the end), with shapely's project/interpolate."""

    def __init__(self, coords: Sequence[Point]) -> None:
        if len(coords) < 2:
            raise TrackError("a line needs at least two points")
        self.coords: Tuple[Point, ...] = tuple((float(x), float(y)) for x, y in coords)
        cumulative = [0.0]
        for a, b in zip(self.coords, self.coords[1:]):
            cumulative.append(cumulative[-1] + math.hypot(b[0] - a[0], b[1] - a[1]))
        self._cumulative = cumulative
        self.length = cumulative[-1]
        self._segments = [(a[0], a[1], b[0], b[1], b[0] - a[0], b[1] - a[1], cumulative[i],
                           cumulative[i + 1] - cumulative[i])
                          for i, (a, b) in enumerate(zip(self.coords, self.coords[1:]))]
        # Bounding boxes of runs of segments, to skip the far ones without changing which segment wins.
        self._chunks = []
        for first in range(0, len(self._segments), _CHUNK):
            points = self.coords[first: first + _CHUNK + 1]
            xs, ys = [x for x, _ in points], [y for _, y in points]
            self._chunks.append((min(xs), max(xs), min(ys), max(ys), first, min(first + _CHUNK, len(self._segments))))

    def project(self, p: Point, normalized: bool = False) -> float:
        """Distance along the line to the point nearest `p` (the first such point, as GEOS picks it)."""
        px, py = p
        bounds = []
        for xmin, xmax, ymin, ymax, _, _ in self._chunks:
            dx = xmin - px if px < xmin else px - xmax if px > xmax else 0.0
            dy = ymin - py if py < ymin else py - ymax if py > ymax else 0.0
            bounds.append(dx * dx + dy * dy)
        hint = min(range(len(bounds)), key=bounds.__getitem__)
        limit = self._scan(px, py, *self._chunks[hint][4:])[0]
        best, at = math.inf, 0.0
        for bound, chunk in zip(bounds, self._chunks):
            if bound > limit:
                continue  # every segment in it is farther than one already known
            d2, position = self._scan(px, py, chunk[4], chunk[5])
            if d2 < best:
                best, at = d2, position
        if normalized:
            return at / self.length if self.length else 0.0
        return at

    def _scan(self, px: float, py: float, first: int, end: int) -> Tuple[float, float]:
        """Smallest squared distance to segments first..end-1 (the first one on ties) and its position."""
        best, at = math.inf, 0.0
        for ax, ay, bx, by, dx, dy, start, length in self._segments[first:end]:
            len2 = dx * dx + dy * dy
            r = ((px - ax) * dx + (py - ay) * dy) / len2 if len2 else 0.0
            if r <= 0.0:
                r, d2 = 0.0, (px - ax) ** 2 + (py - ay) ** 2
            elif r >= 1.0:
                r, d2 = 1.0, (px - bx) ** 2 + (py - by) ** 2
            else:
                cross = (ay - py) * dx - (ax - px) * dy
                d2 = cross * cross / len2
            if d2 < best:
                best, at = d2, start + r * length
        return best, at

    def interpolate(self, distance: float, normalized: bool = False) -> Point:
        """The point `distance` along the line (clamped to its ends)."""
        if normalized:
            distance *= self.length
        distance = min(max(distance, 0.0), self.length)
        i = max(bisect.bisect_right(self._cumulative, distance) - 1, 0)
        if i >= len(self.coords) - 1:
            return self.coords[-1]
        segment = self._cumulative[i + 1] - self._cumulative[i]
        r = (distance - self._cumulative[i]) / segment if segment else 0.0
        a, b = self.coords[i], self.coords[i + 1]
        return (a[0] + r * (b[0] - a[0]), a[1] + r * (b[1] - a[1]))

    @property
    def vertex_distances(self) -> List[float]:
        """Distance along the line of every vertex."""
        return list(self._cumulative)

    def distance(self, p: Point) -> float:
        return min(_closest_on_segment(p, a, b)[0] for a, b in zip(self.coords, self.coords[1:]))

    @cached_property
    def vertex_ndists(self) -> List[float]:
        """Normalised distance of every vertex, the last one pinned to 1.0 (the simapp's `TrackLine.ndists`)."""
        return [self.project(p, normalized=True) for p in self.coords[:-1]] + [1.0]

    def prev_next(self, ndist: float) -> Tuple[int, int]:
        """Indices of the vertices before and after normalised distance `ndist`, wrapping like the simapp."""
        ndists = self.vertex_ndists
        next_index = bisect.bisect_right(ndists, ndist)
        prev_index = next_index - 1
        if prev_index == -1:
            prev_index = len(ndists) - 1
        if next_index == len(ndists):
            next_index = 0
        return prev_index, next_index

    def tangent(self, distance: float) -> Point:
        """Unit direction of the segment at `distance`."""
        distance = min(max(distance, 0.0), self.length)
        i = min(max(bisect.bisect_right(self._cumulative, distance) - 1, 0), len(self.coords) - 2)
        # Skip zero-length segments (duplicated points) forwards, then backwards.
        for j in list(range(i, len(self.coords) - 1)) + list(range(i - 1, -1, -1)):
            a, b = self.coords[j], self.coords[j + 1]
            norm = math.hypot(b[0] - a[0], b[1] - a[1])
            if norm:
                return ((b[0] - a[0]) / norm, (b[1] - a[1]) / norm)
        return (1.0, 0.0)


def signed_area(ring: Sequence[Point]) -> float:
    """Shoelace area of the polygon through `ring` (implicitly closed): > 0 when counter-clockwise."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(ring, list(ring[1:]) + [ring[0]]):
        total += x1 * y2 - x2 * y1
    return total / 2.0


def ring_is_ccw(ring: Sequence[Point]) -> bool:
    """GEOS' orientation test for a closed ring (first point repeated last), which shapely's `is_ccw` uses:
    the turn at the ring's highest point. Same as the sign of the area for simple rings; on self-touching
    layouts it is what the simulator sees."""
    n = len(ring) - 1
    if n < 3:
        return False
    up_hi, up_low, i_up_hi = ring[0], None, 0
    prev_y = up_hi[1]
    for i in range(1, n + 1):
        y = ring[i][1]
        if y > prev_y and y >= up_hi[1]:
            up_hi, i_up_hi, up_low = ring[i], i, ring[i - 1]
        prev_y = y
    if i_up_hi == 0 or up_low is None:
        return False
    i_down_low = i_up_hi
    while True:
        i_down_low = (i_down_low + 1) % n
        if i_down_low == i_up_hi or ring[i_down_low][1] != up_hi[1]:
            break
    down_low = ring[i_down_low]
    down_hi = ring[i_down_low - 1 if i_down_low > 0 else n - 1]
    if up_hi == down_hi:
        if up_low == up_hi or down_low == up_hi or up_low == down_low:
            return False
        turn = ((up_hi[0] - up_low[0]) * (down_low[1] - up_low[1])
                - (up_hi[1] - up_low[1]) * (down_low[0] - up_low[0]))
        return turn > 0
    return down_hi[0] - up_hi[0] < 0


def inside_ring(p: Point, ring: Sequence[Point]) -> bool:
    """Even-odd rule: is `p` inside the polygon through `ring`?"""
    x, y = p
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, list(ring[1:]) + [ring[0]]):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


# --- tracks ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nearest:
    """Where a point is relative to a track, computed as the simulator computes the reward params."""

    ndist: float                   # normalised distance along the centre line (projection)
    closest_waypoints: Tuple[int, int]
    centre: Point
    distance_from_center: float
    track_width: float
    is_left_of_center: bool


@dataclass(frozen=True)
class TrackView:
    """A track as the car drives it: forward (`.npy` order) or reversed (`REVERSE_DIR`)."""

    name: str
    reversed: bool
    closed: bool
    centre: Polyline
    inner: Polyline
    outer: Polyline
    is_ccw: bool       # the direction of travel, as the simulator's `TrackData.is_ccw`

    @property
    def length(self) -> float:
        return self.centre.length

    @property
    def waypoints(self) -> List[Point]:
        """`params['waypoints']`: centre-line vertices in driving order, closing vertex included for loops."""
        return list(self.centre.coords)

    def nearest(self, p: Point) -> Nearest:
        ndist = self.centre.project(p, normalized=True)
        centre = self.centre.interpolate(ndist, normalized=True)
        inner = self.inner.interpolate(self.inner.project(centre))
        outer = self.outer.interpolate(self.outer.project(centre))
        to_inner = math.dist(p, inner)
        to_outer = math.dist(p, outer)
        return Nearest(
            ndist=ndist,
            closest_waypoints=self.centre.prev_next(ndist),
            centre=centre,
            distance_from_center=math.dist(p, centre),
            track_width=math.dist(inner, outer),
            is_left_of_center=(to_inner < to_outer) ^ (not self.is_ccw),
        )

    def place(self, distance: float, offset: float) -> Tuple[Point, float]:
        """A point `distance` metres along the centre line and `offset` metres to its left (negative: right),
        with the heading of travel there in degrees (-180..180]."""
        cx, cy = self.centre.interpolate(distance % self.length if self.closed else distance)
        tx, ty = self.centre.tangent(distance % self.length if self.closed else distance)
        return (cx - ty * offset, cy + tx * offset), math.degrees(math.atan2(ty, tx))

    def on_road(self, p: Point) -> bool:
        """Inside the road polygon (outer border minus inner border)."""
        if self.closed:
            return inside_ring(p, self.outer.coords[:-1]) != inside_ring(p, self.inner.coords[:-1])
        return inside_ring(p, list(self.outer.coords) + list(reversed(self.inner.coords)))


@dataclass(frozen=True)
class Track:
    """One route file. `rows` are the raw (centre x, centre y, inner x, inner y, outer x, outer y) rows."""

    name: str
    rows: Tuple[Tuple[float, float, float, float, float, float], ...]
    _views: Dict[Tuple[bool, bool], TrackView] = field(default_factory=dict, init=False, compare=False, repr=False)

    @classmethod
    def load(cls, path: Path, name: Optional[str] = None) -> "Track":
        path = Path(path)
        shape, flat = read_npy(path)
        if len(shape) != 2 or shape[1] != 6:
            raise TrackError(f"{path}: expected an array of shape (N, 6), found {shape}")
        if shape[0] < 3:
            raise TrackError(f"{path}: a track needs at least 3 rows, found {shape[0]}")
        if not all(math.isfinite(v) for v in flat):
            raise TrackError(f"{path}: contains NaN or infinite coordinates")
        rows = tuple(tuple(flat[i:i + 6]) for i in range(0, len(flat), 6))
        return cls(name=name or path.stem, rows=rows)  # type: ignore[arg-type]

    @property
    def closed(self) -> bool:
        """The simulator builds a loop exactly when the first row equals the last."""
        return self.rows[0] == self.rows[-1]

    @property
    def centre(self) -> List[Point]:
        return [(r[0], r[1]) for r in self.rows]

    @property
    def inner(self) -> List[Point]:
        return [(r[2], r[3]) for r in self.rows]

    @property
    def outer(self) -> List[Point]:
        return [(r[4], r[5]) for r in self.rows]

    @property
    def duplicate_rows(self) -> List[int]:
        """Rows whose centre point repeats the previous row's."""
        return [i for i in range(1, len(self.rows)) if self.rows[i][:2] == self.rows[i - 1][:2]]

    def view(self, reversed: bool = False, dedup: bool = True) -> TrackView:
        """The track as driven. `dedup` drops rows that repeat the previous centre point, as the community
        simapp does since 6.0.2 (older simapps keep them, so later waypoint indices shift by one)."""
        key = (reversed, dedup)
        if key not in self._views:
            dropped = set(self.duplicate_rows) if dedup else set()
            rows = [row for i, row in enumerate(self.rows) if i not in dropped]
            if reversed:
                rows.reverse()
            self._views[key] = TrackView(
                name=self.name,
                reversed=reversed,
                closed=self.closed,
                centre=Polyline([(r[0], r[1]) for r in rows]),
                inner=Polyline([(r[2], r[3]) for r in rows]),
                outer=Polyline([(r[4], r[5]) for r in rows]),
                is_ccw=self._forward_is_ccw ^ reversed,
            )
        return self._views[key]

    @cached_property
    def _forward_is_ccw(self) -> bool:
        # The simulator takes the orientation of the forward centre line; an open route counts as ccw.
        return ring_is_ccw(self.centre) if self.closed else True

    @property
    def is_ccw(self) -> bool:
        """Direction of the `.npy` order as the simulator decides it (an open route counts as ccw)."""
        return self._forward_is_ccw

    @property
    def direction(self) -> str:
        """`"ccw"` or `"cw"`: the direction of the `.npy` order, what a `_ccw`/`_cw` suffix promises."""
        return "ccw" if self.is_ccw else "cw"

    @property
    def length(self) -> float:
        """Centre-line length in metres (`params['track_length']`)."""
        return self.view().length

    @property
    def bounds_centre(self) -> Point:
        """The centre of the box around the centre line and both borders."""
        xs = [v for r in self.rows for v in r[0::2]]
        ys = [v for r in self.rows for v in r[1::2]]
        return ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)

    def moved(self, dx: float, dy: float) -> "Track":
        """The same route shifted by (dx, dy) metres."""
        rows = tuple((r[0] + dx, r[1] + dy, r[2] + dx, r[3] + dy, r[4] + dx, r[5] + dy) for r in self.rows)
        return Track(name=self.name, rows=rows)

    @cached_property
    def widths(self) -> List[float]:
        """`params['track_width']` at every waypoint: the distance between the inner and outer border points
        nearest to the centre point, as the simulator measures it at the car's projection."""
        view = self.view()
        return [view.nearest(p).track_width for p in view.centre.coords[:-1 if self.closed else None]]

    @property
    def min_width(self) -> float:
        return min(self.widths)

    @property
    def max_width(self) -> float:
        return max(self.widths)

    @property
    def median_width(self) -> float:
        ordered = sorted(self.widths)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


# --- the library of route files and world names ---------------------------------------------------------------


def split_direction(world_name: str) -> Tuple[str, Optional[str]]:
    """`("2024_reinvent_champ", "cw")` for `2024_reinvent_champ_cw`; `(name, None)` without a suffix."""
    for suffix in (COUNTER_CLOCKWISE_SUFFIX, CLOCKWISE_SUFFIX):
        if world_name.endswith(suffix) and len(world_name) > len(suffix):
            return world_name[: -len(suffix)], suffix[1:]
    return world_name, None


def frame_shift(track: Track, world_name: str) -> Optional[Point]:
    """How far to move a route file of another variant of `world_name`'s track to lie where that world's own
    route lies: (0, 0) between variants in one frame, None when the route cannot tell.

    The simulator's `_cw`/`_ccw` routes are their layout centred on the origin (every one of simapp 6.0.4's
    127 routes, within 0.15 m), and so are most base routes; a few older bases sit elsewhere
    (reInvent2019_track, reInvent2019_wide and 2022_summit_speedway, by 3 to 5 m). So such a base drawn for a
    directional world is moved to the origin; a directional route drawn for a base world is in its frame only
    if that base is centred, which only the base's own file could say."""
    wanted, drawn = split_direction(world_name)[1], split_direction(track.name)[1]
    if (wanted is None) == (drawn is None):
        return (0.0, 0.0)
    if wanted is not None:
        cx, cy = track.bounds_centre
        return (-cx, -cy) if math.hypot(cx, cy) > CENTRED_WITHIN else (0.0, 0.0)
    return None


class TrackLibrary:
    """The route files in one directory: the simulator image's `bundle/routes`, or a `--tracks DIR`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._cache: Dict[str, Track] = {}

    def names(self) -> List[str]:
        """Every world name, sorted case-insensitively."""
        if not self.directory.is_dir():
            raise TrackError(f"{self.directory}: no such track directory")
        return sorted((p.stem for p in self.directory.glob("*.npy") if p.is_file()), key=lambda s: (s.lower(), s))

    def __contains__(self, name: object) -> bool:
        return (isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name
                and not name.startswith(".") and (self.directory / f"{name}.npy").is_file())

    def load(self, name: str) -> Track:
        """The track `name` (exact, case-sensitive, as the simulator opens `routes/<name>.npy`)."""
        if name not in self:
            raise UnknownTrackError(name, self._unknown_message(name), self.suggestions(name))
        if name not in self._cache:
            self._cache[name] = Track.load(self.directory / f"{name}.npy", name)
        return self._cache[name]

    def directions(self, world_name: str) -> Dict[str, str]:
        """The existing variants of a track: e.g. `{"": "reInvent2019_track", "ccw": ..., "cw": ...}`."""
        base, _ = split_direction(world_name)
        found = {}
        for key, name in (("", base), ("ccw", base + COUNTER_CLOCKWISE_SUFFIX), ("cw", base + CLOCKWISE_SUFFIX)):
            if name in self:
                found[key] = name
        return found

    def resolve(self, world_name: str, clockwise: Optional[bool] = None) -> str:
        """The route the simulator will open for `WORLD_NAME` (plus `TRACK_DIRECTION_CLOCKWISE` when given,
        which appends `_cw`/`_ccw`), or UnknownTrackError."""
        name = world_name
        if clockwise is not None:
            name += CLOCKWISE_SUFFIX if clockwise else COUNTER_CLOCKWISE_SUFFIX
        if name in self:
            return name
        raise UnknownTrackError(name, self._unknown_message(name), self.suggestions(name))

    def suggestions(self, name: str, n: int = 3) -> List[str]:
        """Existing names the user probably meant: same name in other case, direction variants, close matches."""
        names = self.names()
        by_lower: Dict[str, str] = {}
        for existing in names:
            by_lower.setdefault(existing.lower(), existing)
        wanted = name[:-4] if name.endswith(".npy") else name
        found: List[str] = []

        def add(candidate: Optional[str]) -> None:
            if candidate and candidate != name and candidate not in found:
                found.append(candidate)

        add(wanted if wanted in self else by_lower.get(wanted.lower()))
        base, _ = split_direction(wanted)
        for variant in ("", "ccw", "cw"):
            add(by_lower.get((base + ("_" + variant if variant else "")).lower()))
        for match in difflib.get_close_matches(wanted.lower(), list(by_lower), n=n, cutoff=0.6):
            add(by_lower[match])
        return found[:n]

    def _unknown_message(self, name: str) -> str:
        base, direction = split_direction(name)
        variants = self.directions(name)
        if not name:
            return "is empty; set it to a track name, e.g. reInvent2019_track"
        if name.endswith(".npy"):
            return f"no track named {name!r}: give the name without .npy"
        if direction is None and ("ccw" in variants or "cw" in variants) and "" not in variants:
            choices = " or ".join(f"{variants[d]} ({_DIRECTION_WORDS[d]})" for d in ("ccw", "cw") if d in variants)
            return f"no track named {name!r}: it exists only with a direction: {choices}"
        if direction is not None and variants:
            others = ", ".join(variants.values())
            hint = ""
            if "" in variants:
                hint = " (drive the base route the other way with DR_TRAIN_REVERSE_DIRECTION=True)"
            return f"no track named {name!r}; this track exists as {others}{hint}"
        suggestions = self.suggestions(name)
        if suggestions:
            return f"no track named {name!r}; did you mean {', '.join(suggestions)}?"
        return f"no track named {name!r} in {self.directory}"


_DIRECTION_WORDS = {"ccw": "counter-clockwise", "cw": "clockwise"}


def check_world_name(library: TrackLibrary, world_name: str, *, clockwise: Optional[bool] = None,
                     file: str = "run.env", key: str = "DR_WORLD_NAME") -> List[Problem]:
    """Problems with a `DR_WORLD_NAME` value: a route must exist under exactly that name (names are
    case-sensitive; some tracks exist only as `_ccw`/`_cw`). `clockwise` mirrors `TRACK_DIRECTION_CLOCKWISE`,
    which makes the simulator append the suffix itself."""
    name = world_name.strip()
    if name != world_name:
        return [Problem(file, key, f"{world_name!r} has surrounding spaces; the simulator would look for "
                                   f"routes/{world_name}.npy")]
    if clockwise is not None and split_direction(name)[1] is not None:
        return [Problem(file, key, f"{name!r} already names a direction; with TRACK_DIRECTION_CLOCKWISE the "
                                   f"simulator appends another (_cw/_ccw); give the base name")]
    if not library.directory.is_dir():
        return [Problem(file, key, f"cannot check {name!r}: no track directory at {library.directory}")]
    try:
        resolved = library.resolve(name, clockwise)
        track = library.load(resolved)
    except UnknownTrackError as ex:
        return [Problem(file, key, str(ex))]
    except TrackError as ex:
        return [Problem(file, key, f"{name!r}: the route file cannot be read: {ex}")]
    problems: List[Problem] = []
    suffix = split_direction(resolved)[1]
    if suffix is not None and suffix != track.direction:
        problems.append(Problem(file, key, f"{resolved!r} is named {_DIRECTION_WORDS[suffix]} but its route runs "
                                           f"{_DIRECTION_WORDS[track.direction]}", "warning"))
    return problems
