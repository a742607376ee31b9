#!/usr/bin/env bash
# The longer-training experiment of docs/ANALYSIS.md (section 5, ninth session): the built-in
# model's recipe run for 30 epochs instead of 12 (same seed, split and settings otherwise), then
# compared on the test split with the 12-epoch model it replaced, read back from git history.
# About 70 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/gender-classifier
cargo build --release
[ -d data/utkface-64 ] || $bin prepare ../shared/data/utkface-aligned-64px.tar.gz --out data/utkface-64
$bin train --data data/utkface-64 --arch cnn --out data/exp-30-epochs \
  --image-size 64 --epochs 30 --batch-size 64 --lr 2e-3 --warmup-epochs 1 --patience 6 --workers 2
# The 12-epoch built-in model, as committed before the ninth session.
mkdir -p data/exp-12-epochs
for f in model.json model.safetensors history.csv; do
  git show "1847462:models/builtin/$f" > "data/exp-12-epochs/$f"
done
$bin compare --data data/utkface-64 --split test --out data/exp-epochs-compare \
  --model data/exp-12-epochs --model data/exp-30-epochs
