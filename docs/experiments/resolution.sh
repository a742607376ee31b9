#!/usr/bin/env bash
# The resolution experiment of docs/ANALYSIS.md (section 5, eleventh session): the notebook CNN
# trained on the same faces at 64x64 and at 128x128. Only UTKFace's crop_part1 (9,780 faces) is
# published above 64px, so both models train and are tested on its own split, made by `prepare`
# with the default seed; the built-in model is left out, since crop_part1's test faces are in the
# 64px set's training split. About 15 minutes for the 64px model and an hour for the 128px one on
# 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/gender-classifier
cargo build --release
[ -d data/utkface-part1 ] || $bin prepare ../shared/data/utkface-crop_part1-200px.tar.gz --out data/utkface-part1
for size in 64 128; do
  $bin train --data data/utkface-part1 --arch cnn --out "data/exp-part1-$size" \
    --image-size "$size" --epochs 20 --batch-size 64 --lr 2e-3 --warmup-epochs 1 --patience 6 --workers 2
done
$bin compare --data data/utkface-part1 --split test --out data/exp-resolution-compare \
  --model data/exp-part1-64 --model data/exp-part1-128 \
  --model flip:data/exp-part1-64 --model flip:data/exp-part1-128
