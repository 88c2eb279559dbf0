"""Labels, truth kinds and catalogue origins of detections.

A detection is Real (label 1) only if a truth source (fake, asteroid, variable star, transient)
lies within `match_radius` pixels (1 px; distance to the segment for trailed asteroids) *with
the same polarity*. Everything else is Bogus and gets the kind of the nearest cause: an
artifact segment, the image edge, a star (saturated, variable, dipole, ring, residual), a galaxy
(dipole, core), a near-miss of a Real source, or noise.

`origin` is what a catalogue cross-match would call the detection (DMTN-337 Table 3): ``ss``
(known asteroid), ``injection``, ``tns`` (known transient), ``gaia`` (catalogued star),
``galaxy``, or ``none``; for Real detections it is the origin of the matched truth source.
"""

from __future__ import annotations

import numpy as np

__all__ = ["REAL_KINDS", "BOGUS_KINDS", "ORIGINS", "segment_distance", "assign_labels"]

REAL_KINDS = ("injection", "asteroid", "variable", "transient")
BOGUS_KINDS = (
    "cosmic_ray",
    "hot_pixel",
    "bad_column",
    "nan_rowcol",
    "satellite",
    "saturated_star",
    "edge",
    "dipole",
    "psf_ring",
    "star_residual",
    "variable_residual",
    "galaxy_core",
    "galaxy_residual",
    "near_miss",
    "noise",
    "crosstalk",
)
ORIGINS = ("ss", "gaia", "galaxy", "tns", "injection", "none")


def segment_distance(px: np.ndarray, py: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Distances of shape (n_points, n_segments) from points to segments (n_segments, 4)."""
    px = np.asarray(px, float)[:, None]
    py = np.asarray(py, float)[:, None]
    if len(seg) == 0:
        return np.full((px.shape[0], 0), np.inf)
    x0, y0, x1, y1 = (seg[:, i][None, :] for i in range(4))
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(
            length2 > 0, ((px - x0) * dx + (py - y0) * dy) / np.where(length2 > 0, length2, 1), 0.0
        )
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(px - (x0 + t * dx), py - (y0 + t * dy))


def assign_labels(
    det: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    artifacts: tuple[np.ndarray, np.ndarray, np.ndarray],
    stars: dict[str, np.ndarray],
    galaxies: dict[str, np.ndarray],
    *,
    shape: tuple[int, int],
    fwhm_px: float,
    edge_px: float,
    match_radius: float = 1.0,
) -> dict[str, np.ndarray]:
    """Label detections and give each its truth kind and origin.

    Parameters
    ----------
    det : dict of (n,) arrays
        ``x``, ``y``, ``isNegative``.
    truth : dict
        From `TruthTable.arrays` (``seg`` (m, 4), ``flux`` signed, ``kind``, ``origin``, ``snr``).
    artifacts : (kind (a,), seg (a, 4), radius (a,))
        From `ArtifactLog.arrays`.
    stars : dict of (s,) arrays
        ``x``, ``y``, ``radius`` (capture radius, pixels), ``saturated``, ``variable``, ``gaia`` (bool).
    galaxies : dict of (g,) arrays
        ``x``, ``y``, ``radius`` (pixels), ``catalogued`` (bool).
    shape : (H, W)
    fwhm_px : float
        Science PSF FWHM, pixels.
    edge_px : float
        Width of the edge zone, pixels.

    Returns
    -------
    dict of (n,) arrays
        ``label`` (int8), ``truthKind``, ``origin`` (object), ``truthIndex`` (int, -1 if none).
    """
    n = len(det["x"])
    x, y, neg = det["x"], det["y"], np.asarray(det["isNegative"], bool)
    label = np.zeros(n, np.int8)
    kind = np.full(n, "noise", dtype=object)
    origin = np.full(n, "none", dtype=object)
    tindex = np.full(n, -1, np.int64)
    if n == 0:
        return {"label": label, "truthKind": kind, "origin": origin, "truthIndex": tindex}

    # --- Real: same-polarity truth within match_radius (nearest wins).
    tdist = segment_distance(x, y, truth["seg"])
    if tdist.shape[1]:
        same = (truth["flux"][None, :] < 0) == neg[:, None]
        d_same = np.where(same, tdist, np.inf)
        best = np.argmin(d_same, axis=1)
        hit = d_same[np.arange(n), best] <= match_radius
        label[hit] = 1
        tindex[hit] = best[hit]
        kind[hit] = truth["kind"][best[hit]]
        origin[hit] = truth["origin"][best[hit]]
    real = label == 1

    # --- Origin of the rest: catalogue cross-match in DMTN-337's order of precedence.
    def near(points_x, points_y, radius, within):
        if len(points_x) == 0:
            return np.zeros(n, bool), np.full(n, -1)
        d = np.hypot(x[:, None] - points_x[None, :], y[:, None] - points_y[None, :])
        ok = d <= radius[None, :] if np.ndim(radius) else d <= radius
        ok &= within[None, :]
        dd = np.where(ok, d, np.inf)
        j = np.argmin(dd, axis=1)
        return np.isfinite(dd[np.arange(n), j]), j

    bogus = ~real
    if tdist.shape[1]:
        tk, to = truth["kind"], truth["origin"]
        for tag, sel, radius in (
            ("ss", to == "ss", 2.0),
            ("injection", tk == "injection", 1.5),
            ("tns", to == "tns", 1.5),
        ):
            if sel.any():
                close = (np.where(sel[None, :], tdist, np.inf) <= radius).any(axis=1)
                origin[bogus & close & (origin == "none")] = tag
    star_r = np.maximum(2.0, 0.6 * fwhm_px) * np.ones(len(stars["x"]))
    on_gaia, _ = near(stars["x"], stars["y"], star_r, stars["gaia"])
    origin[bogus & on_gaia & (origin == "none")] = "gaia"
    on_gal, _ = near(galaxies["x"], galaxies["y"], galaxies["radius"], galaxies["catalogued"])
    origin[bogus & on_gal & (origin == "none")] = "galaxy"

    # --- Bogus kinds, most specific cause first.
    todo = bogus.copy()
    akind, aseg, arad = artifacts
    if len(akind):
        ad = segment_distance(x, y, aseg) / arad[None, :]
        j = np.argmin(ad, axis=1)
        hit = todo & (ad[np.arange(n), j] <= 1.0) & (akind[j] != "noise")
        kind[hit] = akind[j[hit]]
        todo &= ~hit
    h, w = shape
    border = np.minimum.reduce([x, y, w - 1 - x, h - 1 - y])
    hit = todo & (border < edge_px)
    kind[hit] = "edge"
    todo &= ~hit

    # Opposite-polarity partner within 2 FWHM: a dipole (misregistration, motion, or the
    # wrong-polarity lobe next to a Real source).
    pair = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    opposite = neg[:, None] != neg[None, :]
    has_partner = ((pair <= 2.0 * fwhm_px) & opposite).any(axis=1)

    near_star, js = near(stars["x"], stars["y"], stars["radius"], np.ones(len(stars["x"]), bool))
    if near_star.any():
        hit = todo & near_star & stars["saturated"][js]
        kind[hit] = "saturated_star"
        todo &= ~hit
    kind[todo & has_partner] = "dipole"
    todo &= ~has_partner
    if near_star.any():
        dstar = np.hypot(x - stars["x"][js], y - stars["y"][js])
        var = stars["variable"][js]
        k = np.where(
            var, "variable_residual", np.where(dstar > 1.2 * fwhm_px, "psf_ring", "star_residual")
        )
        hit = todo & near_star
        kind[hit] = k[hit]
        todo &= ~hit

    near_gal, jg = near(
        galaxies["x"], galaxies["y"], galaxies["radius"], np.ones(len(galaxies["x"]), bool)
    )
    if near_gal.any():
        dgal = np.hypot(x - galaxies["x"][jg], y - galaxies["y"][jg])
        core = dgal <= np.maximum(1.5 * fwhm_px, 0.4 * galaxies["radius"][jg])
        k = np.where(core, "galaxy_core", "galaxy_residual")
        hit = todo & near_gal
        kind[hit] = k[hit]
        todo &= ~hit

    if tdist.shape[1]:
        hit = todo & (tdist.min(axis=1) <= 3.0 * max(fwhm_px, 1.0))
        kind[hit] = "near_miss"
        todo &= ~hit
    kind[todo] = "noise"
    return {"label": label, "truthKind": kind, "origin": origin, "truthIndex": tindex}
