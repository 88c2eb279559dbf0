"""`realbogus template` and `realbogus inject`: real exposures in (issue 18). No logic here.

Registered in `cli.py` with ``app.command("template")(template)`` and
``app.command("inject")(inject)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import RealBogusError

__all__ = ["template", "inject"]


# Options that `template` and `inject` share.
GainOption = Annotated[
    float | None, typer.Option(help="Electrons per pixel unit (default: header GAIN).")
]
ReadNoiseOption = Annotated[
    float | None, typer.Option(help="Read noise, electrons (default: header RDNOISE).")
]
SaturationOption = Annotated[
    float | None, typer.Option(help="Saturation level (default: header, else the plateau).")
]

# Options that `inject` and `variables` share.
TemplateFileOption = Annotated[Path, typer.Option(help="Template FITS from `realbogus template`.")]
MoreFramesArgument = Annotated[
    list[Path] | None,
    typer.Argument(
        help="More science frames (what follows --science S1.fits).", show_default=False
    ),
]
PsfOption = Annotated[
    Path | None, typer.Option(help="PSF model FITS for the science frames (default: measure).")
]
TemplatePsfOption = Annotated[
    Path | None, typer.Option(help="PSF model FITS of the template (default: its PSF HDU).")
]
NoiseMapsOption = Annotated[
    list[Path] | None,
    typer.Option(help="Noise (sigma) map per science frame, in order (repeat the flag)."),
]
WorkersOption = Annotated[int | None, typer.Option(help="Processes (default: all cores).")]


def template(
    frames: Annotated[list[Path], typer.Argument(help="FITS frames of one field and filter.")],
    out: Annotated[Path, typer.Option(help="Template FITS file to write.")],
    best: Annotated[int, typer.Option(help="Coadd the N best-seeing frames.")] = 10,
    gain: GainOption = None,
    read_noise: ReadNoiseOption = None,
    saturation: SaturationOption = None,
    noise: Annotated[
        list[Path] | None,
        typer.Option(help="Noise (sigma) map per frame, in the order of FRAMES (repeat the flag)."),
    ] = None,
    variance: Annotated[
        list[Path] | None,
        typer.Option(help="Variance map per frame, in the order of FRAMES (repeat the flag)."),
    ] = None,
    psf: Annotated[
        Path | None, typer.Option(help="PSF model FITS of the coadd (default: measure it).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out file.")
    ] = False,
) -> None:
    """Build a template from real frames: register (WCS, else the frames' own stars with
    astroalign), pick the --best best-seeing frames, PSF-aware weighted coadd with a variance
    plane and the coadd's measured PSF."""
    from ..errors import InputError
    from ..injection import build_template, read_frame, read_psf, write_template
    from .common import console, fail, progress_bar

    try:
        for flag, maps in (("--noise", noise), ("--variance", variance)):
            if maps and len(maps) != len(frames):
                msg = f"{flag} needs one map per frame ({len(frames)}); got {len(maps)}"
                raise InputError(msg)
        if out.exists() and not overwrite:
            msg = f"{out} already exists; choose another --out or pass --overwrite"
            raise InputError(msg)
        read = [
            read_frame(
                path,
                gain=gain,
                read_noise=read_noise,
                saturation=saturation,
                noise=noise[i] if noise else None,
                variance=variance[i] if variance else None,
            )
            for i, path in enumerate(frames)
        ]
        model = read_psf(psf, shape=read[0].shape) if psf else None
        with progress_bar("building the template") as progress:
            result = build_template(read, best=best, psf=model, progress=progress)
        write_template(result, out, overwrite=overwrite)
    except RealBogusError as exc:
        raise fail(exc) from exc
    used = ", ".join(result.frames["name"])
    console.print(
        f"template of {len(result.frames)} frames (PSF FWHM {result.fwhm_px:.2f} px) -> {out}\n"
        f"frames: {used}"
    )


def inject(
    template: TemplateFileOption,
    out: Annotated[Path, typer.Option(help="Output dataset directory.")],
    science: Annotated[
        list[Path] | None,
        typer.Option(help="Science frame(s): --science S1.fits S2.fits ... (or repeat the flag)."),
    ] = None,
    more: MoreFramesArgument = None,
    fakes_per_image: Annotated[int, typer.Option(help="PSF fakes drawn per frame.")] = 60,
    copies: Annotated[
        int,
        typer.Option(
            help="Inject into each science frame this many times (its maps with it), each copy "
            "with its own fakes; the frame's Bogus detections repeat in every copy."
        ),
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same dataset.")] = 0,
    psf: PsfOption = None,
    template_psf: TemplatePsfOption = None,
    variance: Annotated[
        list[Path] | None,
        typer.Option(help="Variance map per science frame, in order (repeat the flag)."),
    ] = None,
    noise: NoiseMapsOption = None,
    mask: Annotated[
        list[Path] | None,
        typer.Option(help="Bad-pixel mask per science frame (non-zero = bad; repeat the flag)."),
    ] = None,
    gain: GainOption = None,
    read_noise: ReadNoiseOption = None,
    saturation: SaturationOption = None,
    subtraction: Annotated[str, typer.Option(help="Image subtraction: al or zogy.")] = "al",
    negative_fraction: Annotated[
        float, typer.Option(help="Fraction of fakes put into the template (negative).")
    ] = 0.3,
    known: Annotated[
        Path | None,
        typer.Option(
            help="Catalogue of known real sources (CSV/Parquet): x, y (frame pixels), "
            "template_x, template_y (template pixels, as `realbogus variables` writes) or ra, "
            "dec; optional origin."
        ),
    ] = None,
    known_action: Annotated[
        str, typer.Option(help="Detections on a known source: drop or real.")
    ] = "drop",
    stamp_size: Annotated[int, typer.Option(help="Stamp side, pixels (odd).")] = 51,
    noise_rescale: Annotated[
        bool,
        typer.Option(
            "--noise-rescale/--no-noise-rescale",
            help="Scale each difference's variance plane by the SNR map's measured noise (robust "
            "std at quiet pixels of a fake-free first subtraction) before detection and before "
            "drawing the fakes' SNR; --no-noise-rescale uses the variance plane as given (the "
            "datasets made before this option).",
        ),
    ] = True,
    noise_density: Annotated[
        bool,
        typer.Option(
            "--noise-density/--no-noise-density",
            help="With rescaling: let the noise factor follow the local density of the "
            "template's sources (binned on the quiet pixels; one factor per frame where the "
            "density does not matter); --no-noise-density: one factor per frame.",
        ),
    ] = True,
    pixel_scale: Annotated[
        float | None, typer.Option(help="Arcsec per pixel (seeing columns in arcsec).")
    ] = None,
    survey: Annotated[
        str | None, typer.Option(help="survey column (default: header TELESCOP).")
    ] = None,
    workers: WorkersOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output directory.")
    ] = False,
) -> None:
    """Inject PSF fakes into real science frames, subtract the template (A&L + decorrelation
    or ZOGY), detect both polarities and write a labelled dataset (as `simulate` does) with
    DIR/preview.png and the PSF of every frame in DIR/psf/."""
    from ..errors import InputError
    from ..injection.inject import InjectConfig
    from ..injection.run import FrameOptions, inject_dataset, read_known
    from .common import console, fail, progress_bar

    try:
        science = [*(science or []), *(more or [])]
        if not science:
            msg = "no science frames; pass --science S.fits [S ...]"
            raise InputError(msg)
        if copies < 1:
            msg = f"--copies must be at least 1; got {copies}"
            raise InputError(msg)
        # Copies follow the frames' order (S1 S2 S1 S2 ...), per-frame maps with them.
        science = science * copies
        config = InjectConfig(
            n_fakes=fakes_per_image,
            method=subtraction,
            negative_fraction=negative_fraction,
            stamp_size=stamp_size,
            rescale_noise=noise_rescale,
            noise_density=noise_density,
        )
        options = FrameOptions(
            variance=tuple(map(str, variance or ())) * copies,
            noise=tuple(map(str, noise or ())) * copies,
            mask=tuple(map(str, mask or ())) * copies,
            gain=gain,
            read_noise=read_noise,
            saturation=saturation,
            psf=str(psf) if psf else None,
            template_psf=str(template_psf) if template_psf else None,
            pixel_scale=pixel_scale,
        )
        catalog = read_known(known) if known else None
        with progress_bar("injecting into frames") as progress:
            path = inject_dataset(
                science,
                template,
                out,
                config=config,
                seed=seed,
                options=options,
                known=catalog,
                known_action=known_action,
                survey=survey,
                workers=workers,
                overwrite=overwrite,
                progress=progress,
            )
    except RealBogusError as exc:
        raise fail(exc) from exc
    s = json.loads((path / "summary.json").read_text())
    # The must-show's estimator (docs/real-images.md): pooled pair differences when measured.
    pooled = s.get("snr_robust_std_pooled", {}).get("pair_difference")
    away = (
        f"{pooled:.2f} away from sources (pooled pair differences)"
        if pooled is not None
        else f"{s['snr_map_robust_std_median']:.2f} away from sources (median over frames)"
    )
    console.print(
        f"{s['n_detections']} detections ({s['n_real']} Real, {s['n_bogus']} Bogus) from "
        f"{s['n_frames']} frames, {s['n_fakes']} fakes; fakes with SNR >= 6 detected: "
        f"{s['fake_completeness_snr_ge_6']:.3f}; median psfFlux/true (SNR > 20): "
        f"{s['median_psfflux_ratio_snr_gt_20']:.3f}; SNR-map robust std (check cells): "
        f"{away}, "
        f"{s['snr_robust_std_frames']['away_from_detections_median']:.2f} away from detections; "
        f"noise scale {s['noise_scale']['median']:.2f} (median over frames) -> {path} "
        f"(preview: {path / 'preview.png'})"
    )


def variables(
    template: TemplateFileOption,
    out: Annotated[Path, typer.Option(help="Catalogue to write (CSV; .parquet for Parquet).")],
    science: Annotated[
        list[Path] | None,
        typer.Option(help="Science frames (at least 10): --science S1.fits S2.fits ..."),
    ] = None,
    more: MoreFramesArgument = None,
    psf: PsfOption = None,
    template_psf: TemplatePsfOption = None,
    noise: NoiseMapsOption = None,
    gain: GainOption = None,
    read_noise: ReadNoiseOption = None,
    saturation: SaturationOption = None,
    min_chi2: Annotated[
        float, typer.Option(help="Least reduced chi^2 of a star's difference light curve.")
    ] = 5.0,
    min_outliers: Annotated[
        int, typer.Option(help="Least frames where the star is more than 5 sigma off.")
    ] = 3,
    workers: WorkersOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out file.")
    ] = False,
) -> None:
    """Find the field's variable stars in its own frames (difference-image light curves of the
    template's stars) and write the catalogue `inject --known` reads (template pixels)."""
    from ..errors import InputError
    from ..injection.run import FrameOptions, field_variables
    from ..io.tables import write_table
    from .common import console, fail, progress_bar

    try:
        frames = [*(science or []), *(more or [])]
        if out.exists() and not overwrite:
            msg = f"{out} already exists; choose another --out or pass --overwrite"
            raise InputError(msg)
        options = FrameOptions(
            noise=tuple(map(str, noise or ())),
            gain=gain,
            read_noise=read_noise,
            saturation=saturation,
            psf=str(psf) if psf else None,
            template_psf=str(template_psf) if template_psf else None,
        )
        with progress_bar("light curves of the template's stars") as progress:
            stars = field_variables(
                frames,
                template,
                options=options,
                min_chi2=min_chi2,
                min_outliers=min_outliers,
                workers=workers,
                progress=progress,
            )
        write_table(stars, out)
    except RealBogusError as exc:
        raise fail(exc) from exc
    n = int(stars["variable"].sum())
    console.print(
        f"{n} variable of {len(stars)} template stars over {len(frames)} frames "
        f"(reduced chi^2 >= {min_chi2:g}, >= {min_outliers} frames over 5 sigma) -> {out}; "
        f"use it with `realbogus inject --known {out}`"
    )
