"""CIFAR data as uint8 arrays, the paper's split, and augmentation done on tensors in batches.

Sources (``load_dataset(path)``):

* a torchvision root holding ``cifar-10-batches-py`` or ``cifar-100-python`` (downloaded there
  with ``download=True`` when the machine is online);
* an ImageFolder tree ``<path>/train/<class>/*`` and ``<path>/test/<class>/*``, such as the lossy
  JPEG copy of CIFAR-10 in ``../shared/datasets/cifar10-jpeg``.

Decoded images are cached as ``.npz`` under ``data/cache/`` (ignored by git) so a second run does
not decode 60,000 JPEGs again. The training set is split 45k/5k into train/validation with a
seed-1 permutation, as in the paper; random crop 32 (padding 4) and horizontal flip are applied
to whole batches on the device the model runs on (no CPU data loader in the hot loop).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "ImageSet",
    "DataSplits",
    "load_dataset",
    "make_splits",
    "balanced_subset",
    "augment_batch",
    "normalize_batch",
    "DEFAULT_CACHE_DIR",
]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
SPLIT_SEED = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm")
_REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = _REPO_ROOT / "data" / "cache"


@dataclass
class ImageSet:
    """Images as uint8 ``(N, 32, 32, 3)`` and integer labels ``(N,)``."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> "ImageSet":
        return ImageSet(self.images[index], self.labels[index], self.classes)


@dataclass
class DataSplits:
    train: ImageSet
    val: ImageSet
    test: ImageSet
    description: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)


def _atomic_savez(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read_image_folder(root: Path) -> ImageSet:
    from PIL import Image

    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root}: expected one folder per class, found none")
    files, labels = [], []
    for k, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise ValueError(f"{root / name}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        files += found
        labels += [k] * len(found)
    images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            arr = np.asarray(im.convert("RGB"))
        if arr.shape != (32, 32, 3):
            raise ValueError(f"{f}: expected a 32x32 image, got {arr.shape[1]}x{arr.shape[0]}")
        images[i] = arr
    return ImageSet(images, np.asarray(labels, dtype=np.int64), classes)


def _folder_fingerprint(root: Path) -> str:
    digest = hashlib.sha1()
    for split in ("train", "test"):
        for cls in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            names = sorted(os.listdir(cls))
            digest.update(f"{split}/{cls.name}/{len(names)}/{names[:1]}{names[-1:]}".encode())
    return digest.hexdigest()[:12]


def _load_image_folder(root: Path, cache_dir: Path | None) -> tuple[ImageSet, ImageSet, dict]:
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise ValueError(
                f"{root}: expected an ImageFolder tree with train/<class>/ and test/<class>/ folders "
                f"(or a torchvision CIFAR root); '{split}/' is missing"
            )
    fingerprint = _folder_fingerprint(root)
    cache = None if cache_dir is None else Path(cache_dir) / f"imagefolder-{fingerprint}.npz"
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        classes = [str(c) for c in z["classes"]]
        train = ImageSet(z["train_x"], z["train_y"], classes)
        test = ImageSet(z["test_x"], z["test_y"], classes)
    else:
        train = _read_image_folder(root / "train")
        test = _read_image_folder(root / "test")
        if train.classes != test.classes:
            raise ValueError(f"{root}: train and test class folders differ")
        if cache is not None:
            _atomic_savez(cache, train_x=train.images, train_y=train.labels, test_x=test.images,
                          test_y=test.labels, classes=np.asarray(train.classes))
    readme = (root / "README.md").read_text(errors="replace") if (root / "README.md").exists() else ""
    lossy = "jpeg" in root.name.lower() or "jpeg" in readme.lower()
    desc = {
        "kind": "imagefolder",
        "path": str(root),
        "fingerprint": fingerprint,
        "lossy_jpeg": lossy,
        "note": ("lossy JPEG copy of CIFAR-10 (quality 75): accuracies are close to, not equal to, "
                 "those on the original pixels") if lossy else "",
    }
    return train, test, desc


def _load_torchvision(root: Path, name: str, download: bool) -> tuple[ImageSet, ImageSet, dict]:
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    try:
        tr = cls(str(root), train=True, download=download)
        te = cls(str(root), train=False, download=download)
    except RuntimeError as err:
        raise ValueError(f"{root}: no {name} dataset found ({err}); pass --download on a machine "
                         f"with internet, or point --data at an ImageFolder tree") from None
    train = ImageSet(np.asarray(tr.data, np.uint8), np.asarray(tr.targets, np.int64), list(tr.classes))
    test = ImageSet(np.asarray(te.data, np.uint8), np.asarray(te.targets, np.int64), list(te.classes))
    return train, test, {"kind": f"torchvision-{name}", "path": str(root), "lossy_jpeg": False, "note": ""}


def load_dataset(path: str | os.PathLike, *, download: bool = False,
                 cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR) -> tuple[ImageSet, ImageSet, dict]:
    """Load (train, test, description) from a torchvision CIFAR root or an ImageFolder tree.

    ``path`` may also be ``cifar10:<root>`` or ``cifar100:<root>`` to name the torchvision set
    explicitly (needed with ``download=True`` into an empty folder).

    Raises:
        ValueError: the path is missing or holds neither layout.
    """
    spec = str(path)
    if spec.startswith(("cifar10:", "cifar100:")):
        name, root = spec.split(":", 1)
        root_path = Path(root)
        if download:
            root_path.mkdir(parents=True, exist_ok=True)
        return _load_torchvision(root_path, name, download)
    root = Path(spec)
    if not root.is_absolute() and not root.exists() and (_REPO_ROOT / root).exists():
        root = _REPO_ROOT / root  # protocols name paths relative to the repository
    if not root.exists():
        raise ValueError(f"{root}: dataset path does not exist (expected a torchvision CIFAR root "
                         f"or an ImageFolder tree with train/ and test/)")
    if (root / "cifar-10-batches-py").is_dir():
        return _load_torchvision(root, "cifar10", download)
    if (root / "cifar-100-python").is_dir():
        return _load_torchvision(root, "cifar100", download)
    return _load_image_folder(root, cache_dir)


def balanced_subset(labels: np.ndarray, size: int, num_classes: int, seed: int) -> np.ndarray:
    """Indices of ``size`` samples, ``size / K`` from each class, chosen with ``seed``."""
    if size % num_classes:
        raise ValueError(f"subset size {size} is not a multiple of the {num_classes} classes")
    per_class = size // num_classes
    rng = np.random.default_rng(seed)
    picks = []
    for k in range(num_classes):
        idx = np.flatnonzero(labels == k)
        if len(idx) < per_class:
            raise ValueError(f"subset of {size} needs {per_class} images of class {k}, only {len(idx)} exist")
        picks.append(np.sort(rng.choice(idx, per_class, replace=False)))
    return np.sort(np.concatenate(picks))


def make_splits(train: ImageSet, test: ImageSet, description: dict, *, val_size: int = 5000,
                train_subset: int | None = None, val_subset: int | None = None,
                test_subset: int | None = None) -> DataSplits:
    """The paper's fixed train/validation split (seed 1), then optional class-balanced subsets.

    With 50,000 training images and ``val_size=5000`` this is the paper's 45k/5k split. Subsets are
    drawn from inside each part with the split seed, so they do not depend on the training seed.
    """
    if not 0 < val_size < len(train):
        raise ValueError(f"val_size must lie in (0, {len(train)}), got {val_size}")
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(train))
    train_part, val_part = train.take(np.sort(perm[val_size:])), train.take(np.sort(perm[:val_size]))
    K = len(train.classes)
    for name, n, part in (("train", train_subset, train_part), ("val", val_subset, val_part),
                          ("test", test_subset, test)):
        if n is not None and not 0 < n <= len(part):
            raise ValueError(f"--{name}-subset must lie in [1, {len(part)}], got {n}")
    if train_subset:
        train_part = train_part.take(balanced_subset(train_part.labels, train_subset, K, SPLIT_SEED))
    if val_subset:
        val_part = val_part.take(balanced_subset(val_part.labels, val_subset, K, SPLIT_SEED + 1))
    if test_subset:
        test = test.take(balanced_subset(test.labels, test_subset, K, SPLIT_SEED + 2))
    desc = dict(description, classes=K, train_size=len(train_part), val_size=len(val_part),
                test_size=len(test), split_seed=SPLIT_SEED)
    return DataSplits(train_part, val_part, test, desc)


def normalize_batch(images_nhwc_uint8: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """uint8 (B, H, W, C) -> normalised float (B, C, H, W) in channels_last memory layout."""
    mean = torch.tensor(CIFAR_MEAN, dtype=dtype, device=images_nhwc_uint8.device) * 255.0
    std = torch.tensor(CIFAR_STD, dtype=dtype, device=images_nhwc_uint8.device) * 255.0
    x = (images_nhwc_uint8.to(dtype) - mean) / std
    return x.permute(0, 3, 1, 2)  # NHWC storage seen as NCHW: already channels_last


def augment_batch(images_nhwc_uint8: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop (zero padding, as torchvision pads the PIL image) and horizontal flip, per image."""
    B, H, W, _ = images_nhwc_uint8.shape
    dev = images_nhwc_uint8.device
    padded = torch.nn.functional.pad(images_nhwc_uint8, (0, 0, padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (B,), generator=generator, device=generator.device).to(dev)
    ox = torch.randint(0, 2 * padding + 1, (B,), generator=generator, device=generator.device).to(dev)
    flip = torch.rand(B, generator=generator, device=generator.device).to(dev) < 0.5
    rows = oy[:, None] + torch.arange(H, device=dev)
    cols = ox[:, None] + torch.arange(W, device=dev)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(B, device=dev)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]]
