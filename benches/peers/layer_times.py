"""PyTorch peer of `cargo bench --workspace --bench layer_times`: the notebook CNN's convolution
forward, input and weight gradients, BatchNorm training forward and backward, and 2x2 max pooling
forward (with indices, as autograd runs it) and backward, at the same four
block shapes, timed the same way (median of --runs calls after one unmeasured call). Prints one
JSON object on stdout.

    /work/venvs/peers/bin/python benches/peers/layer_times.py --threads 2
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

CHANNELS = [3, 32, 64, 128, 256]
EPSILON = 1e-5


def median_ms(runs, fn):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    times, size = {}, a.size
    for block in range(4):
        cin, cout = CHANNELS[block], CHANNELS[block + 1]
        x = torch.rand(a.batch, cin, size, size) - 0.5
        w = torch.rand(cout, cin, 3, 3) - 0.5
        g = torch.rand(a.batch, cout, size, size) - 0.5
        gamma, beta = torch.ones(cout), torch.zeros(cout)
        _, save_mean, save_invstd = torch.ops.aten.native_batch_norm(g, gamma, beta, None, None, True, 0.1, EPSILON)
        with torch.no_grad():
            times[f"block{block}.conv_forward"] = median_ms(a.runs, lambda: F.conv2d(x, w, padding=1))
            times[f"block{block}.conv_input_grad"] = median_ms(
                a.runs, lambda: torch.nn.grad.conv2d_input(x.shape, w, g, padding=1))
            times[f"block{block}.conv_weight_grad"] = median_ms(
                a.runs, lambda: torch.nn.grad.conv2d_weight(x, w.shape, g, padding=1))
            times[f"block{block}.batchnorm_train_forward"] = median_ms(
                a.runs, lambda: torch.ops.aten.native_batch_norm(g, gamma, beta, None, None, True, 0.1, EPSILON))
            times[f"block{block}.batchnorm_backward"] = median_ms(
                a.runs,
                lambda: torch.ops.aten.native_batch_norm_backward(
                    g, g, gamma, None, None, save_mean, save_invstd, True, EPSILON, [True, True, True]),
            )
            times[f"block{block}.maxpool_forward"] = median_ms(
                a.runs, lambda: F.max_pool2d(g, 2, return_indices=True))
            pooled = torch.rand(a.batch, cout, size // 2, size // 2) - 0.5
            _, indices = F.max_pool2d(g, 2, return_indices=True)
            times[f"block{block}.maxpool_backward"] = median_ms(
                a.runs,
                lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                    pooled, g, [2, 2], [2, 2], [0, 0], [1, 1], False, indices),
            )
        size //= 2
    print(json.dumps({"framework": f"pytorch {torch.__version__}", "times": times}))


if __name__ == "__main__":
    main()
