"""A tiny ImageFolder tree for fast tests of the data pipeline and the trainer."""

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["ant", "bee", "cat", "dog"]


def make_image_folder(root: Path, train_per_class: int = 12, test_per_class: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for k, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                # Class-dependent colour plus noise, so a network can learn something.
                base = np.zeros((32, 32, 3))
                base[..., k % 3] = 150 + 30 * (k // 3)
                img = np.clip(base + rng.normal(0, 40, size=(32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root
