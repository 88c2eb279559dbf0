"""Registration of one frame onto another: by WCS when both have one, else on their own stars.

Star positions come from `sep`; the star-pattern match is `astroalign` (asterism triangles +
RANSAC), which returns a similarity transform (shift, rotation, scale) from the source frame's
pixels to the target frame's. Warping uses cubic-spline interpolation for the image and linear
interpolation for the variance; pixels that fall outside the source or on its bad pixels are
bad in the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import sep
from scipy import ndimage

from ..errors import InputError

__all__ = ["Stars", "background", "find_stars", "Registration", "register", "warp", "warp_mask"]

#: Minimum fraction of the target frame the registered source must cover.
MIN_OVERLAP = 0.25


@dataclass(frozen=True)
class Stars:
    """Sources found on a background-subtracted image (0-based pixels, image units).

    Attributes
    ----------
    x, y, flux, peak : ndarray of shape (n,)
        Positions (pixels), isophotal flux and peak value (image units).
    near_bad : ndarray of shape (n,), bool
        A bad (saturated, masked) pixel lies within the source's footprint.
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    peak: np.ndarray
    near_bad: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def background(image: np.ndarray, bad: np.ndarray, *, mesh: int = 64) -> np.ndarray:
    """Smooth sky of shape (H, W) (sep mesh `mesh` pixels, bad pixels masked)."""
    data = np.ascontiguousarray(np.where(bad, 0.0, image), dtype=np.float64)
    bkg = sep.Background(data, mask=np.ascontiguousarray(bad), bw=mesh, bh=mesh, fw=3, fh=3)
    return bkg.back()


def find_stars(
    image: np.ndarray, variance: np.ndarray, bad: np.ndarray, *, threshold: float = 5.0
) -> Stars:
    """Sources above `threshold` sigma on a background-subtracted image, brightest first.

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Background-subtracted; NaN where `bad`.
    variance : ndarray of shape (H, W)
        Per-pixel variance (inf where bad).
    bad : ndarray of shape (H, W), bool
    """
    data = np.ascontiguousarray(np.where(bad, 0.0, image), dtype=np.float64)
    err = np.ascontiguousarray(np.sqrt(np.where(bad, np.nanmedian(variance[~bad]), variance)))
    sep.set_extract_pixstack(2_000_000)
    sep.set_sub_object_limit(4096)
    objs, seg = sep.extract(
        data,
        threshold,
        err=err,
        mask=np.ascontiguousarray(bad),
        minarea=5,
        segmentation_map=True,
    )
    grown = ndimage.binary_dilation(bad, iterations=2) if bad.any() else bad
    hit = np.bincount(seg[grown].ravel(), minlength=len(objs) + 1)[1:] > 0
    order = np.argsort(-objs["flux"])
    x, y = objs["x"], objs["y"]
    if len(objs):
        # Windowed centroids (Gaussian window of the stars' typical size): precise to a few
        # hundredths of a pixel where the isophotal barycentre is biased by the threshold.
        size = np.sqrt(objs["a"] * objs["b"])[order[: max(20, len(order) // 5)]]
        sig = float(np.clip(np.median(size), 0.7, 10.0))
        wx, wy, flag = sep.winpos(data, x, y, np.full(len(x), sig), mask=np.ascontiguousarray(bad))
        good = (flag == 0) & (np.hypot(wx - x, wy - y) < 2.0 * sig)
        x, y = np.where(good, wx, x), np.where(good, wy, y)
    return Stars(
        x=x[order],
        y=y[order],
        flux=objs["flux"][order],
        peak=objs["peak"][order],
        near_bad=hit[order],
    )


@dataclass(frozen=True)
class Registration:
    """A map from a source frame's pixels to a target frame's pixels.

    Attributes
    ----------
    matrix : ndarray of shape (3, 3)
        Homogeneous affine transform, target (x, y, 1) = matrix @ source (x, y, 1); None for a
        WCS registration that is not affine.
    method : {"stars", "wcs", "identity"}
    n_matches : int
        Star pairs that fixed the transform (0 for WCS).
    source_of : callable or None
        For a WCS registration: (x, y) target pixels -> (x, y) source pixels.
    """

    matrix: np.ndarray | None
    method: str
    n_matches: int
    source_of: object | None = None

    @property
    def shift(self) -> tuple[float, float]:
        """(dx, dy) translation part, pixels (NaN for a WCS registration)."""
        if self.matrix is None:
            return float("nan"), float("nan")
        return float(self.matrix[0, 2]), float(self.matrix[1, 2])

    def source_pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source-frame pixels (x, y) that land on target pixels (x, y)."""
        if self.source_of is not None:
            return self.source_of(x, y)
        inv = np.linalg.inv(self.matrix)
        return inv[0, 0] * x + inv[0, 1] * y + inv[0, 2], inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]


def register(
    source_stars: Stars,
    target_stars: Stars,
    *,
    source_image: np.ndarray | None = None,
    target_image: np.ndarray | None = None,
    source_wcs=None,
    target_wcs=None,
    max_stars: int = 80,
) -> Registration:
    """Find the transform from the source frame's pixels to the target's.

    With a celestial WCS on both frames the WCS decides (exact for drizzled images already on
    one grid: then the identity). Otherwise `astroalign` matches star patterns: first on the
    background-subtracted images (its own source extraction), then on the `max_stars`
    brightest stars of each list; the match is refined by a least-squares similarity fit over
    every star pair it predicts within 0.6 px.

    Parameters
    ----------
    source_stars, target_stars : Stars
        From `find_stars` on each frame.
    source_image, target_image : ndarray of shape (H, W), optional
        Background-subtracted images (NaN allowed) for astroalign's own star finding.
    source_wcs, target_wcs : astropy.wcs.WCS, optional

    Raises
    ------
    InputError
        Too few stars, or no star pattern in common (frames of different fields).
    """
    if source_wcs is not None and target_wcs is not None:
        return _register_wcs(source_wcs, target_wcs)
    import astroalign

    def pick(stars: Stars, n: int, saturated: bool) -> np.ndarray:
        keep = np.ones(len(stars), bool) if saturated else ~stars.near_bad
        return np.c_[stars.x[keep], stars.y[keep]][:n]

    n_src = int((~source_stars.near_bad).sum())
    n_dst = int((~target_stars.near_bad).sum())
    if min(n_src, n_dst) < 5:
        msg = (
            f"only {min(n_src, n_dst)} unsaturated stars to register on (need 5); the frames "
            "may be empty, or give both a WCS"
        )
        raise InputError(msg)
    # Crowded fields blend differently at different seeing, so the brightest lists differ:
    # try a few list lengths (astroalign's RANSAC either finds a pattern or gives up).
    attempts = []
    if source_image is not None and target_image is not None:
        attempts.append((np.nan_to_num(source_image), np.nan_to_num(target_image), 50))
    for n, saturated in ((max_stars, False), (2 * max_stars, True)):
        attempts.append((pick(source_stars, n, saturated), pick(target_stars, n, saturated), n))
    error: Exception | None = None
    for src, dst, n in attempts:
        try:
            with _seeded(astroalign):
                transform, (s_ok, _) = astroalign.find_transform(src, dst, max_control_points=n)
            break
        except (astroalign.MaxIterError, ValueError, TypeError) as exc:
            error = exc
    else:
        msg = f"the frames do not overlap: no common star pattern found ({error})"
        raise InputError(msg) from error
    matrix = np.asarray(transform.params)
    all_src, all_dst = pick(source_stars, 10**6, False), pick(target_stars, 10**6, False)
    for tol in (1.5, 1.0, 0.6):
        matrix, n_pairs = _refine(all_src, all_dst, matrix, tol=tol)
    return Registration(matrix=matrix, method="stars", n_matches=max(n_pairs, len(s_ok)))


class _SeededNumpy:
    """numpy, but `random.default_rng()` without a seed gives a generator seeded with `seed`."""

    def __init__(self, seed: int) -> None:
        self.random = SimpleNamespace(default_rng=lambda *_: np.random.default_rng(seed))

    def __getattr__(self, name: str) -> object:
        return getattr(np, name)


@contextlib.contextmanager
def _seeded(astroalign_module, seed: int = 0) -> Iterator[None]:
    """Make astroalign's RANSAC repeatable: it shuffles its candidate matches with an unseeded
    ``numpy.random.default_rng()`` (astroalign 2.6), so the same frames could register a few
    hundredths of a pixel apart from one run to the next (and the datasets differ)."""
    original = astroalign_module._np
    astroalign_module._np = _SeededNumpy(seed)
    try:
        yield
    finally:
        astroalign_module._np = original


def _refine(
    src: np.ndarray, dst: np.ndarray, matrix: np.ndarray, *, tol: float
) -> tuple[np.ndarray, int]:
    """Least-squares similarity transform over every star pair within `tol` px of `matrix`'s
    prediction; returns the transform and the pairs used (the input when under 5 pairs)."""
    pred = (matrix[:2, :2] @ src.T).T + matrix[:2, 2]
    d = np.hypot(pred[:, None, 0] - dst[None, :, 0], pred[:, None, 1] - dst[None, :, 1])
    j = np.argmin(d, axis=1)
    ok = d[np.arange(len(src)), j] < tol
    if ok.sum() < 5:
        return matrix, 0
    s, t = src[ok], dst[j[ok]]
    # x' = a x - b y + tx ; y' = b x + a y + ty
    n = len(s)
    a = np.zeros((2 * n, 4))
    a[:n] = np.c_[s[:, 0], -s[:, 1], np.ones(n), np.zeros(n)]
    a[n:] = np.c_[s[:, 1], s[:, 0], np.zeros(n), np.ones(n)]
    p, *_ = np.linalg.lstsq(a, np.r_[t[:, 0], t[:, 1]], rcond=None)
    return np.array([[p[0], -p[1], p[2]], [p[1], p[0], p[3]], [0.0, 0.0, 1.0]]), int(n)


def _register_wcs(source_wcs, target_wcs) -> Registration:
    def source_of(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        world = target_wcs.pixel_to_world_values(x, y)
        sx, sy = source_wcs.world_to_pixel_values(*world)
        return np.asarray(sx), np.asarray(sy)

    # The identity when the two grids agree to 1e-3 px at the corners and centre.
    probe = np.array([[0, 0], [1000, 0], [0, 1000], [1000, 1000], [500, 500]], float)
    sx, sy = source_of(probe[:, 0], probe[:, 1])
    if np.allclose(sx, probe[:, 0], atol=1e-3) and np.allclose(sy, probe[:, 1], atol=1e-3):
        return Registration(matrix=np.eye(3), method="identity", n_matches=0)
    return Registration(matrix=None, method="wcs", n_matches=0, source_of=source_of)


def warp(
    registration: Registration,
    image: np.ndarray,
    variance: np.ndarray,
    bad: np.ndarray,
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample a source frame onto the target grid of shape `shape`.

    Returns
    -------
    image, variance : ndarray of shape `shape`
        NaN / inf where `bad`.
    bad : ndarray of shape `shape`, bool
        Off the source frame, or within one pixel of a source bad pixel.

    Raises
    ------
    InputError
        The source covers under `MIN_OVERLAP` of the target: the frames do not overlap.
    """
    if registration.method == "identity" and image.shape == tuple(shape):
        return image.copy(), variance.copy(), bad.copy()
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    sx, sy = registration.source_pixels(xx, yy)
    coords = np.array([sy, sx])
    h, w = image.shape
    off = (sx < -0.5) | (sx > w - 0.5) | (sy < -0.5) | (sy > h - 0.5)
    if (~off).mean() < MIN_OVERLAP:
        msg = (
            f"the frames do not overlap: the template covers {100 * (~off).mean():.0f} % of the "
            f"science frame (need {100 * MIN_OVERLAP:.0f} %)"
        )
        raise InputError(msg)
    filled = np.where(bad, 0.0, image)
    out = ndimage.map_coordinates(filled, coords, order=3, mode="nearest")
    var = ndimage.map_coordinates(
        np.where(bad, 0.0, variance), coords, order=1, mode="nearest", cval=0.0
    )
    bad_w = ndimage.map_coordinates(bad.astype(float), coords, order=1, mode="constant", cval=1.0)
    bad_out = off | (bad_w > 1e-3)
    bad_out = ndimage.binary_dilation(bad_out, iterations=1)
    return np.where(bad_out, np.nan, out), np.where(bad_out, np.inf, var), bad_out


def warp_mask(registration: Registration, mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A boolean mask resampled onto the target grid (True where any flagged pixel
    contributes); off the source frame it is False."""
    if registration.method == "identity" and mask.shape == tuple(shape):
        return mask.copy()
    if not mask.any():
        return np.zeros(shape, bool)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    sx, sy = registration.source_pixels(xx, yy)
    m = ndimage.map_coordinates(mask.astype(float), np.array([sy, sx]), order=1, cval=0.0)
    return m > 1e-3
