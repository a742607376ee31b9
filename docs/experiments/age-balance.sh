#!/usr/bin/env bash
# The age-balancing experiment of docs/ANALYSIS.md (section 5, tenth session): the built-in
# model's recipe (30 epochs, same seed and split) with every age bucket x gender cell of the
# training split weighing the same in the loss (--balance age-gender), compared on the test split
# with the built-in model (the same recipe unweighted) and with both run on each face and its
# mirror (flip:). About an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/gender-classifier
cargo build --release
[ -d data/utkface-64 ] || $bin prepare ../shared/data/utkface-aligned-64px.tar.gz --out data/utkface-64
$bin train --data data/utkface-64 --arch cnn --out data/exp-age-balanced \
  --image-size 64 --epochs 30 --batch-size 64 --lr 2e-3 --warmup-epochs 1 --patience 6 --workers 2 \
  --balance age-gender
$bin compare --data data/utkface-64 --split test --out data/exp-age-compare \
  --model builtin --model data/exp-age-balanced \
  --model flip:builtin --model flip:data/exp-age-balanced
