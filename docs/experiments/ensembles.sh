#!/usr/bin/env bash
# The ensemble check of docs/ANALYSIS.md (section 5, eleventh session): how far averaging the
# probabilities of the models we have (the built-in model and the three ONNX models of
# ../shared/models/gender) gets on the test split, every subset of them. Thirteenth session: the
# three ONNX models also temperature-scaled (`calibrate` on the validation split), averaged only
# with models other than themselves. No training; about 45 minutes on 2 cores, most of them
# yu4u's. Python only reads the JSON lines `predict` writes.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/gender-classifier
cargo build --release
[ -d data/utkface-64 ] || $bin prepare ../shared/data/utkface-aligned-64px.tar.gz --out data/utkface-64
mkdir -p data/exp-ensembles
gender=../shared/models/gender
$bin predict --json -r data/utkface-64/test > data/exp-ensembles/builtin.jsonl
for m in dlib-cydral-gender-v1.opset13 insightface-genderage-112 yu4u-wrn16-8-agegender-64; do
  $bin predict --json -r --model "$gender/$m.onnx" data/utkface-64/test > "data/exp-ensembles/$m.jsonl"
  # calibrate never replaces a file: a second run of the script reuses the first fit.
  [ -f "data/exp-ensembles/$m.cal.json" ] || $bin calibrate --model "$gender/$m.onnx" \
    --data data/utkface-64 --out "data/exp-ensembles/$m.cal.json"
  $bin predict --json -r --model "data/exp-ensembles/$m.cal.json" data/utkface-64/test \
    > "data/exp-ensembles/$m+T.jsonl"
done
python3 - data/exp-ensembles/*.jsonl <<'PY'
import itertools, json, os, sys
# P(female) of every test image, by model; the true class is the image's folder.
runs = {}
for path in sys.argv[1:]:
    rows = (json.loads(line) for line in open(path))
    runs[os.path.basename(path)[:-6]] = {r["path"]: r["probabilities"]["female"] for r in rows if "probabilities" in r}
images = sorted(set.intersection(*(set(p) for p in runs.values())))
female = {p: os.path.basename(os.path.dirname(p)) == "female" for p in images}
for k in range(1, len(runs) + 1):
    for names in itertools.combinations(sorted(runs), k):
        if len({n.removesuffix("+T") for n in names}) < k:
            continue  # a model with its own calibrated self
        right = sum((sum(runs[n][p] for n in names) / k >= 0.5) == female[p] for p in images)
        print(f"{100 * right / len(images):.2f}%  {' + '.join(names)}  ({len(images)} images)")
PY
