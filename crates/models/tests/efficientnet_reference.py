"""Reference numbers for gc-models' EfficientNet-Lite0 test (crates/models/tests/imagenet.rs).

Runs the PyTorch port the checkpoint comes from (PyPI `efficientnet_lite_pytorch` 0.1.0, installed
with --no-deps) on the shared ImageNet checkpoint and a synthetic image, and prints the values the
Rust test checks.

    /work/venvs/peers/bin/pip install torch safetensors
    /work/venvs/peers/bin/pip install --no-deps efficientnet_lite_pytorch==0.1.0
    /work/venvs/peers/bin/python crates/models/tests/efficientnet_reference.py
"""
import math
import pathlib
import sys

import torch
from efficientnet_lite_pytorch import EfficientNet
from safetensors.torch import load_file

root = pathlib.Path(__file__).resolve().parents[4]
path = root.parent / "shared/models/backbone/efficientnet-lite0-imagenet.safetensors"
if len(sys.argv) > 1:
    path = pathlib.Path(sys.argv[1])

torch.set_num_threads(1)
state = load_file(str(path))
model = EfficientNet.from_name("efficientnet-lite0")
model.load_state_dict(state, strict=True)
model.eval()

side = 224
x = torch.empty(1, 3, side, side)
for c in range(3):
    for h in range(side):
        for w in range(side):
            x[0, c, h, w] = 0.5 + 0.5 * math.sin(0.05 * h + 0.11 * w + 1.3 * c)
# The TF Lite models' "inception-style" normalisation: (x*255 - 127) / 128.
with torch.no_grad():
    y = model((x * 255 - 127) / 128)[0]

print("_conv_stem.weight[0,0,0,:3]", state["_conv_stem.weight"][0, 0, 0, :3].tolist())
print("_bn0.running_mean[:3]", state["_bn0.running_mean"][:3].tolist())
top = torch.topk(y, 5)
print("top5", top.indices.tolist(), [round(v, 4) for v in top.values.tolist()])
print("logits[0:5]", [round(v, 5) for v in y[:5].tolist()])
