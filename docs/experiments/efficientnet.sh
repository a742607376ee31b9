#!/usr/bin/env bash
# The pretrained-backbone experiment of docs/ANALYSIS.md (section 5): EfficientNet-Lite0 started from
# the ImageNet weights in ../shared/models/backbone, fine-tuned on the 64px UTKFace training split
# with the race x gender loss weights, 8 epochs; then compared with the built-in notebook CNN on
# the same test split. About 11 minutes an epoch on 2 cores (1.4 hours in all).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/gender-classifier
cargo build --release
[ -d data/utkface-64 ] || $bin prepare ../shared/data/utkface-aligned-64px.tar.gz --out data/utkface-64
$bin train --data data/utkface-64 --arch efficientnet-lite0 \
  --init ../shared/models/backbone/efficientnet-lite0-imagenet.safetensors --out data/exp-lite0 \
  --image-size 64 --epochs 8 --batch-size 64 --lr 1e-3 --warmup-epochs 1 --patience 3 \
  --balance race-gender --workers 2
$bin compare --data data/utkface-64 --split test --out data/exp-lite0-compare \
  --model builtin --model data/exp-lite0

# Fifteenth session: the same recipe with a 20-epoch schedule and a patience of 4 (it stops at
# epoch 10, best epoch 6; about 150 s an epoch on a 2-core AVX-512 machine).
$bin train --data data/utkface-64 --arch efficientnet-lite0 \
  --init ../shared/models/backbone/efficientnet-lite0-imagenet.safetensors --out data/exp-lite0-20 \
  --image-size 64 --epochs 20 --batch-size 64 --lr 1e-3 --warmup-epochs 1 --patience 4 \
  --balance race-gender --workers 2
$bin compare --data data/utkface-64 --split test --out data/exp-lite0-20-compare \
  --model builtin --model data/exp-lite0-20

# Twenty-first session: the 64px faces upscaled to 128 (resized to 144, 128 crop), unweighted, half
# the learning rate, 6 epochs (best epoch 4; 560-920 s an epoch on a 2-core AVX-512 machine).
$bin train --data data/utkface-64 --arch efficientnet-lite0 \
  --init ../shared/models/backbone/efficientnet-lite0-imagenet.safetensors --out data/exp-lite0-128 \
  --image-size 128 --epochs 6 --batch-size 64 --lr 5e-4 --warmup-epochs 1 --patience 2 --workers 2
$bin compare --data data/utkface-64 --split test --out data/exp-lite0-128-compare \
  --model builtin --model data/exp-lite0-128
