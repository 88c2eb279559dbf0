"""Validated, immutable configuration of a simulated survey, the `rubin` and `ztf` presets, YAML overrides.

Units: angles in arcsec, pixel scale in arcsec/pixel, magnitudes AB, fluxes in nJy (converted to
electrons in one place, `SimConfig.njy_per_electron`), counts per *image* (not per area, so a preset's
image size and its object counts go together), times in days.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError

__all__ = [
    "PRESETS",
    "Range",
    "SceneConfig",
    "InjectionConfig",
    "ArtifactConfig",
    "SubtractionConfig",
    "SimConfig",
    "preset",
    "register_preset",
    "load_config",
]

#: AB magnitude of 1 nJy.
AB_NJY_ZERO = 31.4

Range = tuple[float, float]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="after")
    def _ranges_ordered(self) -> _Frozen:
        for name, value in self:
            if (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(v, (int, float)) for v in value)
            ):
                if value[0] > value[1]:
                    msg = f"{name} must be (low, high) with low <= high; got {value}"
                    raise ValueError(msg)
        return self


class SceneConfig(_Frozen):
    """Static sky of a field: stars and galaxies (counts per image)."""

    n_stars: int = Field(150, ge=0, description="stars per image")
    star_mag: Range = Field((16.5, 24.5), description="star magnitude range (power-law counts)")
    n_bright_stars: float = Field(
        1.5, ge=0, description="mean number of saturating stars per image"
    )
    bright_star_mag: Range = Field((12.5, 16.0), description="magnitude range of saturating stars")
    variable_fraction: float = Field(0.15, ge=0, le=1, description="fraction of stars that vary")
    variable_amp_mag: float = Field(
        0.25,
        ge=0,
        description="rms magnitude change of a variable star x sqrt(template age in years)",
    )
    gaia_limit_mag: float = Field(
        20.7, description="stars brighter than this are catalogued (origin gaia)"
    )
    n_galaxies: int = Field(300, ge=0, description="galaxies per image")
    galaxy_mag: Range = Field((19.0, 25.5), description="galaxy magnitude range (power-law counts)")
    galaxy_hlr: Range = Field((0.25, 1.6), description="disk half-light radius range, arcsec")
    knot_fraction: float = Field(
        0.3, ge=0, le=1, description="fraction of galaxies with star-forming knots"
    )
    real_host_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="fraction of galaxies drawn from real HST images (needs hosts_dir)",
    )
    hosts_dir: str | None = Field(
        None,
        description="folder of real HST galaxy images (single-HDU FITS, 0.03 arcsec/px), e.g. shared/data/hosts/galsim",
    )


class InjectionConfig(_Frozen):
    """Real class: injected PSF fakes, asteroids, transients (counts per visit)."""

    n_fakes: int = Field(80, ge=0, description="PSF fakes injected per visit")
    fake_snr: Range = Field((3.0, 100.0), description="true PSF SNR range of fakes")
    fake_snr_power: float = Field(
        -1.3, description="dN/dSNR ~ SNR**power (negative weights faint sources)"
    )
    host_fraction: float = Field(
        0.5, ge=0, le=1, description="fraction of fakes placed in galaxies"
    )
    negative_fraction: float = Field(
        0.3,
        ge=0,
        le=1,
        description="fraction of fakes put in the template (negative in the difference)",
    )
    n_asteroids: float = Field(6.0, ge=0, description="mean asteroids per visit")
    trailed_fraction: float = Field(0.4, ge=0, le=1, description="fraction of asteroids that trail")
    trail_length: Range = Field((3.0, 25.0), description="trail length range, pixels")
    known_asteroid_fraction: float = Field(
        0.9, ge=0, le=1, description="asteroids in the catalog (ss)"
    )
    n_transients: float = Field(8.0, ge=0, description="mean transients in galaxies per visit")
    transient_faded_fraction: float = Field(
        0.2, ge=0, le=1, description="transients brighter in the template than now (negative)"
    )
    known_transient_fraction: float = Field(0.5, ge=0, le=1, description="transients on TNS (tns)")
    variable_min_snr: float = Field(
        3.0,
        ge=0,
        description="variable stars count as Real truth when |change| has at least this SNR",
    )
    match_radius_arcsec: float = Field(
        0.5,
        ge=0,
        description="a detection is Real within this distance of a same-polarity truth source "
        "(Rubin's MatchInjectedToDiaSourceTask default); never under 1 pixel",
    )


class ArtifactConfig(_Frozen):
    """Bogus class: instrumental and processing artifacts (counts per visit)."""

    misregistration_px: float = Field(0.05, ge=0, description="max global post-warp offset, pixels")
    jitter_px: float = Field(0.02, ge=0, description="rms per-object astrometric jitter, pixels")
    jitter_tail_fraction: float = Field(
        0.1, ge=0, le=1, description="fraction of point sources with 5x jitter (proper motion, DCR)"
    )
    n_cosmic_rays: float = Field(20.0, ge=0, description="mean cosmic rays in the science image")
    n_template_cosmic_rays: float = Field(
        1.0, ge=0, description="mean unrejected CRs in the template"
    )
    n_hot_pixels: float = Field(12.0, ge=0, description="mean hot pixels per science image")
    p_bad_column: float = Field(0.5, ge=0, le=1, description="chance of a bad column per visit")
    p_nan_rowcol: float = Field(
        0.6, ge=0, le=1, description="chance of NaN row/column segments in the science per visit"
    )
    p_template_nan: float = Field(
        0.3, ge=0, le=1, description="chance of NaN rows/columns in the template"
    )
    p_satellite: float = Field(0.2, ge=0, le=1, description="chance of a satellite trail per visit")
    p_edge_glow: float = Field(0.3, ge=0, le=1, description="chance of amplifier glow at an edge")
    n_noise_patches: float = Field(
        3.0,
        ge=0,
        description="mean patches of unmodelled correlated noise (not in the variance plane)",
    )
    crosstalk: Range = Field(
        (0.0, 0.0),
        description="crosstalk coefficient range (log-uniform) of ghosts of saturated stars in the "
        "other three amplifiers; (0, 0) for none",
    )
    noise_patch_amp: Range = Field(
        (0.6, 1.4),
        description="extra rms of the SNR map inside a noise patch (1 = doubles the variance)",
    )


class SubtractionConfig(_Frozen):
    """Image subtraction and detection."""

    method: Literal["al", "zogy"] = "al"
    spatial_order: int = Field(
        1, ge=0, le=2, description="polynomial order of the A&L kernel variation"
    )
    n_candidates: int = Field(60, ge=8, description="max kernel candidate stars")
    clip_sigma: float = Field(3.0, gt=0, description="sigma-clipping of kernel candidates")
    threshold: float = Field(5.0, gt=0, description="detection threshold on |SNR map|")
    border_px: int = Field(3, ge=0, description="no detections this close to the image edge")
    aperture_radius_px: float = Field(12.0, gt=0, description="apFlux aperture radius, pixels")


class SimConfig(_Frozen):
    """A simulated survey: instrument, observing conditions, scene, truth, artifacts, subtraction."""

    name: str = "rubin"
    band: str = "r"
    pixel_scale: float = Field(0.2, gt=0, description="arcsec / pixel")
    image_size: int = Field(1024, ge=128, le=8192, description="image side, pixels")
    stamp_size: int = Field(51, ge=9, description="stamp side, pixels")
    zeropoint: float = Field(32.1, description="AB mag giving 1 electron in one exposure")
    zeropoint_scatter: float = Field(0.15, ge=0, description="transparency loss range, mag")
    sky_mag: Range = Field((20.4, 21.2), description="sky brightness range, mag / arcsec^2")
    cloudy_fraction: float = Field(
        0.0, ge=0, le=1, description="fraction of science visits taken through cloud"
    )
    cloud_extinction: Range = Field(
        (0.5, 2.5), description="cloud extinction range of a cloudy visit, mag"
    )
    cloud_patchiness: float = Field(
        0.05,
        ge=0,
        description="rms relative transparency variation across a cloudy image per mag of extinction",
    )
    gain: float = Field(1.6, gt=0, description="electrons / ADU")
    read_noise: float = Field(9.0, ge=0, description="electrons")
    saturation: float = Field(1.0e5, gt=0, description="full well, electrons")
    seeing: Range = Field((0.5, 1.3), description="science PSF FWHM range, arcsec")
    psf_gradient: float = Field(
        0.06, ge=0, description="max fractional FWHM change across the image"
    )
    psf_ellipticity: float = Field(0.05, ge=0, lt=0.5, description="max PSF |g|")
    template_seeing: Range = Field((0.65, 0.85), description="template (coadd) PSF FWHM, arcsec")
    template_beta: Range = Field((2.8, 4.0), description="template Moffat beta range")
    template_depth: Range = Field((10.0, 30.0), description="template depth in exposures")
    template_depth_sampling: Literal["uniform", "log"] = Field(
        "uniform", description="template depth drawn uniformly or log-uniformly in template_depth"
    )
    template_age_days: Range = Field(
        (30.0, 730.0), description="time from template to science, days"
    )
    epochs_per_field: int = Field(5, ge=1, description="science visits sharing one template")
    scene: SceneConfig = SceneConfig()
    injection: InjectionConfig = InjectionConfig()
    artifacts: ArtifactConfig = ArtifactConfig()
    subtraction: SubtractionConfig = SubtractionConfig()

    @model_validator(mode="after")
    def _consistent(self) -> SimConfig:
        if self.stamp_size % 2 == 0:
            msg = f"stamp_size must be odd (centred stamps); got {self.stamp_size}"
            raise ValueError(msg)
        if self.seeing[0] / self.pixel_scale < 1.2:
            msg = (
                f"seeing {self.seeing} arcsec is under 1.2 pixels at pixel_scale {self.pixel_scale}; "
                "the PSF would be badly undersampled"
            )
            raise ValueError(msg)
        if self.image_size < 4 * self.stamp_size:
            msg = f"image_size {self.image_size} must be at least 4 stamp sizes ({4 * self.stamp_size})"
            raise ValueError(msg)
        return self

    def njy_per_electron(self, zeropoint: float | None = None) -> float:
        """nJy of one electron at `zeropoint` (default the nominal one)."""
        zp = self.zeropoint if zeropoint is None else zeropoint
        return 10.0 ** ((AB_NJY_ZERO - zp) / 2.5)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-serialisable dict (round-trips through `SimConfig(**d)`)."""
        return self.model_dump(mode="json")


_RUBIN = SimConfig()

_ZTF = SimConfig(
    name="ztf",
    band="r",
    pixel_scale=1.01,
    image_size=512,
    stamp_size=63,
    # ZTF's magzpsci (~26.3) is per DN; per electron it is 2.5 log10(gain 6.2) = 2.0 mag fainter.
    # 28.3 gives the pixel noise of the real alerts' cutouts (median ~730 nJy in the difference).
    zeropoint=28.3,
    zeropoint_scatter=0.2,
    sky_mag=(20.2, 21.0),
    gain=6.2,
    read_noise=8.0,
    saturation=1.5e5,
    seeing=(1.5, 3.0),
    psf_gradient=0.08,
    template_seeing=(1.7, 2.1),
    template_depth=(15.0, 40.0),
    template_age_days=(100.0, 1500.0),
    scene=SceneConfig(
        n_stars=220,
        star_mag=(13.5, 21.0),
        n_bright_stars=2.0,
        bright_star_mag=(10.0, 13.0),
        n_galaxies=90,
        galaxy_mag=(16.5, 21.5),
        galaxy_hlr=(1.0, 4.0),
    ),
    injection=InjectionConfig(n_fakes=50, n_asteroids=4.0, n_transients=5.0),
    artifacts=ArtifactConfig(
        n_cosmic_rays=10.0, n_hot_pixels=8.0, misregistration_px=0.05, jitter_px=0.02
    ),
    subtraction=SubtractionConfig(n_candidates=50, aperture_radius_px=5.0),
)


def _small(config: SimConfig, image_size: int) -> SimConfig:
    """`config` on a smaller image, with every per-image count scaled by the area."""
    area = (image_size / config.image_size) ** 2
    data = config.to_dict()
    data["name"] = f"{config.name}-small"
    data["image_size"] = image_size
    data["epochs_per_field"] = 4
    for key in ("n_stars", "n_galaxies"):
        data["scene"][key] = max(int(round(data["scene"][key] * area)), 1)
    data["scene"]["n_bright_stars"] *= area
    for key in ("n_fakes",):
        data["injection"][key] = max(int(round(data["injection"][key] * area)), 1)
    for key in ("n_asteroids", "n_transients"):
        data["injection"][key] *= area
    for key in ("n_cosmic_rays", "n_hot_pixels", "n_noise_patches", "n_template_cosmic_rays"):
        data["artifacts"][key] *= area
    data["subtraction"]["n_candidates"] = max(20, int(data["subtraction"]["n_candidates"] * area))
    return SimConfig(**data)


#: Built-in survey presets by name. The ``-small`` ones (a quarter of the area, same density)
#: are for demos and tests.
PRESETS: dict[str, SimConfig] = {
    "rubin": _RUBIN,
    "ztf": _ZTF,
    "rubin-small": _small(_RUBIN, 512),
    "ztf-small": _small(_ZTF, 256),
}


def register_preset(config: SimConfig, *, small_size: int | None = None) -> SimConfig:
    """Add a survey preset under ``config.name`` (and, with `small_size`, ``<name>-small`` on a
    `small_size`-pixel image at the same densities); `simulate --survey NAME` then takes it.

    A name is registered once; registering another config under it is a ConfigError.
    """
    configs = [config] + ([_small(config, small_size)] if small_size else [])
    for item in configs:
        if PRESETS.get(item.name, item) != item:
            msg = f"a different survey preset named {item.name!r} is already registered"
            raise ConfigError(msg)
    for item in configs:
        PRESETS[item.name] = item
    return config


def preset(name: str) -> SimConfig:
    """Return the registered preset `name` (built in: rubin, ztf, rubin-small, ztf-small)."""
    if name not in PRESETS:
        msg = f"unknown survey preset {name!r}; choose one of {sorted(PRESETS)}"
        raise ConfigError(msg)
    return PRESETS[name]


def _merge(base: dict, override: dict, where: str) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merge(base[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def load_config(
    source: str | Path | dict | SimConfig | None = None, *, survey: str = "rubin"
) -> SimConfig:
    """Build a validated `SimConfig`: a preset, optionally overridden by a YAML file or a dict.

    Parameters
    ----------
    source : path to a YAML file, dict, SimConfig, or None
        Overrides (nested, partial) applied on top of the preset. A YAML file may name its own
        preset with a top-level ``survey:`` key.
    survey : str
        Preset to start from (``"rubin"`` or ``"ztf"``).

    Raises
    ------
    ConfigError
        Unknown preset, unreadable YAML, unknown keys or values out of range; the message names
        the file and the offending field.
    """
    if isinstance(source, SimConfig):
        return source
    where = "config"
    overrides: dict = {}
    if isinstance(source, (str, Path)):
        where = str(source)
        try:
            loaded = yaml.safe_load(Path(source).read_text())
        except OSError as exc:
            msg = f"{source}: cannot read config ({exc})"
            raise ConfigError(msg) from exc
        except yaml.YAMLError as exc:
            msg = f"{source}: not valid YAML ({exc})"
            raise ConfigError(msg) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            msg = f"{source}: the config must be a mapping of keys to values; got {type(loaded).__name__}"
            raise ConfigError(msg)
        overrides = loaded
    elif isinstance(source, dict):
        overrides = source
    elif source is not None:
        msg = f"config must be a YAML path, a dict or a SimConfig; got {type(source).__name__}"
        raise ConfigError(msg)
    overrides = dict(overrides)
    survey = overrides.pop("survey", survey)
    base = preset(survey).to_dict()
    merged = _merge(base, overrides, "")
    try:
        return SimConfig(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(str(p) for p in err['loc'])}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        msg = f"{where}: invalid simulation config: {problems}"
        raise ConfigError(msg) from exc
