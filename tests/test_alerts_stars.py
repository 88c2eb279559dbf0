"""Training samples from the field stars of real cutouts (`realbogus.alerts.stars`)."""

from __future__ import annotations

import numpy as np
import pytest

from realbogus.alerts.stars import StarConfig, find_stars, star_samples
from realbogus.errors import ConfigError
from realbogus.stamps import stamp_noise_array


def _cutouts(rng, n=3, size=63):
    """Cutouts with a star at (40, 20) in science and template, one at the centre, noise."""
    yy, xx = np.mgrid[:size, :size]

    def star(x, y, flux):
        return flux * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.2**2)) / (2 * np.pi * 1.2**2)

    stamps = rng.normal(0, 10, size=(n, 3, size, size)).astype(np.float32)
    for i in range(n):
        for c in (1, 2):
            stamps[i, c] += star(40, 20, 20_000) + star(31, 31, 20_000)
    stamps[2, :, 15:26, 35:46] = 0  # flagged pixels over the star of cutout 2
    return stamps


def test_find_stars_skips_the_candidate_and_flagged_stars(rng):
    stars = find_stars(_cutouts(rng))
    assert stars[["cutout", "x", "y"]].values.tolist() == [[0, 40, 20], [1, 40, 20]]
    assert (stars.peak_snr > 100).all()


def test_star_samples_are_the_stamp_as_is_and_with_the_star_varied(rng):
    stamps = _cutouts(rng)
    stars = find_stars(stamps)
    table, samples = star_samples(stamps, stars, size=51, seed=1)
    assert table.label.tolist() == [0, 1, 0, 1] and samples.data.shape == (4, 3, 51, 51)
    bogus, real = samples.data[0], samples.data[1]
    # centred on the star (rows -5..45, columns 15..65 of the cutout), zero beyond the cutout
    np.testing.assert_array_equal(bogus[:, 5:, :48], stamps[0, :, :46, 15:])
    assert (
        not bogus[:, :5].any()
        and not bogus[:, :, 48:].any()
        and samples.valid_fraction[0] == pytest.approx(46 * 48 / 51**2)
    )
    change = real - bogus
    np.testing.assert_array_equal(change[2], 0)  # the template is untouched
    np.testing.assert_allclose(
        change[0], change[1], atol=1e-3
    )  # same change in difference and science
    amplitude = table.amplitude[1]
    np.testing.assert_allclose(change[1, 25, 25], amplitude * stamps[0, 1, 20, 40], rtol=1e-4)
    r = StarConfig().box
    image = stamps[0, 1, 20 - r : 20 + r + 1, 40 - r : 40 + r + 1]
    snr = (
        abs(amplitude)
        * np.sqrt(np.sum(image.astype(float) ** 2))
        / stamp_noise_array(stamps[:1])[0]
    )
    assert table.snr[1] == pytest.approx(snr, rel=1e-4) and 6 <= table.snr[1] <= 100
    assert np.isnan(table.snr[0]) and table.amplitude[0] == 0


def test_star_samples_are_seeded_and_empty_input_is_fine(rng):
    stamps = _cutouts(rng)
    stars = find_stars(stamps)
    a, _ = star_samples(stamps, stars, size=63, seed=5)
    b, _ = star_samples(stamps, stars, size=63, seed=5)
    assert a.equals(b)
    table, samples = star_samples(stamps, stars.iloc[:0], size=63, seed=5)
    assert len(table) == 0 and samples.data.shape == (0, 3, 63, 63)
    with pytest.raises(ConfigError):
        StarConfig(box=10, border=8)
