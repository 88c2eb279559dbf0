"""The one stamp renderer: a (3, S, S) triplet to an 8-bit RGB image or PNG bytes.

Used by the report's galleries, ``simulate``'s preview and the crowd (Zooniverse) subject
images, so that a stamp looks the same wherever an astronomer meets it. Each panel is scaled by
its own limits, as astronomers expect:

* ``"zscale"``: linear between IRAF zscale limits (astropy ``ZScaleInterval``), the display
  used for subtraction triplets (DMTN-337 Fig. 2);
* ``"asinh"``: the same lower limit, the panel's 99.5th percentile as upper limit, and an
  ``asinh`` stretch (astropy ``AsinhStretch``, a = 0.1), which keeps bright cores unsaturated.

Images are drawn with pixel row 0 at the bottom (y up, as ds9 and ``imshow(origin="lower")``).
Non-finite (NaN, masked) pixels are drawn in `nan_color` (magenta by default, never confused
with data), or at the lower limit when `nan_color` is None (the Zooniverse subjects' grey).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Literal

import numpy as np
from astropy.visualization import AsinhStretch, ZScaleInterval
from matplotlib.figure import Figure
from PIL import Image

from .errors import ConfigError, InputError
from .stamps import CHANNELS

__all__ = [
    "NAN_COLOR",
    "STRETCHES",
    "render_panel",
    "render_triplet",
    "render_triplet_png",
    "gallery_figure",
]

#: Allowed values of ``stretch``.
STRETCHES = ("zscale", "asinh")
#: Default RGB colour of non-finite pixels.
NAN_COLOR = (255, 0, 255)
Stretch = Literal["zscale", "asinh"]


def _check_stretch(stretch: str) -> None:
    if stretch not in STRETCHES:
        msg = f"stretch must be one of {STRETCHES}; got {stretch!r}"
        raise ConfigError(msg)


def render_panel(panel: np.ndarray, *, stretch: Stretch = "zscale") -> np.ndarray:
    """Scale one stamp panel to 8-bit grey with its own limits.

    Parameters
    ----------
    panel : ndarray of shape (S, S), float
        Pixel values in any flux unit (the stretch is scale-free); NaN allowed.
    stretch : {"zscale", "asinh"}

    Returns
    -------
    ndarray of shape (S, S), uint8
        0 at the lower limit, 255 at the upper; non-finite pixels 0. A panel without finite
        pixels, or a constant one, is uniform grey 128.
    """
    _check_stretch(stretch)
    panel = np.asarray(panel, dtype=np.float64)
    finite = panel[np.isfinite(panel)]
    if finite.size == 0 or np.ptp(finite) == 0:
        return np.full(panel.shape, 128, dtype=np.uint8)
    vmin, vmax = ZScaleInterval().get_limits(finite)
    if stretch == "asinh":
        vmax = float(np.percentile(finite, 99.5))
    if not vmax > vmin:
        vmin, vmax = float(finite.min()), float(finite.max())
    scaled = np.clip(
        (np.nan_to_num(panel, nan=vmin, posinf=vmax, neginf=vmin) - vmin) / (vmax - vmin), 0, 1
    )
    if stretch == "asinh":
        scaled = AsinhStretch(a=0.1)(scaled, clip=True)
    return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


def render_triplet(
    stamp: np.ndarray,
    *,
    order: Sequence[str] = CHANNELS,
    stretch: Stretch = "zscale",
    scale: int = 4,
    gap: int = 2,
    nan_color: tuple[int, int, int] | None = NAN_COLOR,
) -> np.ndarray:
    """One triplet side by side, each panel scaled on its own, as an RGB image.

    Parameters
    ----------
    stamp : ndarray of shape (3, S, S)
        One detection in `realbogus.stamps.CHANNELS` order (difference, science, template).
    order : sequence of 3 channel names
        Panel order, left to right: ``("difference", "science", "template")`` (the default, the report's
        galleries) or ``("template", "science", "difference")`` (DMTN-337 Fig. 2, the Zooniverse subjects).
    stretch : {"zscale", "asinh"}
        See the module docstring.
    scale : int
        Nearest-neighbour enlargement factor (>= 1); pixels stay square and sharp.
    gap : int
        White pixels between panels, before enlargement (>= 0).
    nan_color : (r, g, b) or None
        Colour of non-finite pixels; None draws them at the panel's lower limit (black).

    Returns
    -------
    ndarray of shape (S * scale, (3 S + 2 gap) * scale, 3), uint8
        Image rows top to bottom: the stamp's last pixel row first (y up). With ``nan_color=None`` the three colour planes are equal (grey).
    """
    stamp = np.asarray(stamp)
    if stamp.ndim != 3 or stamp.shape[0] != 3 or stamp.shape[1] != stamp.shape[2]:
        msg = f"a stamp triplet must have shape (3, S, S); got {stamp.shape}"
        raise InputError(msg)
    if sorted(order) != sorted(CHANNELS) or len(order) != 3:
        msg = f"order must list each of {CHANNELS} once; got {tuple(order)}"
        raise ConfigError(msg)
    if int(scale) < 1 or int(gap) < 0:
        msg = f"scale must be >= 1 and gap >= 0; got scale={scale}, gap={gap}"
        raise ConfigError(msg)
    size = stamp.shape[-1]
    spacer = np.full((size, gap, 3), 255, dtype=np.uint8)
    pieces = []
    for j, name in enumerate(order):
        plane = np.asarray(stamp[CHANNELS.index(name)], dtype=np.float64)
        grey = render_panel(plane, stretch=stretch)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        if nan_color is not None:
            rgb[~np.isfinite(plane)] = nan_color
        if j:
            pieces.append(spacer)
        pieces.append(rgb)
    image = np.concatenate(pieces, axis=1)[::-1]  # y up
    return np.repeat(np.repeat(image, int(scale), axis=0), int(scale), axis=1)


def render_triplet_png(stamp: np.ndarray, **options: object) -> bytes:
    """:func:`render_triplet` encoded as PNG bytes (RGB, 8 bit; no metadata).

    Parameters
    ----------
    stamp : ndarray of shape (3, S, S)
    **options
        Keyword arguments of :func:`render_triplet` (order, stretch, scale, gap, nan_color).

    Returns
    -------
    bytes
        A PNG file.
    """
    buf = io.BytesIO()
    Image.fromarray(render_triplet(stamp, **options), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def gallery_figure(
    stamps: np.ndarray,
    captions: Sequence[str],
    *,
    ncol: int = 2,
    stretch: Stretch = "zscale",
    panel_inches: float = 1.3,
) -> Figure:
    """A grid of triplets with a caption above each (matplotlib; no pyplot state).

    Parameters
    ----------
    stamps : ndarray of shape (n, 3, S, S)
        Triplets in `CHANNELS` order; drawn difference | science | template.
    captions : sequence of n str
        Text above each triplet (id, kind, SNR, score...).
    ncol : int
        Triplets per row.
    stretch : {"zscale", "asinh"}
    panel_inches : float
        Height of one triplet row, inches (its width is three times that).

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(stamps)
    nrow = max(1, int(np.ceil(n / ncol)))
    fig = Figure(figsize=(ncol * 3.15 * panel_inches, nrow * (panel_inches + 0.35)))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for k, (stamp, caption) in enumerate(zip(stamps, captions, strict=True)):
        ax = axes.ravel()[k]
        ax.imshow(render_triplet(stamp, stretch=stretch, scale=1, gap=2), interpolation="nearest")
        ax.set_title(caption, fontsize=7, loc="left")
    names = " | ".join(CHANNELS)
    height = fig.get_figheight()
    fig.suptitle(
        f"{names}; {stretch} per panel, y up, magenta: NaN", fontsize=7, y=1 - 0.05 / height
    )
    fig.tight_layout(pad=0.3, h_pad=0.6, w_pad=0.3, rect=(0, 0, 1, 1 - 0.3 / height))
    return fig
