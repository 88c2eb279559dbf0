"""Labelling rule: Real only for a same-polarity truth source within 1 px; bogus kinds; origins."""

from __future__ import annotations

import numpy as np

from realbogus.sim.labels import assign_labels, segment_distance


def _empty_stars():
    z = np.zeros(0)
    return {
        "x": z,
        "y": z,
        "radius": z,
        "saturated": z.astype(bool),
        "variable": z.astype(bool),
        "gaia": z.astype(bool),
    }


def _empty_galaxies():
    z = np.zeros(0)
    return {"x": z, "y": z, "radius": z, "catalogued": z.astype(bool)}


def test_segment_distance_points_and_segments() -> None:
    """Distances to a point and to a segment (perpendicular and beyond its ends)."""
    seg = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 10.0, 0.0]])
    d = segment_distance(np.array([3.0, 12.0]), np.array([4.0, 0.0]), seg)
    assert np.allclose(d, [[5.0, 4.0], [12.0, 2.0]])


def test_real_needs_same_polarity_within_one_pixel() -> None:
    """A positive fake matched by a positive detection at 0.5 px is Real, one 1.5 px away is not;
    a trailed asteroid matches along its trail, but not with a negative detection; a negative
    detection next to a positive one is a dipole."""
    truth = {
        "kind": np.array(["injection", "asteroid"], dtype=object),
        "origin": np.array(["injection", "ss"], dtype=object),
        "seg": np.array([[50.0, 50.0, 50.0, 50.0], [100.0, 100.0, 120.0, 100.0]]),
        "flux": np.array([1000.0, 800.0]),
        "snr": np.array([10.0, 8.0]),
        "hosted": np.array([False, False]),
    }
    det = {
        "x": np.array([50.5, 100.0, 51.5, 110.0, 300.0, 48.0]),
        "y": np.array([50.0, 100.0, 50.0, 100.6, 300.0, 52.5]),
        "isNegative": np.array([False, True, False, False, False, True]),
    }
    art = (
        np.array(["cosmic_ray"], dtype=object),
        np.array([[300.0, 299.0, 300.0, 302.0]]),
        np.array([2.0]),
    )
    out = assign_labels(
        det,
        truth,
        art,
        _empty_stars(),
        _empty_galaxies(),
        shape=(512, 512),
        fwhm_px=2.0,
        edge_px=10.0,
    )
    assert out["label"].tolist() == [1, 0, 0, 1, 0, 0]
    assert out["truthKind"].tolist() == [
        "injection",
        "near_miss",
        "near_miss",
        "asteroid",
        "cosmic_ray",
        "dipole",
    ]
    assert out["origin"].tolist() == ["injection", "ss", "injection", "ss", "none", "none"]
    assert out["truthIndex"].tolist() == [0, -1, -1, 1, -1, -1]


def test_bogus_kinds_from_scene() -> None:
    """Detections at the edge, on a saturated star, on a galaxy core and on nothing get those kinds."""
    truth = {
        "kind": np.zeros(0, object),
        "origin": np.zeros(0, object),
        "seg": np.zeros((0, 4)),
        "flux": np.zeros(0),
        "snr": np.zeros(0),
        "hosted": np.zeros(0, bool),
    }
    stars = {
        "x": np.array([200.0]),
        "y": np.array([200.0]),
        "radius": np.array([20.0]),
        "saturated": np.array([True]),
        "variable": np.array([False]),
        "gaia": np.array([True]),
    }
    gals = {
        "x": np.array([300.0]),
        "y": np.array([300.0]),
        "radius": np.array([10.0]),
        "catalogued": np.array([True]),
    }
    det = {
        "x": np.array([3.0, 205.0, 300.5, 400.0]),
        "y": np.array([100.0, 200.0, 300.0, 400.0]),
        "isNegative": np.array([False, True, False, True]),
    }
    none = (np.zeros(0, object), np.zeros((0, 4)), np.zeros(0))
    out = assign_labels(det, truth, none, stars, gals, shape=(512, 512), fwhm_px=4.0, edge_px=10.0)
    assert out["label"].tolist() == [0, 0, 0, 0]
    assert out["truthKind"].tolist() == ["edge", "saturated_star", "galaxy_core", "noise"]
    assert out["origin"].tolist() == ["none", "none", "galaxy", "none"]
