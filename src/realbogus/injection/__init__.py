"""Real exposures in: templates from real frames and PSF fakes injected into them.

`template` coadds the best-seeing frames of a field; `inject` registers the template to each
science frame, measures the PSF, injects fakes, and runs the same difference-imaging chain as
the simulation (`realbogus.sim.dia`) to write a standard labelled dataset.
"""

from .frames import Frame, read_frame
from .psf import measure_psf, read_psf
from .register import Registration, find_stars, register, warp
from .template import Template, build_template, read_template, write_template

__all__ = [
    "Frame",
    "read_frame",
    "measure_psf",
    "read_psf",
    "Registration",
    "find_stars",
    "register",
    "warp",
    "Template",
    "build_template",
    "read_template",
    "write_template",
]
