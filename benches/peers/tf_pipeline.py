"""The notebook's input pipeline in tf.data, timed: the peer that benches/input_pipeline.rs compares
gc-pipeline with.

    python tf_pipeline.py DIR [--epochs 3] [--threads 2] [--batch-size 32] [--seed 0]

DIR holds one folder per class (DIR/female, DIR/male). The pipeline is the notebook's:
image_dataset_from_directory (decode, resize to 144x144 bilinear), cache() in memory, shuffle() over
the whole set, a map doing the random 128x128 crop, random horizontal flip and scaling to [0, 1],
batch(32), prefetch(AUTOTUNE). The cache sits before the random map, so every epoch draws new crops,
as gc-pipeline does. TensorFlow is held to --threads threads (inter-op, intra-op and the tf.data
private pool).

Prints one JSON line: images/s for each epoch (the first decodes, the next ones read the cache),
and the peak resident memory of this process. With no TensorFlow installed it prints
{"skipped": "..."} and exits 0.
"""

import argparse
import json
import os
import resource
import sys
import time


def peak_rss_mib():
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    scale = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as e:
        print(json.dumps({"skipped": f"tensorflow is not installed for {sys.executable}: {e}"}))
        return 0

    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    started = time.perf_counter()
    ds = tf.keras.utils.image_dataset_from_directory(
        args.dir,
        image_size=(144, 144),
        batch_size=None,
        label_mode="int",
        shuffle=True,
        seed=args.seed,
    )
    count = int(ds.cardinality().numpy())
    index_s = time.perf_counter() - started

    def augment(image, label):
        image = tf.image.random_crop(image, (128, 128, 3))
        image = tf.image.random_flip_left_right(image)
        return image / 255.0, label

    ds = (
        ds.cache()
        .shuffle(count, seed=args.seed, reshuffle_each_iteration=True)
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    options = tf.data.Options()
    options.threading.private_threadpool_size = args.threads
    ds = ds.with_options(options)

    epochs = []
    for _ in range(args.epochs):
        images = 0
        t = time.perf_counter()
        for batch, _labels in ds:
            images += int(batch.shape[0])
        dt = time.perf_counter() - t
        epochs.append({"images": images, "seconds": dt, "images_per_s": images / dt})

    print(json.dumps({
        "side": "tf.data",
        "version": tf.__version__,
        "threads": args.threads,
        "index_s": index_s,
        "epochs": epochs,
        "peak_rss_mib": peak_rss_mib(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
