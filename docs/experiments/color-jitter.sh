#!/usr/bin/env bash
# The augmentation experiment of docs/ANALYSIS.md (section 5, thirteenth session): the built-in
# model's recipe (64px, 30 epochs, AdamW 2e-3, one warm-up epoch, cosine, same seed and split) with
# colour jitter of 20% on the training images (brightness, contrast and saturation, as
# torchvision's ColorJitter(0.2, 0.2, 0.2)), compared with the built-in model on the test split,
# each also with the mirror averaged. No --patience, as in the five-block experiment, so that the
# run goes to 30 epochs whatever its validation loss does. About 35 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/gender-classifier
cargo build --release
[ -d data/utkface-64 ] || $bin prepare ../shared/data/utkface-aligned-64px.tar.gz --out data/utkface-64
$bin train --data data/utkface-64 --arch cnn --out data/exp-color-jitter \
  --image-size 64 --epochs 30 --batch-size 64 --lr 2e-3 --warmup-epochs 1 --workers 2 \
  --color-jitter 20
$bin compare --data data/utkface-64 --split test --out data/exp-color-jitter-compare \
  --model builtin --model data/exp-color-jitter --model flip:builtin --model flip:data/exp-color-jitter
