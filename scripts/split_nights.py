"""Split a real-image injection dataset by night (`DATE-OBS` of each frame's FITS header).

    python scripts/split_nights.py DATASET FRAMES_DIR OUT_PREFIX [--field night|visit] [--binned N]

writes OUT_PREFIX-train (the nights 2013-08-01/02/03 of the SAAO series) and OUT_PREFIX-heldout
(every other night), with `field` = 1000 + night index (`--field night`: the train/validation
split of `realbogus train` then keeps nights apart) or 1000 + visit (`--field visit`: it draws
from every frame). Used by scripts/real_images.sh and scripts/ztf_real_images.sh.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits

from realbogus.io.dataset import open_dataset, write_dataset
from realbogus.stamps import Stamps

TRAIN_NIGHTS = frozenset({"2013-08-01", "2013-08-02", "2013-08-03"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("frames", type=Path, help="folder of the frames' FITS files")
    ap.add_argument("prefix", type=Path, help="writes PREFIX-train and PREFIX-heldout")
    ap.add_argument("--field", choices=("night", "visit"), default="night")
    ap.add_argument("--binned", type=int, help="recorded in the provenance")
    args = ap.parse_args()
    ds = open_dataset(args.dataset)
    visits = pd.read_parquet(args.dataset / "visits.parquet")
    night = {
        r.visit: fits.getheader(args.frames / f"{r.frame}.fits")["DATE-OBS"]
        for r in visits.itertuples()
    }
    t, s = ds.table(), ds.stamps()
    n = t["visit"].map(night)
    if args.field == "night":
        index = {d: i for i, d in enumerate(sorted(set(night.values())))}
        t["field"] = (1000 + n.map(index)).astype(np.int32)
    else:
        t["field"] = (1000 + t["visit"]).astype(np.int32)
    train = n.isin(TRAIN_NIGHTS).to_numpy()
    for name, mask in (("train", train), ("heldout", ~train)):
        rows = t[mask].drop(columns=["valid_fraction", "edge"]).reset_index(drop=True)
        provenance = {"pixel_units": "ADU", "nights": sorted(set(n[mask]))}
        if args.binned:
            provenance["binned"] = args.binned
        write_dataset(
            Path(f"{args.prefix}-{name}"),
            rows,
            Stamps(s.data[mask], s.valid_fraction[mask], s.edge[mask]),
            provenance=provenance,
            overwrite=True,
        )


if __name__ == "__main__":
    main()
