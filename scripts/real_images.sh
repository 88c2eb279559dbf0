#!/usr/bin/env bash
# Real exposures in (issue 18): the SAAO and NIRCam injection datasets of docs/real-images.md and
# the rubin-v0.1 fine-tune on SAAO injections + simulation (an experiment: not a built-in).
#   BUILD=build/real-images bash scripts/real_images.sh
# DATA_ONLY=1 stops after the datasets (saao-train, saao-heldout, nircam, sim-train, sim-test),
# as scripts/train_builtin.sh rubin-v0.4 uses it.
# --no-noise-rescale: rubin-v0.4 was trained and measured on injections made before `inject`
# rescaled the difference's noise (its default since); the flag keeps this recipe's data as it was.
set -euo pipefail
BUILD=${BUILD:-build/real-images}
DATA=${DATA:-../shared/data/images}
mkdir -p "$BUILD"

# SAAO 1.0 m: template of the 10 best-seeing frames, fakes into the other 77.
realbogus template "$DATA"/saao-1m/*.fits --best 10 --out "$BUILD/saao-T.fits" --overwrite
science=$(python - "$BUILD/saao-T.fits" "$DATA/saao-1m" <<'PY'
import sys
from pathlib import Path
from astropy.io import fits
used = set(fits.open(sys.argv[1])["FRAMES"].data["name"])
print(" ".join(str(p) for p in sorted(Path(sys.argv[2]).glob("*.fits")) if p.stem not in used))
PY
)
# shellcheck disable=SC2086
realbogus inject --template "$BUILD/saao-T.fits" --out "$BUILD/saao" --fakes-per-image 60 --seed 1 \
    --workers 2 --overwrite --no-noise-rescale --science $science

# JWST NIRCam F200W: template = the earlier epoch; its later epoch 12 times (12 fake draws).
D="$DATA/jwst-nircam"
T=jw01324001001-01324-o001_t001_nircam_clear-f200w_i2d_stamp
S=jw02561001002-02561-o001_t003_nircam_clear-f200w_i2d_stamp
realbogus template "$D/$T.fits" --noise "$D/$T.noise.fits" --psf "$D/$T.WebbPSF.fits" --best 1 \
    --out "$BUILD/nircam-T.fits" --overwrite
args=()
for _ in $(seq 12); do args+=(--science "$D/$S.fits" --noise "$D/$S.noise.fits"); done
realbogus inject --template "$BUILD/nircam-T.fits" --psf "$D/$S.WebbPSF.fits" --out "$BUILD/nircam" \
    --fakes-per-image 150 --seed 1 --workers 2 --overwrite --no-noise-rescale "${args[@]}"

# SAAO split by night (train: 2013-08-01/02/03; the rest held out), field = 1000 + night index.
python scripts/split_nights.py "$BUILD/saao" "$DATA/saao-1m" "$BUILD/saao" --field night

realbogus simulate --survey rubin --visits 40 --seed 101 --out "$BUILD/sim-train" --overwrite
realbogus simulate --survey rubin --visits 30 --seed 202 --out "$BUILD/sim-test" --overwrite
[ "${DATA_ONLY:-0}" = 0 ] || exit 0
python - "$BUILD" <<'PY'
import sys
from pathlib import Path
from realbogus.io.dataset import concat_datasets, open_dataset
b = Path(sys.argv[1])
concat_datasets([(open_dataset(b / "saao-train"), None), (open_dataset(b / "sim-train"), None)],
                b / "mix-train", overwrite=True)
PY
for pair in "mix-train rubin-real" "sim-train rubin-simft"; do
    set -- $pair
    rm -rf "$BUILD/$2"
    realbogus train --data "$BUILD/$1" --from rubin-v0.1 --out "$BUILD/$2" --name rubin --version "$2" \
        --epochs 6 --patience 2 --lr 1e-4 --weight-decay 1e-3 --seed 2 --cutoff auto
done
# The SAAO (ADU) and NIRCam injections are not the Rubin models' nJy data: --force (their
# asinh-noise input is unit-free).
for data in saao-heldout nircam sim-test; do
    realbogus evaluate --model rubin-v0.1 --model rubin-v0.3 --model "$BUILD/rubin-simft" \
        --model "$BUILD/rubin-real" --data "$BUILD/$data" --out "$BUILD/report-$data" --n-boot 0 --overwrite --force
done
for model in rubin-v0.1 "$BUILD/rubin-simft" "$BUILD/rubin-real"; do
    python benchmarks/real_data.py --rubin-model "$model" | head -4
done
