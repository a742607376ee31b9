"""PyTorch peer of `cargo bench -p gc-train --bench train_step`: the same notebook CNN, the same
batch, the same optimiser, timed the same way. Prints one JSON object on stdout.

    /work/venvs/peers/bin/python benches/peers/train_step.py --threads 2

The CNN: 4 x [conv3x3 (padding same, no bias) -> BatchNorm -> ReLU -> maxpool 2x2] with 32-64-128-256
channels, global average pool, linear 256 -> 2; cross-entropy; AdamW(lr 1e-3, weight decay 1e-4).
"""
import argparse
import json
import resource
import statistics
import time

import torch
from torch import nn


def cnn(channels=(32, 64, 128, 256), classes=2):
    layers, c_in = [], 3
    for c in channels:
        layers += [
            nn.Conv2d(c_in, c, 3, padding="same", bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes))


def median_ms(fn, warmup, steps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=7)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = cnn()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(a.batch, 3, a.size, a.size)
    y = torch.arange(a.batch) % 2

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    model.train()
    train_ms, train_all = median_ms(step, a.warmup, a.steps)

    # Phases of one step, for the profile section.
    def forward():
        return loss_fn(model(x), y)

    fwd_ms, _ = median_ms(lambda: forward(), 1, a.steps)

    def fwd_bwd():
        opt.zero_grad(set_to_none=True)
        forward().backward()

    fwd_bwd_ms, _ = median_ms(fwd_bwd, 1, a.steps)

    model.eval()
    with torch.no_grad():
        infer_ms, _ = median_ms(lambda: model(x), 1, a.steps)
        one = x[:1].clone()
        single_ms, _ = median_ms(lambda: model(one), 3, 4 * a.steps)

    print(json.dumps({
        "framework": f"pytorch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "batch": a.batch,
        "size": a.size,
        "train_step_ms": train_ms,
        "train_step_all_ms": train_all,
        "forward_ms": fwd_ms,
        "forward_backward_ms": fwd_bwd_ms,
        "inference_batch_ms": infer_ms,
        "inference_images_per_s": a.batch / infer_ms * 1000,
        "single_image_ms": single_ms,
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
