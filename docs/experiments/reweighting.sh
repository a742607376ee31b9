#!/usr/bin/env bash
# The reweighting experiment of docs/ANALYSIS.md (section 5): the built-in model's recipe, shortened
# to 5 epochs, trained twice from the same seed, once with plain cross-entropy and once with every
# race x gender cell of the training split weighing the same (--balance race-gender); then both
# evaluated side by side on the same test split. About 25 minutes a run on 2 cores.
# Then (seventeenth session) the reweighted run at the built-in model's full length (30 epochs,
# patience 6), compared with the built-in model: about 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/gender-classifier
cargo build --release
[ -d data/utkface-64 ] || $bin prepare ../shared/data/utkface-aligned-64px.tar.gz --out data/utkface-64
common=(--data data/utkface-64 --arch cnn --image-size 64 --epochs 5 --batch-size 64 --lr 2e-3
        --warmup-epochs 1 --workers 2)
$bin train "${common[@]}" --out data/exp-plain
$bin train "${common[@]}" --balance race-gender --out data/exp-balanced
$bin compare --data data/utkface-64 --split test --out data/exp-compare \
  --model data/exp-plain --model data/exp-balanced
$bin train --data data/utkface-64 --arch cnn --image-size 64 --epochs 30 --batch-size 64 --lr 2e-3 \
  --warmup-epochs 1 --patience 6 --workers 2 --balance race-gender --out data/exp-balanced-30
$bin compare --data data/utkface-64 --split test --out data/exp-balanced-30-compare \
  --model builtin --model data/exp-balanced-30
