"""Tests of realbogus.render, the one stamp renderer."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from realbogus.errors import ConfigError, InputError
from realbogus.render import (
    NAN_COLOR,
    render_panel,
    render_triplet,
    render_triplet_png,
)


def _stamp() -> np.ndarray:
    rng = np.random.default_rng(0)
    stamp = rng.normal(0, 1, (3, 11, 11)).astype(np.float32)
    stamp[1] += 1000  # sky level on the science image
    stamp[2, 2, 5] = 50  # a bright template pixel near the bottom
    return stamp


def test_triplet_shape_order_and_orientation():
    """diff | sci | tmpl left to right with white gaps, y up (row 0 at the bottom)."""
    img = render_triplet(_stamp(), scale=2, gap=1)
    assert img.shape == (22, (33 + 2) * 2, 3) and img.dtype == np.uint8
    tmpl = img[:, 48:70, 0]
    assert tmpl[21 - 2 * 2, 2 * 5] == 255  # stamp row 2 is third from the bottom
    assert (img[:, 22:24] == 255).all()
    sci = img[:, 24:46, 0]
    assert sci.min() < 30 and sci.max() > 225  # zscale: not washed out by the sky level


def test_nan_pixels_marked_and_grey_without_colour():
    """NaN pixels are magenta by default; with nan_color=None the planes are equal (grey)."""
    stamp = _stamp()
    stamp[0, 0, :] = np.nan
    img = render_triplet(stamp, scale=1, gap=0)
    assert (img[-1, :11] == NAN_COLOR).all()
    grey = render_triplet(stamp, scale=1, gap=0, nan_color=None)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()


def test_asinh_keeps_bright_cores_and_png_round_trips():
    """asinh saturates fewer pixels of a bright star than linear zscale; the PNG decodes to
    the same array."""
    stamp = _stamp()
    yy, xx = np.mgrid[:11, :11]
    star = 1e4 * np.exp(-((yy - 5) ** 2 + (xx - 5) ** 2) / (2 * 1.5**2))
    lin = render_panel(stamp[0] + star, stretch="zscale")
    ash = render_panel(stamp[0] + star, stretch="asinh")
    assert (ash == 255).sum() < (lin == 255).sum()
    png = render_triplet_png(stamp, stretch="asinh", scale=3)
    decoded = np.asarray(Image.open(io.BytesIO(png)))
    np.testing.assert_array_equal(decoded, render_triplet(stamp, stretch="asinh", scale=3))


def test_bad_inputs_name_the_option():
    """Wrong shapes, orders and stretches are refused with the allowed values."""
    with pytest.raises(InputError, match=r"\(3, S, S\)"):
        render_triplet(np.zeros((2, 5, 5)))
    with pytest.raises(ConfigError, match="order"):
        render_triplet(_stamp(), order=("difference", "difference", "template"))
    with pytest.raises(ConfigError, match="stretch"):
        render_panel(_stamp()[0], stretch="log")
    assert (render_panel(np.full((4, 4), np.nan)) == 128).all()
