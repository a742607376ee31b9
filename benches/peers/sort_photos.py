"""OpenCV + onnxruntime peer of the Rust tool's photo sorting: finds the faces of every photo under
SRC, classifies each face, and copies the photo into DST/<category>/. Prints one JSON object.

    /work/venvs/peers/bin/python benches/peers/sort_photos.py ../shared/photos --out /tmp/sorted \\
        --detector ../shared/models/detect/yunet-n-dynamic.onnx \\
        --model ../shared/models/gender/dlib-cydral-gender-v1.opset13.onnx [--workers 2] [--threads 1]

What it mirrors, per photo (the Rust tool's `--detect auto` with YuNet and dlib-cydral-gender-v1):
- decode with cv2.imdecode (IMREAD_COLOR applies the EXIF orientation);
- a small, roughly square image (long side <= 256, long <= 1.34 * short) is a face crop and is
  classified whole; anything else goes through YuNet (score 0.6, NMS 0.3, at the photo's own size);
- each face is framed as a square around the box centre, side = max(w, h) * (1 + 2 * 0.02), moved
  inside the image when it crosses the border (cut only when larger than the image), as
  gc_detect::face_crop does; the Rust tool also levels the eyes, this peer does not;
- the crop is resized to 32x32 RGB with cv2.INTER_AREA (OpenCV's advice for shrinking; the Rust
  tool's antialiased "Triangle" filter is closer to it than INTER_LINEAR, which aliases at 6x),
  normalised as (x - (122.782, 117.001, 104.298)) / 256, NCHW; all faces of a photo in one run();
- category: "no-face", "uncertain" (some face's top probability < --min-confidence), "female",
  "male" or "mixed"; "error" when the file does not decode (not copied, the run goes on).

Threads: --workers photos are processed at once in a ThreadPoolExecutor (cv2 and onnxruntime release
the GIL), each worker taking a YuNet detector of its own from a pool (FaceDetectorYN is not thread
safe; the ONNX session is, and is shared). --threads (default 1) is both onnxruntime's intra-op
thread count and cv2.setNumThreads, so the process uses about workers x threads cores. Copies and
DST/index.csv are written on the main thread, in input order (sorted relative paths).
"""
import argparse
import concurrent.futures
import csv
import json
import os
import queue
import resource
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MEAN_RGB = np.array([122.782, 117.001, 104.298], dtype=np.float32)
MARGIN = 0.02  # gc_detect's utkface_margin for YuNet
FACE_CROP_MAX_SIDE = 256


def peak_rss_mib():
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    scale = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def looks_like_face_crop(w, h):
    long, short = max(w, h), min(w, h)
    return long <= FACE_CROP_MAX_SIDE and short > 0 and long <= 1.34 * short


def square_around(centre, side, limit):
    """gc_detect::face_crop along one axis: [start, end) of length min(side, limit), kept inside."""
    length = min(max(int(side + 0.5), 1), limit)
    start = max(int(np.floor(centre - length / 2 + 0.5)), 0)
    start = min(start, limit - length)
    return start, start + length


class FaceGender:
    """YuNet + the dlib-cydral gender model. classify() may be called from several threads."""

    def __init__(self, detector_path, model_path, threads=1, detectors=1):
        cv2.setNumThreads(threads)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name  # "images", [N, 3, 32, 32]
        self.detector_path = detector_path
        self.detectors = queue.SimpleQueue()  # idle detectors; one thread uses one at a time
        for _ in range(detectors):
            self.detectors.put(self._new_detector())

    def _new_detector(self):
        return cv2.FaceDetectorYN.create(self.detector_path, "", (320, 320), 0.6, 0.3, 5000)

    def detect(self, bgr):
        h, w = bgr.shape[:2]
        try:
            detector = self.detectors.get_nowait()
        except queue.Empty:
            detector = self._new_detector()
        try:
            detector.setInputSize((w, h))
            _, faces = detector.detect(bgr)
        finally:
            self.detectors.put(detector)
        return [] if faces is None else faces  # rows: x, y, w, h, 5 landmarks (x, y), score

    def classify(self, bgr):
        """[{"box": [x, y, w, h], "score": s, "female": p}] for each face (the whole image when it
        looks like a face crop)."""
        h, w = bgr.shape[:2]
        if looks_like_face_crop(w, h):
            faces, crops = [([0.0, 0.0, float(w), float(h)], 1.0)], [bgr]
        else:
            faces, crops = [], []
            for row in self.detect(bgr):
                x, y, bw, bh = (float(v) for v in row[:4])
                side = max(bw, bh) * (1 + 2 * MARGIN)
                x0, x1 = square_around(x + bw / 2, side, w)
                y0, y1 = square_around(y + bh / 2, side, h)
                faces.append(([x, y, bw, bh], float(row[14])))
                crops.append(bgr[y0:y1, x0:x1])
        if not crops:
            return []
        batch = np.stack([
            cv2.resize(c, (32, 32), interpolation=cv2.INTER_AREA)[:, :, ::-1] for c in crops
        ]).astype(np.float32)
        batch = ((batch - MEAN_RGB) / 256.0).transpose(0, 3, 1, 2)
        (probs,) = self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})
        # The model ends in a softmax ("probabilities"); softmax anything that is not one.
        if (probs < 0).any() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
            e = np.exp(probs - probs.max(axis=1, keepdims=True))
            probs = e / e.sum(axis=1, keepdims=True)
        return [{"box": box, "score": score, "female": float(p[0])}
                for (box, score), p in zip(faces, probs)]


def decode(data):
    """BGR uint8 array, EXIF orientation applied, or ValueError."""
    if not data:
        raise ValueError("empty file")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("cannot decode image (not a supported image, or corrupt)")
    return img


def process(model, path):
    try:
        return model.classify(decode(path.read_bytes())), None
    except (OSError, ValueError, cv2.error) as e:
        return None, str(e)


def category(faces, min_confidence):
    if not faces:
        return "no-face"
    if any(max(f["female"], 1 - f["female"]) < min_confidence for f in faces):
        return "uncertain"
    labels = {"female" if f["female"] >= 0.5 else "male" for f in faces}
    return labels.pop() if len(labels) == 1 else "mixed"


def free_name(folder, name):
    target, n = folder / name, 2
    while target.exists():
        target = folder / f"{Path(name).stem} ({n}){Path(name).suffix}"
        n += 1
    return target


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--detector", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--min-confidence", type=float, default=0.8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV 5 engine warnings

    t0 = time.perf_counter()
    model = FaceGender(a.detector, a.model, a.threads, detectors=a.workers)
    load_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    src, out = a.src.resolve(), a.out.resolve()
    photos = sorted(
        (f for f in src.rglob("*") if f.suffix.lower() in EXTENSIONS and f.is_file()
         and out not in f.resolve().parents),
        key=lambda f: f.relative_to(src).as_posix())
    out.mkdir(parents=True, exist_ok=True)
    total_faces = 0
    with open(out / "index.csv", "w", newline="") as index, \
            concurrent.futures.ThreadPoolExecutor(a.workers) as pool:
        w = csv.writer(index)
        w.writerow(["photo", "category", "destination", "faces", "boxes", "labels",
                    "probabilities", "error"])
        for path, (faces, error) in zip(photos, pool.map(lambda f: process(model, f), photos)):
            rel = path.relative_to(src).as_posix()
            if error is not None:
                w.writerow([rel, "error", "", 0, "", "", "", error])
                continue
            cat = category(faces, a.min_confidence)
            (out / cat).mkdir(exist_ok=True)
            dest = free_name(out / cat, path.name)
            shutil.copy2(path, dest)
            total_faces += len(faces)
            w.writerow([
                rel, cat, dest.relative_to(out).as_posix(), len(faces),
                ";".join(",".join(str(round(v)) for v in f["box"]) for f in faces),
                ";".join("female" if f["female"] >= 0.5 else "male" for f in faces),
                ";".join(f"{f['female']:.3f}" for f in faces),
                "",
            ])
    seconds = time.perf_counter() - t0

    print(json.dumps({
        "peer": "python opencv+onnxruntime",
        "opencv": cv2.__version__,
        "onnxruntime": ort.__version__,
        "workers": a.workers,
        "threads": a.threads,
        "photos": len(photos),
        "faces": total_faces,
        "load_seconds": load_seconds,
        "seconds": seconds,
        "photos_per_s": len(photos) / seconds if seconds > 0 else None,
        "peak_rss_mib": peak_rss_mib(),
    }))


if __name__ == "__main__":
    main()
