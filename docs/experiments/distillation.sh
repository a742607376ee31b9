#!/usr/bin/env bash
# The distillation experiment of docs/ANALYSIS.md (section 5, fourteenth session): the built-in
# model's recipe (64px, 30 epochs, AdamW 2e-3, one warm-up epoch, cosine, same seed and split,
# no --patience) with dlib/Cydral as teacher: the one model here trained on other faces (about
# 200k, Cydral's own, CC0), temperature-scaled on the validation split first so that its
# probabilities are honest. Each training image's target is half its label and half the teacher's
# probabilities. Compared with the built-in model and the teacher on the test split. About 35
# minutes on 2 cores, the teacher's pass over the 14,223 training images under one of them.
# Then the same with yu4u averaged in as a second teacher (about 50 minutes more, 16 of them
# yu4u's pass).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/gender-classifier
cargo build --release
[ -d data/utkface-64 ] || $bin prepare ../shared/data/utkface-aligned-64px.tar.gz --out data/utkface-64
dlib=../shared/models/gender/dlib-cydral-gender-v1.opset13.onnx
# calibrate never replaces a file: a second run of the script reuses the first fit.
[ -f data/exp-dlib.cal.json ] || $bin calibrate --model $dlib --data data/utkface-64 --out data/exp-dlib.cal.json
$bin train --data data/utkface-64 --arch cnn --out data/exp-distill \
  --image-size 64 --epochs 30 --batch-size 64 --lr 2e-3 --warmup-epochs 1 --workers 2 \
  --teacher data/exp-dlib.cal.json --teacher-weight 0.5
$bin compare --data data/utkface-64 --split test --out data/exp-distill-compare \
  --model builtin --model data/exp-distill --model data/exp-dlib.cal.json \
  --model flip:builtin --model flip:data/exp-distill
yu4u=../shared/models/gender/yu4u-wrn16-8-agegender-64.onnx
[ -f data/exp-yu4u.cal.json ] || $bin calibrate --model $yu4u --data data/utkface-64 --out data/exp-yu4u.cal.json
$bin train --data data/utkface-64 --arch cnn --out data/exp-distill-two \
  --image-size 64 --epochs 30 --batch-size 64 --lr 2e-3 --warmup-epochs 1 --workers 2 \
  --teacher data/exp-dlib.cal.json --teacher data/exp-yu4u.cal.json --teacher-weight 0.5
$bin compare --data data/utkface-64 --split test --out data/exp-distill-two-compare \
  --model builtin --model data/exp-distill --model data/exp-distill-two
