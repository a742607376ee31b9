#!/usr/bin/env bash
# The GPU check of docs/BENCHMARKS.md ("GPU"): builds with the `gpu` feature, then trains the
# notebook CNN for 2 epochs on 600 + 200 UTKFace images on `--device gpu` and on `--device cpu`,
# and classifies one image with the GPU-trained model on the CPU. Without a GPU, Mesa's lavapipe
# (`apt-get install mesa-vulkan-drivers`) gives wgpu a Vulkan device on the CPU: slow, but the same
# code path. Usage: docs/experiments/gpu-smoke.sh [WORK_DIR]   (default /tmp/gc-gpu-smoke)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/gc-gpu-smoke}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --features gpu
bin=$target/release/gender-classifier
[ -d "$work/prepared" ] || $bin prepare ../shared/data/utkface-aligned-64px.tar.gz --out "$work/prepared"
# 300 training and 100 validation images per class, linked, not copied.
rm -rf "$work/small"
for split in train val; do
  n=$([ $split = train ] && echo 300 || echo 100)
  for class in female male; do
    mkdir -p "$work/small/$split/$class"
    ls "$work/prepared/$split/$class" | head -n $n | while read -r f; do
      ln -s "$(realpath "$work/prepared/$split/$class/$f")" "$work/small/$split/$class/$f"
    done
  done
done
for device in gpu cpu; do
  rm -rf "$work/model-$device"
  $bin train --data "$work/small" --out "$work/model-$device" --device $device \
    --image-size 32 --epochs 2 --batch-size 32
done
one=$(ls "$work/small/val/female" | head -n 1)
$bin predict --model "$work/model-gpu" "$work/small/val/female/$one"
