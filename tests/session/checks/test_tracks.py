"""Track library: real route files, geometry as the simulator computes it, world-name rules."""

from __future__ import annotations

import csv
import math
import struct
from pathlib import Path

import pytest

from session.checks.tracks import (
    Polyline,
    Track,
    TrackError,
    TrackLibrary,
    UnknownTrackError,
    check_world_name,
    frame_shift,
    read_npy,
    ring_is_ccw,
    signed_area,
    split_direction,
)
from tests.shared_data import TRACKS

CATALOGUE = {row["world_name"]: row for row in csv.DictReader((TRACKS / "tracks.csv").read_text().splitlines())}
NAMES = sorted(p.stem for p in TRACKS.glob("*.npy"))


@pytest.fixture(scope="module")
def library() -> TrackLibrary:
    return TrackLibrary(TRACKS)


def _write_npy(path: Path, rows, descr: str = "<f8", fortran: bool = False, version: int = 1) -> Path:
    shape = (len(rows), len(rows[0]))
    header = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    values = [v for column in zip(*rows) for v in column] if fortran else [v for row in rows for v in row]
    code = {"f8": "d", "f4": "f"}[descr[1:]]
    order = ">" if descr[0] == ">" else "<"
    body = struct.pack(f"{order}{len(values)}{code}", *values)
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    path.write_bytes(b"\x93NUMPY" + bytes([version, 0]) + size + header.encode("latin1") + body)
    return path


SQUARE = [(0, 0, 0.5, 0.5, -0.5, -0.5), (4, 0, 3.5, 0.5, 4.5, -0.5), (4, 4, 3.5, 3.5, 4.5, 4.5),
          (0, 4, 0.5, 3.5, -0.5, 4.5), (0, 0, 0.5, 0.5, -0.5, -0.5)]


# --- real tracks ------------------------------------------------------------------------------------------------


def test_the_library_lists_every_route_file(library):
    assert library.names() == sorted(NAMES, key=lambda s: (s.lower(), s))
    assert len(NAMES) == 15
    assert "reInvent2019_track" in library
    assert "reinvent2019_track" not in library  # names are case-sensitive, like routes/<name>.npy


@pytest.mark.parametrize("name", NAMES)
def test_every_real_track_loads_as_the_catalogue_describes_it(library, name):
    track = library.load(name)
    row = CATALOGUE[name]
    assert len(track.rows) == int(row["rows"])
    assert track.closed == (row["closed_loop"] == "True")
    assert len(track.view().waypoints) == int(row["waypoints_after_dedup"])
    assert len(track.view(dedup=False).waypoints) == int(row["rows"])
    assert track.length == pytest.approx(float(row["centerline_length_m"]), abs=1e-3)
    assert 0 < track.min_width <= track.median_width <= track.max_width < 2.5
    assert all(width > 0 for width in track.widths)


@pytest.mark.parametrize("name", [n for n in NAMES if split_direction(n)[1]])
def test_a_direction_suffix_matches_the_route_direction(library, name):
    assert library.load(name).direction == split_direction(name)[1]


@pytest.mark.parametrize("name", [n for n in NAMES if CATALOGUE[n]["closed_loop"] == "True"])
def test_loop_direction_matches_the_catalogue_and_the_signed_area(library, name):
    track = library.load(name)
    assert track.direction == CATALOGUE[name]["centerline_direction"]
    assert (signed_area(track.centre) > 0) == track.is_ccw


def test_the_open_straight_track_counts_as_ccw_like_in_the_simulator(library):
    track = library.load("Straight_track")
    assert not track.closed
    assert track.is_ccw is True and track.view(reversed=True).is_ccw is False
    assert track.view().waypoints[-1] != track.view().waypoints[0]


def test_waypoints_as_the_simulator_passes_them(library):
    track = library.load("reInvent2019_track")  # one duplicated centre point at row 39
    assert track.duplicate_rows == [39]
    forward = track.view().waypoints
    assert isinstance(forward, list) and all(type(p) is tuple and len(p) == 2 for p in forward)
    assert all(type(v) is float for p in forward for v in p)
    assert forward[0] == forward[-1]  # the closing vertex is included
    assert len(forward) == 154 and len(track.view(dedup=False).waypoints) == 155
    assert track.view(reversed=True).waypoints == forward[::-1]
    assert track.view(reversed=True).is_ccw is not track.view().is_ccw


def test_closest_waypoints_wrap_like_the_simulator(library):
    view = library.load("reinvent_base").view()
    n = len(view.waypoints)
    length = view.length
    last_segment = view.centre.vertex_distances[-2]
    point, _ = view.place((last_segment + length) / 2, 0.0)
    assert view.nearest(point).closest_waypoints == (n - 2, n - 1)
    point, _ = view.place(0.01, 0.0)
    assert view.nearest(point).closest_waypoints == (0, 1)
    assert view.centre.prev_next(1.0) == (n - 1, 0)


@pytest.mark.parametrize("name", NAMES)
def test_left_of_centre_follows_the_direction_of_travel(library, name):
    track = library.load(name)
    for reversed_ in (False, True):
        view = track.view(reversed=reversed_)
        for k in range(40):
            distance = view.length * (k + 0.5) / 40
            left, _ = view.place(distance, 0.15)
            right, _ = view.place(distance, -0.15)
            assert view.nearest(left).is_left_of_center is True
            assert view.nearest(right).is_left_of_center is False
            assert view.nearest(left).distance_from_center == pytest.approx(0.15, abs=0.05)


def test_a_point_on_the_road_and_off_it(library):
    view = library.load("Oval_track").view()
    inside, _ = view.place(3.0, 0.1)
    outside, _ = view.place(3.0, 1.0)
    assert view.on_road(inside) and not view.on_road(outside)


def test_geometry_matches_shapely_where_it_is_installed(library):
    import numpy as np
    import shapely.geometry as geometry
    for name in ("Bowtie_track", "reInvent2019_track", "Straight_track"):
        track = library.load(name)
        rows = np.array(track.rows)
        line = geometry.LinearRing if track.closed else geometry.LineString
        centre, inner, outer = line(rows[:, 0:2]), line(rows[:, 2:4]), line(rows[:, 4:6])
        view = track.view(dedup=False)
        for k in range(50):
            point, _ = view.place(view.length * k / 50, 0.3 * math.sin(k))
            ndist = centre.project(geometry.Point(point), normalized=True)
            near = centre.interpolate(ndist, normalized=True)
            width = inner.interpolate(inner.project(near)).distance(outer.interpolate(outer.project(near)))
            assert view.nearest(point).ndist == pytest.approx(ndist, abs=1e-12)
            assert view.nearest(point).track_width == pytest.approx(width, abs=1e-12)
        assert track.is_ccw == (centre.is_ccw if track.closed else True)


def test_the_npy_reader_agrees_with_numpy_where_it_is_installed(library):
    import numpy as np
    for name in NAMES:
        shape, values = read_npy(TRACKS / f"{name}.npy")
        array = np.load(TRACKS / f"{name}.npy")
        assert shape == array.shape and values == array.ravel().tolist()


# --- .npy edge cases --------------------------------------------------------------------------------------------


def test_the_npy_reader_handles_big_endian_float32_fortran_and_version_2(tmp_path):
    rows = [(1.5, 2.0, 3.0), (4.0, 5.25, 6.0)]
    for descr, fortran, version in (("<f8", False, 1), (">f8", False, 1), ("<f4", True, 2), (">f4", True, 1)):
        path = _write_npy(tmp_path / "t.npy", rows, descr, fortran, version)
        assert read_npy(path) == ((2, 3), [1.5, 2.0, 3.0, 4.0, 5.25, 6.0])


def test_a_synthetic_square_track(tmp_path):
    track = Track.load(_write_npy(tmp_path / "square.npy", SQUARE))
    assert track.name == "square" and track.closed and track.direction == "ccw"
    assert track.length == pytest.approx(16.0)
    # At a corner the nearest border points are not opposite each other: the simulator measures 1.118 there.
    assert track.widths == pytest.approx([math.hypot(0.5, 1.0)] * 4)
    view = track.view()
    near = view.nearest((2.0, 0.3))
    assert near.distance_from_center == pytest.approx(0.3) and near.track_width == pytest.approx(1.0)
    assert near.is_left_of_center is True and near.closest_waypoints == (0, 1)
    assert view.nearest((2.0, -0.3)).is_left_of_center is False
    assert ring_is_ccw([(0, 0), (0, 4), (4, 4), (4, 0), (0, 0)]) is False


@pytest.mark.parametrize("content, message", [
    (b"not an array", "not a .npy file"),
    (b"\x93NUMPY\x09\x00", "not a .npy file"),
])
def test_unreadable_files_raise_track_error(tmp_path, content, message):
    path = tmp_path / "bad.npy"
    path.write_bytes(content)
    with pytest.raises(TrackError, match=message):
        Track.load(path)


def test_wrong_shapes_and_values_raise_track_error(tmp_path):
    with pytest.raises(TrackError, match=r"shape \(N, 6\)"):
        Track.load(_write_npy(tmp_path / "a.npy", [(0.0, 1.0), (2.0, 3.0), (4.0, 5.0)]))
    with pytest.raises(TrackError, match="at least 3 rows"):
        Track.load(_write_npy(tmp_path / "b.npy", SQUARE[:2]))
    with pytest.raises(TrackError, match="NaN"):
        Track.load(_write_npy(tmp_path / "c.npy", [SQUARE[0], (math.nan,) * 6, SQUARE[2]]))
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 6), }".ljust(117) + "\n"
    (tmp_path / "d.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
                                     + bytes(8 * 18))
    with pytest.raises(TrackError, match="float64"):
        Track.load(tmp_path / "d.npy")


def test_a_polyline_projects_and_interpolates():
    line = Polyline([(0, 0), (2, 0), (2, 2)])
    assert line.length == 4.0
    assert line.project((1, 1)) == pytest.approx(1.0)
    assert line.project((3, 1), normalized=True) == pytest.approx(0.75)
    assert line.interpolate(3.0) == (2.0, 1.0)
    assert line.interpolate(9.0) == (2.0, 2.0)


# --- world names ------------------------------------------------------------------------------------------------


def test_a_valid_world_name_has_no_problem(library):
    assert check_world_name(library, "reInvent2019_track") == []
    assert check_world_name(library, "2024_reinvent_champ", clockwise=True) == []
    assert library.resolve("2024_reinvent_champ", clockwise=False) == "2024_reinvent_champ_ccw"


@pytest.mark.parametrize("world_name, kwargs, expected", [
    ("reinvent2019_track", {}, "did you mean reInvent2019_track"),
    ("2024_reinvent_champ", {}, "exists only with a direction: 2024_reinvent_champ_ccw (counter-clockwise) or "
                                "2024_reinvent_champ_cw (clockwise)"),
    ("2022_reinvent_champ", {}, "exists only with a direction: 2022_reinvent_champ_ccw (counter-clockwise)"),
    ("reinvent_base_cw", {}, "this track exists as reinvent_base (drive the base route the other way with "
                             "DR_TRAIN_REVERSE_DIRECTION=True)"),
    ("reInvent2019_track.npy", {}, "give the name without .npy"),
    ("", {}, "is empty"),
    ("penbay_por", {}, "did you mean penbay_pro"),
    ("Monaco", {}, "no track named 'Monaco' in"),
    ("../tracks/reinvent_base", {}, "no track named"),
    (" reinvent_base", {}, "has surrounding spaces"),
    ("2024_reinvent_champ_cw", {"clockwise": True}, "already names a direction"),
    ("reinvent_base", {"clockwise": True}, "this track exists as reinvent_base"),
])
def test_world_name_problems(library, world_name, kwargs, expected):
    problems = check_world_name(library, world_name, **kwargs)
    assert len(problems) == 1 and problems[0].is_error
    assert problems[0].file == "run.env" and problems[0].where == "DR_WORLD_NAME"
    assert expected in problems[0].message


def test_unknown_track_error_carries_suggestions(library):
    with pytest.raises(UnknownTrackError) as raised:
        library.load("reinvent_Base")
    assert raised.value.suggestions[0] == "reinvent_base"
    assert library.directions("2024_reinvent_champ") == {"ccw": "2024_reinvent_champ_ccw",
                                                         "cw": "2024_reinvent_champ_cw"}


def test_a_route_running_against_its_suffix_is_flagged(tmp_path):
    clockwise = [SQUARE[i] for i in (0, 3, 2, 1, 4)]
    _write_npy(tmp_path / "square_ccw.npy", clockwise)
    problems = check_world_name(TrackLibrary(tmp_path), "square_ccw")
    assert [p.severity for p in problems] == ["warning"]
    assert "named counter-clockwise but its route runs clockwise" in problems[0].message


def test_a_missing_track_directory_is_a_track_error(tmp_path):
    with pytest.raises(TrackError, match="no such track directory"):
        TrackLibrary(tmp_path / "nowhere").names()
    [problem] = check_world_name(TrackLibrary(tmp_path / "nowhere"), "reinvent_base")
    assert problem.is_error and "no track directory at" in problem.message


def test_split_direction():
    assert split_direction("2024_reinvent_champ_cw") == ("2024_reinvent_champ", "cw")
    assert split_direction("arctic_open_ccw") == ("arctic_open", "ccw")
    assert split_direction("reinvent_base") == ("reinvent_base", None)
    assert split_direction("_cw") == ("_cw", None)  # a bare suffix is a name, not a direction


def test_a_base_route_moved_into_a_directional_frame_lies_on_that_route(library):
    """The simulator's _cw/_ccw routes are centred on the origin; reInvent2019_track's base route is not."""
    base, clockwise = library.load("reInvent2019_track"), library.load("reInvent2019_track_cw")
    assert max(base.view().centre.distance(p) for p in clockwise.centre) > 4  # as the file lies
    dx, dy = frame_shift(base, "reInvent2019_track_cw")
    assert (round(dx, 2), round(dy, 2)) == (-4.32, -3.17)
    moved = base.moved(dx, dy)
    assert moved.name == base.name and moved.length == pytest.approx(base.length)
    for mine, theirs in ((moved.view().centre, clockwise.centre), (moved.view().inner, clockwise.inner),
                         (moved.view().outer, clockwise.outer)):
        assert max(mine.distance(p) for p in theirs) < 0.02


def test_routes_in_one_frame_are_not_moved_and_a_base_frame_is_unknown_from_a_variant(library):
    counter = library.load("2024_reinvent_champ_ccw")
    assert frame_shift(counter, "2024_reinvent_champ_cw") == (0.0, 0.0)  # both directions share the frame
    assert frame_shift(library.load("penbay_pro"), "penbay_pro_cw") == (0.0, 0.0)  # a base already centred
    assert frame_shift(library.load("reInvent2019_track_cw"), "reInvent2019_track") is None
