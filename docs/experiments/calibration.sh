#!/usr/bin/env bash
# Temperature scaling, docs/ANALYSIS.md (section 5, thirteenth session): a temperature fitted on the
# validation split for the built-in model and the three ONNX models of ../shared/models/gender,
# each compared with itself on the test split, then again with --min-confidence 0.8. About 25
# minutes on 2 cores, 22 of them yu4u's (10 images/s).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/gender-classifier
models=../shared/models/gender
cargo build --release
[ -d data/utkface-64 ] || $bin prepare ../shared/data/utkface-aligned-64px.tar.gz --out data/utkface-64
for pair in builtin=builtin \
  dlib=$models/dlib-cydral-gender-v1.opset13.onnx \
  insightface=$models/insightface-genderage-112.onnx \
  yu4u=$models/yu4u-wrn16-8-agegender-64.onnx; do
  name=${pair%%=*} model=${pair#*=}
  # calibrate never replaces a file: a second run of the script reuses the first fit.
  [ -f data/cal-$name.json ] || $bin calibrate --model "$model" --data data/utkface-64 --out data/cal-$name.json
  $bin compare --data data/utkface-64 --split test --out data/cal-compare-$name \
    --model "$model" --model data/cal-$name.json
  $bin compare --data data/utkface-64 --split test --out data/cal-abstain-$name --min-confidence 0.8 \
    --model "$model" --model data/cal-$name.json
done
