"""Triplet stamps: cutting them from images, checking them, and bringing other sizes to a model's.

The contract (docs/design.md): float32 arrays of shape (N, 3, S, S), channels in the order
`CHANNELS` = (difference, science, template), centred on the detection's centroid pixel.
Non-finite pixels and pixels off the image become 0; every stamp carries `valid_fraction`
(finite, on-image pixels over all 3 S^2 pixels) and an `edge` flag (its box leaves the image).
Partial stamps are kept and flagged, never zeroed or dropped.

Pixel convention: 0-based, x = column, y = row, pixel centres at integers (astropy/numpy). The
centre pixel of a stamp is round-half-up(x, y); for an even S it sits at index S // 2.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import InputError, StampShapeError
from .numeric import MAD_TO_SIGMA

__all__ = [
    "CHANNELS",
    "Stamps",
    "check_stamps",
    "cut_stamps",
    "box_extent",
    "centre_pixels",
    "fit_stamp",
    "resize_stamps",
    "robust_noise",
    "NOISE_FLOOR",
    "NOISE_STEP",
    "stamp_noise_array",
]

#: Channel order of every stamp array in realbogus (and of Rubin's production interface).
CHANNELS = ("difference", "science", "template")

_CHUNK = 512  # stamps gathered per fancy-index call; keeps the temporary in cache


@dataclass(frozen=True)
class Stamps:
    """Triplet stamps with their per-stamp quality.

    Attributes
    ----------
    data : ndarray of shape (n_stamps, 3, size, size), float32
        Pixel values in the images' units, channels in `CHANNELS` order; non-finite and
        off-image pixels are 0.
    valid_fraction : ndarray of shape (n_stamps,), float32
        Finite, on-image pixels over all 3 * size**2 pixels.
    edge : ndarray of shape (n_stamps,), bool
        The stamp's box leaves the image (or the position is not finite).
    channel_valid : ndarray of shape (n_stamps, 3), float32, or None
        Finite, on-image pixels of each channel over size**2, where known (`cut_stamps` sets it;
        stamps read from datasets or alerts carry only `valid_fraction`).
    """

    data: np.ndarray
    valid_fraction: np.ndarray
    edge: np.ndarray
    channel_valid: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def size(self) -> int:
        """Stamp side S in pixels."""
        return int(self.data.shape[-1])

    @classmethod
    def concat(cls, pieces: list[Stamps], size: int) -> Stamps:
        """The stamps of `pieces` in order (one piece is returned as is; none gives 0 stamps of `size`)."""
        if len(pieces) == 1:
            return pieces[0]
        if not pieces:
            return cls(
                np.zeros((0, 3, size, size), np.float32), np.zeros(0, np.float32), np.zeros(0, bool)
            )
        known = all(p.channel_valid is not None for p in pieces)
        return cls(
            data=np.concatenate([p.data for p in pieces]),
            valid_fraction=np.concatenate([p.valid_fraction for p in pieces]),
            edge=np.concatenate([p.edge for p in pieces]),
            channel_valid=np.concatenate([p.channel_valid for p in pieces]) if known else None,
        )


def robust_noise(planes: np.ndarray, step: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Robust noise of image planes: `MAD_TO_SIGMA` x median |p| over the non-zero pixels of every
    `step`-th row and column (zeros are invalid or padded; the planes have median ~0: differences,
    or background-subtracted images).

    (N, S, S) -> noise (N,) float32 in pixel units (0 where no pixel is valid) and the number of
    valid pixels read (N,). A selection (`np.partition`) per distinct rank: ~1.5 us per 63-px plane.
    """
    p = np.abs(planes[:, ::step, ::step]).reshape(len(planes), -1)
    n = p.shape[1]
    zeros = (p == 0).sum(axis=1)
    middle = np.minimum(zeros + (n - zeros) // 2, n - 1)
    median = np.empty(len(planes), np.float32)
    for k in np.unique(middle):  # one selection per distinct rank (usually one: no zeros)
        rows = np.flatnonzero(middle == k)
        median[rows] = np.partition(p[rows], k, axis=1)[:, k]
    return median * np.float32(MAD_TO_SIGMA), n - zeros


#: `stamp_noise` reads every NOISE_STEP-th pixel of the difference along each axis.
NOISE_STEP = 2
NOISE_FLOOR = (
    1e-20  # keeps x / sigma finite in float32 for |x| < 3e18 when a difference has no valid pixel
)


def stamp_noise_array(x: np.ndarray) -> np.ndarray:
    """Robust noise of each stamp's difference plane (`realbogus.model.transforms.stamp_noise` in
    numpy, equal to it value for value): (N, C, S, S) -> (N,), float32.

    A selection (`np.partition`) instead of a sort: ~1.5 us per 63-px stamp, against ~100 us for
    ONNX Runtime's TopK, so the Scorer computes it here and hands it to the ONNX graph.
    """
    noise, _ = robust_noise(x[:, 0], NOISE_STEP)
    return np.maximum(noise, np.float32(NOISE_FLOOR))


def check_stamps(
    stamps: np.ndarray, *, size: int | None = None, name: str = "stamps"
) -> np.ndarray:
    """Check the (N, 3, S, S) float32 contract and return the array (no copy).

    Raises `StampShapeError` naming the expected and received shapes or dtype, and for
    non-finite pixels (callers must zero them and account for them in `valid_fraction`).
    """
    if not isinstance(stamps, np.ndarray):
        msg = f"{name} must be a numpy array; got {type(stamps).__name__}"
        raise StampShapeError(msg)
    expected = f"(N, {len(CHANNELS)}, {size or 'S'}, {size or 'S'})"
    if (
        stamps.ndim != 4
        or stamps.shape[1] != len(CHANNELS)
        or stamps.shape[2] != stamps.shape[3]
        or (size is not None and stamps.shape[2] != size)
    ):
        msg = f"{name} must have shape {expected} in order {CHANNELS}; got {stamps.shape}"
        raise StampShapeError(msg)
    if stamps.dtype != np.float32:
        msg = f"{name} must be float32; got {stamps.dtype}"
        raise StampShapeError(msg)
    if not np.isfinite(stamps).all():
        msg = (
            f"{name} contain non-finite pixels; cut them with cut_stamps/fit_stamp, which zero them"
        )
        raise StampShapeError(msg)
    return stamps


def centre_pixels(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer centre pixels (round half up) of positions; non-finite positions flagged.

    Returns (ix, iy, finite): int64 arrays of shape (N,) (0 where not finite) and a bool mask.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y) & (np.abs(x) < 2**40) & (np.abs(y) < 2**40)
    ix = np.where(finite, np.floor(np.where(finite, x, 0.0) + 0.5), 0).astype(np.int64)
    iy = np.where(finite, np.floor(np.where(finite, y, 0.0) + 0.5), 0).astype(np.int64)
    return ix, iy, finite


def box_extent(
    x: np.ndarray, y: np.ndarray, shape: tuple[int, int], size: int
) -> tuple[np.ndarray, ...]:
    """Where the size x size boxes centred on (x, y) meet an image of `shape` (H, W).

    Returns (x0, y0, r0, r1, c0, c1, on_image, finite): int64 arrays of shape (N,): each box's
    top-left corner (may be off the image), its on-image rows [r0, r1) and columns [c0, c1),
    its on-image pixel count (0 when the box is fully off the image or the position not finite),
    and the bool mask of finite positions.
    """
    height, width = shape
    ix, iy, finite = centre_pixels(x, y)
    x0, y0 = ix - size // 2, iy - size // 2
    r0, r1 = np.clip(y0, 0, height), np.clip(y0 + size, 0, height)
    c0, c1 = np.clip(x0, 0, width), np.clip(x0 + size, 0, width)
    on_image = np.where(finite, (r1 - r0) * (c1 - c0), 0)
    return x0, y0, r0, r1, c0, c1, on_image, finite


def _as_native_float32(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        msg = f"{name} image must be 2-D; got shape {image.shape}"
        raise InputError(msg)
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        msg = f"{name} image must hold real numbers; got dtype {image.dtype}"
        raise InputError(msg)
    # astype handles big-endian FITS data; no copy when already native float32.
    return (
        image.astype(np.float32, copy=False) if image.dtype.isnative else image.astype(np.float32)
    )


def cut_stamps(
    difference: np.ndarray,
    science: np.ndarray,
    template: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    size: int = 51,
) -> Stamps:
    """Cut (N, 3, size, size) triplets centred on the pixel positions (x, y).

    Parameters
    ----------
    difference, science, template : ndarray of shape (H, W)
        The three images, same shape, any real dtype or byte order (converted to float32).
    x, y : array-like of shape (N,)
        0-based column and row of each detection's centroid, pixels.
    size : int
        Stamp side S, pixels.

    Returns
    -------
    Stamps
        Stamps in `CHANNELS` order with `valid_fraction` and `edge`. Rows never disappear:
        a detection off the image gives an all-zero stamp with `edge=True`, `valid_fraction=0`.
    """
    if not isinstance(size, (int, np.integer)) or size < 1:
        msg = f"size must be a positive integer; got {size!r}"
        raise InputError(msg)
    size = int(size)
    images = [
        _as_native_float32(a, n)
        for a, n in zip((difference, science, template), CHANNELS, strict=True)
    ]
    shapes = {a.shape for a in images}
    if len(shapes) != 1:
        shape_text = ", ".join(f"{n} {a.shape}" for n, a in zip(CHANNELS, images, strict=True))
        msg = f"images must have the same shape; got {shape_text}"
        raise InputError(msg)
    height, width = images[0].shape
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    if x.shape != y.shape or x.ndim != 1:
        msg = f"x and y must be 1-D arrays of one length; got shapes {x.shape} and {y.shape}"
        raise InputError(msg)

    n = len(x)
    x0, y0, r0, r1, c0, c1, on_image, finite = box_extent(x, y, (height, width), size)
    inside = finite & (on_image == size * size)

    idx_in = np.flatnonzero(inside)
    idx_edge = np.flatnonzero(~inside & (on_image > 0))
    out = np.empty((n, len(CHANNELS), size, size), dtype=np.float32)  # every stamp written below
    out[on_image == 0] = 0.0
    bad_pixels = np.zeros((n, len(CHANNELS)), dtype=np.int64)
    # Interior stamps are gathered in raster order and in cache-sized chunks: neighbouring
    # boxes share image rows, which makes the gather ~2x faster than catalog order.
    idx_in = idx_in[np.lexsort((x0[idx_in], y0[idx_in]))]
    chunks = np.array_split(idx_in, max(1, idx_in.size // _CHUNK))
    if idx_edge.size:
        # Clipped index grids; pixels whose index was clipped are off the image and set to 0.
        rows = y0[idx_edge, None] + np.arange(size)
        cols = x0[idx_edge, None] + np.arange(size)
        keep = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[
            :, None, :
        ]
        rows_c = np.clip(rows, 0, height - 1)[:, :, None]
        cols_c = np.clip(cols, 0, width - 1)[:, None, :]

    windows = [sliding_window_view(image, (size, size)) for image in images] if idx_in.size else []

    def gather(chunk: np.ndarray) -> None:
        for c, window in enumerate(windows):
            out[chunk, c] = window[y0[chunk], x0[chunk]]

    # A sum is NaN or inf whenever any pixel is (and rarely on overflow, which only costs the
    # slower path): row sums test an image ~2x faster than isfinite().all() and, when it is not
    # clean, say which rows hold non-finite pixels; column sums likewise.
    def row_sums(image: np.ndarray) -> np.ndarray:
        return image.sum(axis=1, dtype=np.float32)

    # numpy's fancy-index copy and its reductions release the GIL, so threads scale over the
    # cores; the memory-bound row sums overlap the latency-bound gather.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        sums = [pool.submit(row_sums, image) for image in images]
        list(pool.map(gather, chunks if idx_in.size else []))
        sums = [future.result() for future in sums]

    for c, image in enumerate(images):
        if idx_edge.size:
            out[idx_edge, c] = np.where(keep, image[rows_c, cols_c], 0.0)
        bad_rows = ~np.isfinite(sums[c])
        if not bad_rows.any():
            continue
        bad_cols = ~np.isfinite(image.sum(axis=0, dtype=np.float32))
        # Only stamps whose box meets both a bad row and a bad column can hold a non-finite
        # pixel; for NaN rows or columns that is a thin band of stamps.
        row_cum = np.concatenate([[0], np.cumsum(bad_rows)])
        col_cum = np.concatenate([[0], np.cumsum(bad_cols)])
        suspect = np.flatnonzero((row_cum[r1] > row_cum[r0]) & (col_cum[c1] > col_cum[c0]))
        if suspect.size:
            channel = out[suspect, c]
            bad = ~np.isfinite(channel)
            bad_pixels[suspect, c] += bad.sum(axis=(1, 2))
            channel[bad] = 0.0
            out[suspect, c] = channel

    channel_valid = (on_image[:, None] - bad_pixels) / float(size * size)
    valid = (len(CHANNELS) * on_image - bad_pixels.sum(axis=1)) / float(len(CHANNELS) * size * size)
    return Stamps(
        data=out,
        valid_fraction=valid.astype(np.float32),
        edge=~inside,
        channel_valid=channel_valid.astype(np.float32),
    )


def fit_stamp(
    cutout: np.ndarray,
    size: int,
    *,
    centre: tuple[int, int] | None = None,
) -> tuple[np.ndarray, int]:
    """Crop or zero-pad one 2-D cutout of any shape to (size, size) around its source pixel.

    Parameters
    ----------
    cutout : ndarray of shape (h, w)
        One image plane (e.g. a 30x30 Rubin alert cutout or a non-square ZTF edge cutout).
    size : int
        Output side S, pixels.
    centre : (row, col), optional
        Index of the source pixel in `cutout`; default (h // 2, w // 2). Truncated edge cutouts
        need the true position, since their source is off their array centre.

    Returns
    -------
    stamp : ndarray of shape (size, size), float32
        The source pixel lands at (size // 2, size // 2); non-finite and missing pixels are 0.
    n_valid : int
        Number of finite pixels in `stamp` that came from `cutout`.
    """
    cutout = np.asarray(cutout)
    if cutout.ndim != 2:
        msg = f"cutout must be 2-D; got shape {cutout.shape}"
        raise StampShapeError(msg)
    h, w = cutout.shape
    crow, ccol = (h // 2, w // 2) if centre is None else (int(centre[0]), int(centre[1]))
    shift_r, shift_c = size // 2 - crow, size // 2 - ccol  # out[i] = in[i - shift]
    r0, r1 = max(0, shift_r), min(size, h + shift_r)
    c0, c1 = max(0, shift_c), min(size, w + shift_c)
    stamp = np.zeros((size, size), dtype=np.float32)
    if r1 <= r0 or c1 <= c0:
        return stamp, 0
    piece = cutout[r0 - shift_r : r1 - shift_r, c0 - shift_c : c1 - shift_c].astype(np.float32)
    finite = np.isfinite(piece)
    stamp[r0:r1, c0:c1] = np.where(finite, piece, 0.0)
    return stamp, int(finite.sum())


def resize_stamps(
    cutouts: np.ndarray | list,
    size: int,
    *,
    centres: np.ndarray | None = None,
    blank_limit: float | None = None,
) -> Stamps:
    """Bring triplets of other sizes to (N, 3, size, size) with `valid_fraction` accounting.

    Parameters
    ----------
    cutouts : ndarray of shape (N, 3, h, w), or a sequence of N triplets of 3 2-D arrays
        Triplets in `CHANNELS` order; in a sequence each plane may have its own shape.
    size : int
        Output side S, pixels.
    centres : ndarray of shape (N, 3, 2), optional
        (row, col) of the source pixel in each plane; default each plane's centre.
    blank_limit : float, optional
        Floating-point pixels with a larger magnitude are blanks: 0 and not valid, like NaN.

    Returns
    -------
    Stamps
        `edge` is True where any pixel of the output box had no input pixel.
    """
    if centres is None and blank_limit is None and isinstance(cutouts, np.ndarray):
        return _resize_uniform(cutouts, size)
    n = len(cutouts)
    out = np.zeros((n, len(CHANNELS), size, size), dtype=np.float32)
    in_box = np.zeros(n, dtype=np.int64)
    edge = np.zeros(n, dtype=bool)
    for i, triplet in enumerate(cutouts):
        if len(triplet) != len(CHANNELS):
            msg = f"triplet {i} has {len(triplet)} planes; expected {len(CHANNELS)} {CHANNELS}"
            raise StampShapeError(msg)
        for c, plane in enumerate(triplet):
            centre = None if centres is None else centres[i][c]
            in_box[i], covers = _place(plane, out[i, c], centre, blank_limit, in_box[i])
            edge[i] |= not covers
    n_valid = in_box - _zero_invalid(out, blank_limit)
    valid_fraction = (n_valid / float(len(CHANNELS) * size * size)).astype(np.float32)
    return Stamps(data=out, valid_fraction=valid_fraction, edge=edge)


def _place(
    plane: np.ndarray, stamp: np.ndarray, centre, blank_limit: float | None, count: int
) -> tuple[int, bool]:
    """Copy the part of `plane` that falls in `stamp` (source pixel at its centre) as float32.

    Returns (`count` + pixels copied, whether the plane covers the whole stamp).
    """
    plane = np.asarray(plane)
    if plane.ndim != 2:
        msg = f"cutout must be 2-D; got shape {plane.shape}"
        raise StampShapeError(msg)
    h, w = plane.shape
    size = stamp.shape[0]
    crow, ccol = (h // 2, w // 2) if centre is None else (int(centre[0]), int(centre[1]))
    covers = (
        crow >= size // 2
        and ccol >= size // 2
        and h - crow >= size - size // 2
        and w - ccol >= size - size // 2
    )
    shift_r, shift_c = size // 2 - crow, size // 2 - ccol  # stamp[i] = plane[i - shift]
    r0, r1 = max(0, shift_r), min(size, h + shift_r)
    c0, c1 = max(0, shift_c), min(size, w + shift_c)
    if r1 <= r0 or c1 <= c0:
        return count, covers
    piece = plane[r0 - shift_r : r1 - shift_r, c0 - shift_c : c1 - shift_c]
    if blank_limit is not None and piece.dtype.kind == "f" and piece.dtype.itemsize > 4:
        piece = np.where(
            np.abs(piece) > blank_limit, np.nan, piece
        )  # judged before float32 rounding
    stamp[r0:r1, c0:c1] = piece
    return count + (r1 - r0) * (c1 - c0), covers


def _zero_invalid(out: np.ndarray, blank_limit: float | None, rows: int = 8) -> np.ndarray:
    """Set non-finite (and blank) pixels of (N, C, S, S) `out` to 0 in place; count them per stamp.

    Works through `rows` stamps at a time so that the temporaries stay in cache.
    """
    bad_count = np.zeros(len(out), dtype=np.int64)
    for start in range(0, len(out), rows):
        block = out[start : start + rows]
        bad = ~np.isfinite(block)
        if blank_limit is not None:
            bad |= np.abs(block) > blank_limit
        block[bad] = 0.0
        bad_count[start : start + rows] = bad.sum(axis=(1, 2, 3))
    return bad_count


def _resize_uniform(cutouts: np.ndarray, size: int) -> Stamps:
    """`resize_stamps` for an (N, 3, h, w) array centred on (h // 2, w // 2): one slice, no loop."""
    if cutouts.ndim != 4 or cutouts.shape[1] != len(CHANNELS):
        msg = f"cutouts must have shape (N, {len(CHANNELS)}, h, w); got {cutouts.shape}"
        raise StampShapeError(msg)
    n, _, h, w = cutouts.shape
    shift_r, shift_c = size // 2 - h // 2, size // 2 - w // 2
    r0, r1 = max(0, shift_r), min(size, h + shift_r)
    c0, c1 = max(0, shift_c), min(size, w + shift_c)
    out = np.zeros((n, len(CHANNELS), size, size), dtype=np.float32)
    if r1 > r0 and c1 > c0:
        piece = cutouts[:, :, r0 - shift_r : r1 - shift_r, c0 - shift_c : c1 - shift_c]
        piece = piece.astype(np.float32)
        finite = np.isfinite(piece)
        out[:, :, r0:r1, c0:c1] = np.where(finite, piece, 0.0)
        n_valid = finite.sum(axis=(1, 2, 3))
    else:
        n_valid = np.zeros(n, dtype=np.int64)
    valid_fraction = (n_valid / float(len(CHANNELS) * size * size)).astype(np.float32)
    edge = np.full(n, r0 > 0 or c0 > 0 or r1 < size or c1 < size)
    return Stamps(data=out, valid_fraction=valid_fraction, edge=edge)
