"""Observing conditions of one simulated field: patchy cloud."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realbogus.sim.config import preset
from realbogus.sim.field import simulate_field, transparency_map


def test_transparency_map_is_smooth_patchy_and_seeded() -> None:
    """Mean 1, the asked rms, patches about a quarter of the image wide, same seed same map."""
    t = transparency_map(np.random.default_rng(1), (256, 256), rms=0.1)
    assert t.shape == (256, 256)
    assert abs(t.mean() - 1) < 1e-3 and abs(t.std() - 0.1) < 0.005
    neighbour = np.corrcoef(t[:, :-8].ravel(), t[:, 8:].ravel())[0, 1]
    far = np.corrcoef(t[:, :-128].ravel(), t[:, 128:].ravel())[0, 1]
    assert neighbour > 0.95 and abs(far) < 0.6
    np.testing.assert_array_equal(
        t, transparency_map(np.random.default_rng(1), (256, 256), rms=0.1)
    )


def test_cloudy_visits_are_shallower_and_leave_star_residuals() -> None:
    """Through 1.5 mag of patchy cloud the zero point drops by 1.5 mag and stars leave residuals."""
    clear = preset("ztf-small").model_copy(update={"cloudy_fraction": 0.0})
    cloudy = clear.model_copy(
        update={"cloudy_fraction": 1.0, "cloud_extinction": (1.5, 1.5), "cloud_patchiness": 0.1}
    )
    a = simulate_field(clear, field=2, seed=7, n_epochs=2, first_visit=0)
    b = simulate_field(cloudy, field=2, seed=7, n_epochs=2, first_visit=0)
    for va, vb in zip(a, b, strict=True):
        assert va.metrics["cloudExtinction"] == 0 and vb.metrics["cloudExtinction"] == 1.5
        assert vb.metrics["zeropoint"] == va.metrics["zeropoint"] - 1.5
    residuals = [
        int((pd.concat([v.table for v in visits])["truthKind"] == "star_residual").sum())
        for visits in (a, b)
    ]
    assert residuals[1] > 2 * residuals[0] + 5, residuals


def test_template_depth_can_be_drawn_log_uniformly() -> None:
    """Same draw, log-uniform is the geometric interpolation: never deeper than the uniform one."""
    uniform = preset("ztf-small").model_copy(
        update={"template_depth": (3.0, 60.0), "template_depth_sampling": "uniform"}
    )
    log = uniform.model_copy(update={"template_depth_sampling": "log"})
    for field in range(3):
        a = simulate_field(uniform, field=field, seed=1, n_epochs=1, first_visit=0)[0].metrics[
            "templateDepth"
        ]
        b = simulate_field(log, field=field, seed=1, n_epochs=1, first_visit=0)[0].metrics[
            "templateDepth"
        ]
        u = (a - 3.0) / 57.0
        assert b == pytest.approx(3.0 * 20.0**u) and b <= a
