#!/usr/bin/env python3
"""The transformers side of gc-hf's benchmark (benches/vit_vs_transformers.rs runs it).

    pipeline_bench.py make-model OUT [vit|siglip]
                                           a randomly initialised ViT-B/16 (ViTConfig() defaults,
                                           224 px, patch 16) or SigLIP-B/16 vision tower
                                           (SiglipVisionConfig() defaults, 224 px, patch 16) with
                                           id2label female/male and a default image processor, saved
                                           in the Hub's format. Random: no download. Never commit it
                                           (330 MB).
    pipeline_bench.py cold MODEL IMAGE     import transformers, build the image-classification
                                           pipeline, classify one image, print the result: the
                                           caller times this process from start to exit.
    pipeline_bench.py throughput MODEL DIR N BATCH
                                           classify the first N .jpg files of DIR (sorted) with
                                           pipeline(images, batch_size=BATCH); prints images/s,
                                           measured after one warm-up batch, decoding excluded.
"""

import sys
import time


def processor_class(arch: str):
    """The Pillow image processor of `arch` (transformers 5 names it apart; its default needs torchvision)."""
    if arch == "siglip":
        try:
            from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil as Proc
        except ImportError:
            from transformers import SiglipImageProcessor as Proc
    else:
        try:
            from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil as Proc
        except ImportError:
            from transformers import ViTImageProcessor as Proc
    return Proc


def make_model(out: str, arch: str = "vit") -> None:
    import torch

    labels = {"id2label": {0: "female", 1: "male"}, "label2id": {"female": 0, "male": 1}}
    torch.manual_seed(0)
    if arch == "siglip":
        from transformers import SiglipConfig, SiglipForImageClassification

        config = SiglipConfig(**labels)
        config.architectures = ["SiglipForImageClassification"]
        model = SiglipForImageClassification(config)
    elif arch == "vit":
        from transformers import ViTConfig, ViTForImageClassification

        config = ViTConfig(**labels)
        config.architectures = ["ViTForImageClassification"]
        model = ViTForImageClassification(config)
    else:
        sys.exit(f"unknown architecture {arch!r}; expected vit or siglip")
    model.eval().save_pretrained(out)
    processor_class(arch)().save_pretrained(out)
    print(f"wrote {out}")


def pipe(model: str):
    import json
    from pathlib import Path

    from transformers import pipeline

    architecture = json.loads((Path(model) / "config.json").read_text())["architectures"][0]
    proc = processor_class("siglip" if architecture.startswith("Siglip") else "vit")
    return pipeline("image-classification", model=model, image_processor=proc.from_pretrained(model), device=-1)


def cold(model: str, image: str) -> None:
    clf = pipe(model)
    print(clf(image))


def throughput(model: str, folder: str, n: int, batch: int) -> None:
    from pathlib import Path

    from PIL import Image

    files = sorted(Path(folder).glob("*.jpg"))[:n]
    images = [Image.open(f).convert("RGB") for f in files]
    clf = pipe(model)
    clf(images[:batch], batch_size=batch)  # warm-up
    start = time.perf_counter()
    out = clf(images, batch_size=batch)
    elapsed = time.perf_counter() - start
    assert len(out) == len(images)
    print(f"images/s {len(images) / elapsed:.3f} ({len(images)} images in {elapsed:.2f} s, batch {batch})")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make-model":
        make_model(*args)
    elif cmd == "cold":
        cold(*args)
    elif cmd == "throughput":
        throughput(args[0], args[1], int(args[2]), int(args[3]))
    else:
        sys.exit(__doc__)
