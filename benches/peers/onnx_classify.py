"""onnxruntime peer of `cargo bench --workspace --bench onnx_vs_onnxruntime`: the three ONNX gender
models of ../shared/models/gender, with the preprocessing of gc-onnx's presets, on UTKFace images.

    # cold start: load the model, classify one image, print the result (timed by the caller)
    /work/venvs/peers/bin/python benches/peers/onnx_classify.py --model M.onnx --one face.jpg
    # throughput: every image of DIR, in batches, decoding on a thread pool; prints one JSON object
    /work/venvs/peers/bin/python benches/peers/onnx_classify.py --model M.onnx --dir DIR [--batch 64] [--threads 2]

Presets (crates/onnx/src/presets.rs), chosen by the model's file name:
- dlib-cydral-gender-v1: 32x32 RGB, (x - (122.782, 117.001, 104.298)) / 256, whole crop, output
  `probabilities` [female, male];
- insightface-genderage-112: 112x112 RGB raw 0..255, 10% margin (edge pixels repeated), `fc1[0:2]`
  logits -> softmax;
- yu4u-wrn16-8-agegender-64: 64x64 BGR raw 0..255, 40% margin, output `gender` [female, male].
Resizing is cv2.INTER_AREA (closest to the Rust side's antialiased Triangle filter when shrinking).
"""
import argparse
import concurrent.futures
import json
import os
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort

PRESETS = {
    "dlib-cydral-gender-v1": dict(size=32, bgr=False, margin=0.0, output="probabilities",
                                  mean=(122.782, 117.001, 104.298), std=256.0, logits=False),
    "insightface-genderage-112": dict(size=112, bgr=False, margin=0.1, output="fc1",
                                      mean=(0.0, 0.0, 0.0), std=1.0, logits=True),
    "yu4u-wrn16-8-agegender-64": dict(size=64, bgr=True, margin=0.4, output="gender",
                                      mean=(0.0, 0.0, 0.0), std=1.0, logits=False),
}


def preset_for(model_path):
    name = os.path.basename(model_path).lower()
    for key, preset in PRESETS.items():
        if key in name:
            return preset
    sys.exit(f"{model_path}: no preset for this model")


def prepare(path, p):
    bgr = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: cannot decode")
    h, w = bgr.shape[:2]
    if p["margin"] > 0:
        dy, dx = round(h * p["margin"]), round(w * p["margin"])
        bgr = cv2.copyMakeBorder(bgr, dy, dy, dx, dx, cv2.BORDER_REPLICATE)
    img = cv2.resize(bgr, (p["size"], p["size"]), interpolation=cv2.INTER_AREA)
    if not p["bgr"]:
        img = img[:, :, ::-1]
    x = (img.astype(np.float32) - np.array(p["mean"], np.float32)) / p["std"]
    return x.transpose(2, 0, 1)


def run(session, p, batch):
    out = session.run([p["output"]], {session.get_inputs()[0].name: np.stack(batch)})[0]
    scores = out[:, :2]
    if p["logits"]:
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores = e / e.sum(axis=1, keepdims=True)
    return scores


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--one")
    ap.add_argument("--dir")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    p = preset_for(args.model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    if args.one:
        female, male = run(session, p, [prepare(args.one, p)])[0]
        label = "female" if female >= male else "male"
        print(f"{args.one}  {label}  {max(female, male):.3f}")
        return
    paths = sorted(os.path.join(args.dir, n) for n in os.listdir(args.dir))
    start = time.perf_counter()
    done = 0
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        for i in range(0, len(paths), args.batch):
            inputs = list(pool.map(lambda q: prepare(q, p), paths[i:i + args.batch]))
            done += len(run(session, p, inputs))
    seconds = time.perf_counter() - start
    print(json.dumps({"peer": f"onnxruntime {ort.__version__}", "images": done,
                      "seconds": seconds, "images_per_s": done / seconds}))


if __name__ == "__main__":
    main()
