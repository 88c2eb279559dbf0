"""Screenshot each section of an evaluate report with headless Chromium (for docs/report.md).

    python scripts/report_screenshots.py REPORT_DIR OUT_DIR [--width 1280] [--max-height 1800]

For every ``<section id=...>`` of REPORT_DIR/report.html it writes OUT_DIR/<id>.png: the page
with only the title and that section shown, cropped below the section (and at --max-height),
reduced to a 256-colour palette to keep the files small. Needs Chromium (Debian: chromium).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("headless Chromium not found (Debian: apt-get install chromium)")


def shoot(page: Path, out: Path, *, width: int, height: int, profile: Path) -> None:
    """One screenshot of `page` at width x height pixels."""
    subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )


def crop(path: Path, max_height: int) -> None:
    """Cut the white rows below the content (and at max_height); palette PNG."""
    img = Image.open(path).convert("RGB")
    rows = np.flatnonzero((np.asarray(img) < 245).any(axis=(1, 2)))
    bottom = min(int(rows[-1]) + 16 if len(rows) else img.height, max_height)
    img.crop((0, 0, img.width, bottom)).quantize(256).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--max-height", type=int, default=1800)
    args = parser.parse_args()
    html = (args.report / "report.html").read_text()
    ids = re.findall(r"<section id=([A-Za-z0-9_-]+)>", html)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for sid in ids:
            style = f"<style>body>*:not(#{sid}):not(h1){{display:none!important}}</style>"
            page = tmp / f"{sid}.html"
            page.write_text(html.replace("</head>", style + "</head>", 1))
            target = args.out / f"{sid}.png"
            shoot(page, target, width=args.width, height=6000, profile=tmp / "profile")
            crop(target, args.max_height)
            print(f"{target}")


if __name__ == "__main__":
    main()
