#!/usr/bin/env bash
# The capacity experiment of docs/ANALYSIS.md (section 5, twelfth session): the built-in model's
# recipe (64px, 30 epochs, AdamW 2e-3, one warm-up epoch, cosine, same seed and split) with a fifth
# block of 512 channels (the last feature map 2x2 instead of 4x4) and dropout 0.2 before the
# classifier, compared with the built-in model on the test split. No --patience: run with the
# built-in recipe's 6 epochs, this network stopped at epoch 11 (its validation loss swung while
# the learning rate was high), and was resumed without one, which gives the same weights as this
# script (`--resume` accepts another patience). About 70 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/gender-classifier
cargo build --release
[ -d data/utkface-64 ] || $bin prepare ../shared/data/utkface-aligned-64px.tar.gz --out data/utkface-64
$bin train --data data/utkface-64 --arch cnn --out data/exp-five-blocks \
  --image-size 64 --epochs 30 --batch-size 64 --lr 2e-3 --warmup-epochs 1 --workers 2 \
  --channels 32,64,128,256,512 --dropout 0.2
$bin compare --data data/utkface-64 --split test --out data/exp-five-blocks-compare \
  --model builtin --model data/exp-five-blocks --model flip:builtin --model flip:data/exp-five-blocks
