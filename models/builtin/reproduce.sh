#!/usr/bin/env bash
# Reproduces the built-in model (models/builtin/model.safetensors and model.json) from the UTKFace
# archive in ../shared/data, on a CPU, from the repository root. The weights depend on the seed
# (42, the default of both commands) and on the number of threads (2 here: the order of
# floating-point sums changes with it). About 70 minutes on 2 cores (30 epochs of 2-3 minutes).
set -euo pipefail
cargo run --release -- prepare ../shared/data/utkface-aligned-64px.tar.gz --out data/utkface-64
cargo run --release -- train --data data/utkface-64 --arch cnn --out data/builtin-retrained \
  --image-size 64 --epochs 30 --batch-size 64 --lr 2e-3 --warmup-epochs 1 --patience 6 --workers 2
# Its figures on the test split (MODEL_CARD.md):
cargo run --release -- eval --model data/builtin-retrained --data data/utkface-64 --split test \
  --out data/report-builtin
