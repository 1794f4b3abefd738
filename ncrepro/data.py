"""CIFAR data as uint8 arrays, the paper's split, and augmentation done on tensors in batches.

Sources (``load_dataset(path)``):

* a torchvision root holding ``cifar-10-batches-py`` or ``cifar-100-python`` (downloaded there
  with ``download=True`` when the machine is online);
* an ImageFolder tree ``<path>/train/<class>/*`` and ``<path>/test/<class>/*``, such as the lossy
  JPEG copy of CIFAR-10 in ``../shared/datasets/cifar10-jpeg``.

* a dataset pack: one file with an ImageFolder tree's image files byte for byte, written by
  ``python -m ncrepro.data pack SRC DEST`` (the CIFAR-10 JPEG copy packs into about 21 MB, small
  enough to travel with the code to a GPU machine).

Decoded images are cached as ``.npz`` under ``data/cache/`` (ignored by git) so a second run does
not decode 60,000 JPEGs again. The cache key covers the source's resolved path and every image
file's name, size and modification time (a pack: its checksum), and each cache file carries a
checksum of its arrays, so a changed dataset is decoded again and a damaged cache is rebuilt.
Decoding runs on all cores. The training set is split 45k/5k into train/validation with a
seed-1 permutation, as in the paper; random crop 32 (padding 4) and horizontal flip are applied
to whole batches on the device the model runs on (no CPU data loader in the hot loop).
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import _io
from ._paths import cache_root, resolve_data_path

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "ImageSet",
    "DataSplits",
    "load_dataset",
    "make_splits",
    "split_indices",
    "SPLITS",
    "balanced_subset",
    "augment_batch",
    "normalize_batch",
    "pack_dataset",
    "pack_info",
    "main",
]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
SPLIT_SEED = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm")
_DEFAULT = object()   # "the project's cache folder", resolved when the data loads


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.chmod(tmp, _io.umask_mode())  # mkstemp makes it private to its owner
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _decode_one(data: bytes, name: str) -> np.ndarray:
    """One image file's bytes -> uint8 (32, 32, 3), exactly as ``PIL.Image.open(...).convert("RGB")``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{name}: not a readable image ({err}); remove or replace the file") from None
    if arr.shape != (32, 32, 3):
        raise ValueError(f"{name}: expected a 32x32 image, got {arr.shape[1]}x{arr.shape[0]}")
    return arr


def _decode_chunk(chunk: list[tuple[bytes, str]]) -> np.ndarray:
    return np.stack([_decode_one(data, name) for data, name in chunk]) if chunk else np.empty((0, 32, 32, 3), np.uint8)


def _decode_all(blobs: list[bytes], names: list[str], workers: int | None = None) -> np.ndarray:
    """Decode image files to one uint8 array, on all cores.

    Pillow's decoder holds the GIL for most of the work on images this small, so threads do not
    help; worker processes do. They are forked, which is safe while CUDA is not initialised in
    this process; after that (a second run in the same sweep) decoding stays in this process.
    """
    out = np.empty((len(blobs), 32, 32, 3), dtype=np.uint8)
    workers = workers or os.cpu_count() or 1
    cuda_live = "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized()
    if workers < 2 or len(blobs) < 4096 or cuda_live or "fork" not in multiprocessing.get_all_start_methods():
        for i, (data, name) in enumerate(zip(blobs, names)):
            out[i] = _decode_one(data, name)
        return out
    step = -(-len(blobs) // (workers * 4))
    chunks = [list(zip(blobs[i:i + step], names[i:i + step])) for i in range(0, len(blobs), step)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        start = 0
        for part in pool.map(_decode_chunk, chunks):
            out[start:start + len(part)] = part
            start += len(part)
    return out


def _list_image_folder(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """Class names, image files (sorted by class, then name) and labels of ``root/<class>/*``."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root}: expected one folder per class, found none")
    files, labels = [], []
    for k, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise ValueError(f"{root / name}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for f in found:
            if not f.is_file():
                raise ValueError(f"{f}: not an image file (a folder or special file with an image's name); "
                                 f"remove or rename it")
        files += found
        labels += [k] * len(found)
    return classes, files, np.asarray(labels, dtype=np.int64)


def _read_files(files: list[Path]) -> list[bytes]:
    blobs = []
    for f in files:
        try:
            blobs.append(f.read_bytes())
        except OSError as err:
            raise ValueError(f"{f}: cannot be read ({err.strerror or err})") from None
    return blobs


def _read_image_folder(root: Path) -> ImageSet:
    classes, files, labels = _list_image_folder(root)
    images = _decode_all(_read_files(files), [str(f) for f in files])
    return ImageSet(images, labels, classes)


def _folder_fingerprint(root: Path) -> str:
    """A key that changes whenever the tree's content may have: its resolved path, and every
    image file's name, size and modification time (nanoseconds)."""
    digest = hashlib.sha256(str(root.resolve()).encode())
    for split in ("train", "test"):
        classes, files, _ = _list_image_folder(root / split)
        for f in files:
            st = f.stat()
            digest.update(f"{split}/{f.parent.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        digest.update(a.tobytes() if a.dtype.kind != "U" else "\0".join(a.tolist()).encode())
    return digest.hexdigest()


def _read_cache(cache: Path) -> tuple[ImageSet, ImageSet] | None:
    """The cached arrays, or None when the file is missing or damaged (then it is rebuilt)."""
    if not cache.exists():
        return None
    try:
        with open(cache, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("train_x", "train_y", "test_x", "test_y", "classes")}
            stored = str(z["checksum"])
        if _arrays_digest(arrays) != stored:
            raise ValueError("checksum mismatch")
    except Exception as err:  # any damage means: decode again  # noqa: BLE001
        print(f"ncrepro.data: ignoring damaged cache {cache} ({type(err).__name__}: {err}); decoding again",
              file=sys.stderr)
        return None
    classes = [str(c) for c in arrays["classes"]]
    return (ImageSet(arrays["train_x"], arrays["train_y"], classes),
            ImageSet(arrays["test_x"], arrays["test_y"], classes))


def _write_cache(cache: Path, train: ImageSet, test: ImageSet) -> None:
    arrays = {"train_x": train.images, "train_y": train.labels, "test_x": test.images, "test_y": test.labels,
              "classes": np.asarray(train.classes)}
    from ._io import remove_stale_temporaries

    # Another process may be writing the same cache right now: only old leftovers go.
    remove_stale_temporaries(cache, older_than=3600.0)
    try:
        _atomic_savez(cache, **arrays, checksum=np.asarray(_arrays_digest(arrays)))
    except OSError as err:  # a cache that cannot be written costs time, not correctness
        print(f"ncrepro.data: could not write the cache {cache} ({err.strerror or err})", file=sys.stderr)


def _describe_source(root: Path, kind: str, fingerprint: str, lossy_hint: str) -> dict:
    lossy = "jpeg" in lossy_hint.lower()
    return {
        "kind": kind,
        "path": str(root),
        "fingerprint": fingerprint,
        "lossy_jpeg": lossy,
        "note": ("lossy JPEG copy of CIFAR-10 (quality 75): accuracies are close to, not equal to, "
                 "those on the original pixels") if lossy else "",
    }


def _load_image_folder(root: Path, cache_dir: Path | None) -> tuple[ImageSet, ImageSet, dict]:
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise ValueError(
                f"{root}: expected an ImageFolder tree with train/<class>/ and test/<class>/ folders "
                f"(or a torchvision CIFAR root, or a dataset pack); '{split}/' is missing"
            )
    fingerprint = _folder_fingerprint(root)
    cache = None if cache_dir is None else Path(cache_dir) / f"imagefolder-{fingerprint}.npz"
    cached = _read_cache(cache) if cache is not None else None
    if cached is not None:
        train, test = cached
    else:
        train = _read_image_folder(root / "train")
        test = _read_image_folder(root / "test")
        if train.classes != test.classes:
            raise ValueError(f"{root}: train and test class folders differ")
        if cache is not None:
            _write_cache(cache, train, test)
    readme = (root / "README.md").read_text(errors="replace") if (root / "README.md").exists() else ""
    return train, test, _describe_source(root, "imagefolder", fingerprint, root.name + readme)


# ---------------------------------------------------------------------------------------------
# Dataset packs: one file holding an ImageFolder tree's image files, byte for byte.

PACK_FORMAT = "ncrepro-dataset-pack"
# Version 2: the checksum covers the class names too (version 1 packs left them unchecked).
PACK_VERSION = 2
_PACK_ARRAYS = ("header", "payload", "offsets", "prefixed", "labels", "is_test")


def _jpeg_header(data: bytes) -> bytes | None:
    """The bytes of a baseline JPEG file up to the end of its start-of-scan header, or None.

    Files written by one encoder with its standard tables share these bytes (623 of the ~920
    in each file of the CIFAR-10 JPEG copy), so a pack stores them once.
    """
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:
            return data[:pos] if pos <= len(data) else None
    return None


def pack_dataset(src: str | os.PathLike, dest: str | os.PathLike) -> dict:
    """Write the ImageFolder tree ``src`` (``train/<class>/*``, ``test/<class>/*``) into one file.

    Every image file is kept byte for byte (a header shared by most files is stored once), with
    the labels, the class names, the train/test membership and a SHA-256 checksum of it all.
    ``load_dataset(dest)`` then gives exactly the arrays, labels and split that
    ``load_dataset(src)`` gives. Returns the pack's metadata.

    Raises:
        ValueError: ``src`` is not an ImageFolder tree, holds an unreadable image, or ``dest``
            cannot be written.
    """
    from collections import Counter

    root = Path(src)
    dest = Path(dest)
    if not root.is_dir() or not all((root / s).is_dir() for s in ("train", "test")):
        raise ValueError(f"{root}: pack needs an ImageFolder tree with train/<class>/ and test/<class>/")
    if dest.exists() and dest.is_dir():
        raise ValueError(f"{dest}: is a folder; give the pack's file name")
    parts = {}
    for split in ("train", "test"):
        classes, files, labels = _list_image_folder(root / split)
        parts[split] = (classes, files, labels, _read_files(files))
    if parts["train"][0] != parts["test"][0]:
        raise ValueError(f"{root}: train and test class folders differ")
    # Every image must decode as the folder loader would decode it: a pack never carries a file
    # that the tree itself would refuse.
    for split in ("train", "test"):
        _, files, _, blobs = parts[split]
        _decode_all(blobs, [str(f) for f in files])
    blobs = parts["train"][3] + parts["test"][3]
    headers = Counter(h for h in map(_jpeg_header, blobs) if h is not None)
    header = headers.most_common(1)[0][0] if headers else b""
    prefixed = np.array([bool(header) and b.startswith(header) for b in blobs])
    bodies = [b[len(header):] if p else b for b, p in zip(blobs, prefixed)]
    offsets = np.zeros(len(bodies) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in bodies], out=offsets[1:])
    arrays = {
        "header": np.frombuffer(header, dtype=np.uint8),
        "payload": np.frombuffer(b"".join(bodies), dtype=np.uint8),
        "offsets": offsets,
        "prefixed": prefixed,
        "labels": np.concatenate([parts["train"][2], parts["test"][2]]),
        "is_test": np.repeat([False, True], [len(parts["train"][3]), len(parts["test"][3])]),
    }
    readme = (root / "README.md").read_text(errors="replace") if (root / "README.md").exists() else ""
    meta = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "classes": parts["train"][0],
        "train_size": len(parts["train"][3]),
        "test_size": len(parts["test"][3]),
        "source": str(root.resolve()),
        "source_fingerprint": _folder_fingerprint(root),
        "lossy_hint": root.name + " " + readme[:2000],
        "sha256": _pack_digest(arrays, parts["train"][0]),
    }
    try:
        _atomic_savez(dest, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    except OSError as err:
        raise ValueError(f"{dest}: cannot write the pack ({err.strerror or err})") from None
    return meta


def _pack_digest(arrays: dict[str, np.ndarray], classes: list[str]) -> str:
    """The pack's checksum: every array it stores and the class names."""
    return _arrays_digest({**arrays, "classes": np.asarray(list(classes))})


def pack_info(path: str | os.PathLike) -> dict:
    """A dataset pack's metadata (classes, sizes, checksum), after checking the whole pack
    against its checksum; ValueError naming the file if it is not a readable, current pack."""
    meta, _ = _read_pack(Path(path))
    return meta


def _read_pack(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    import zipfile

    what = "rebuild it with: python -m ncrepro.data pack SRC DEST"
    try:
        # The file is opened here so that it is closed however np.load fails.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            arrays = {k: z[k] for k in _PACK_ARRAYS}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable dataset pack ({type(err).__name__}: {err}); {what}") from None
    if not isinstance(meta, dict) or meta.get("format") != PACK_FORMAT:
        raise ValueError(f"{path}: not an ncrepro dataset pack; {what}")
    if meta.get("version") != PACK_VERSION:
        raise ValueError(f"{path}: pack version {meta.get('version')} is not {PACK_VERSION}; {what}")
    classes = meta.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise ValueError(f"{path}: the pack's class list is malformed; {what}")
    if _pack_digest(arrays, classes) != meta.get("sha256"):
        raise ValueError(f"{path}: checksum mismatch, the pack is damaged; {what}")
    n = len(arrays["labels"])
    if n and (int(arrays["labels"].min()) < 0 or int(arrays["labels"].max()) >= len(classes)):
        raise ValueError(f"{path}: labels outside the {len(classes)} classes the pack names; {what}")
    if (len(arrays["offsets"]) != n + 1 or len(arrays["prefixed"]) != n or len(arrays["is_test"]) != n
            or int(arrays["is_test"].sum()) != meta["test_size"] or n != meta["train_size"] + meta["test_size"]):
        raise ValueError(f"{path}: inconsistent pack (sizes disagree); {what}")
    return meta, arrays


def _load_pack(path: Path, cache_dir: Path | None) -> tuple[ImageSet, ImageSet, dict]:
    meta, arrays = _read_pack(path)
    classes = list(meta["classes"])
    cache = None if cache_dir is None else Path(cache_dir) / f"pack-{meta['sha256'][:16]}.npz"
    cached = _read_cache(cache) if cache is not None else None
    if cached is not None:
        train, test = cached
    else:
        header = arrays["header"].tobytes()
        payload = arrays["payload"].tobytes()
        offsets = arrays["offsets"]
        blobs = [(header if p else b"") + payload[offsets[i]:offsets[i + 1]]
                 for i, p in enumerate(arrays["prefixed"].tolist())]
        names = [f"{path}[{i}]" for i in range(len(blobs))]
        images = _decode_all(blobs, names)
        test_mask = arrays["is_test"]
        train = ImageSet(images[~test_mask], arrays["labels"][~test_mask], classes)
        test = ImageSet(images[test_mask], arrays["labels"][test_mask], classes)
        if cache is not None:
            _write_cache(cache, train, test)
    desc = _describe_source(path, "pack", meta["sha256"][:16], meta.get("lossy_hint", ""))
    desc["packed_from"] = meta.get("source", "")
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
    except OSError as err:  # URLError, connection refused, no route: the download failed
        reason = getattr(err, "reason", None) or err.strerror or err
        raise ValueError(f"{root}: could not download {name} ({reason}); this machine may be offline: "
                         f"point --data at a local copy (an ImageFolder tree or a dataset pack)") from None
    train = ImageSet(np.asarray(tr.data, np.uint8), np.asarray(tr.targets, np.int64), list(tr.classes))
    test = ImageSet(np.asarray(te.data, np.uint8), np.asarray(te.targets, np.int64), list(te.classes))
    return train, test, {"kind": f"torchvision-{name}", "path": str(root), "lossy_jpeg": False, "note": ""}


def load_dataset(path: str | os.PathLike, *, download: bool = False,
                 cache_dir: str | os.PathLike | None = _DEFAULT) -> tuple[ImageSet, ImageSet, dict]:
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
    if cache_dir is _DEFAULT:
        cache_dir = cache_root()
    root = resolve_data_path(spec)
    if not root.exists():
        raise ValueError(f"{root}: dataset path does not exist (expected a torchvision CIFAR root, "
                         f"an ImageFolder tree with train/ and test/, or a dataset pack)")
    if root.is_file():
        return _load_pack(root, cache_dir)
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


#: The train/validation splits: ``ncrepro`` (numpy's Generator seeded with 1, any source) and
#: ``official`` (the paper's code exactly: ``np.random.seed(1)``, then ``np.random.shuffle`` of
#: ``range(50000)`` with the legacy global generator; validation is the first ``val_size`` indices
#: in torchvision's CIFAR order, so only a torchvision CIFAR root has those indices).
SPLITS = ("ncrepro", "official")


def split_indices(n: int, val_size: int, split: str = "ncrepro") -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)`` indices (each sorted) of ``n`` training images.

    >>> train, val = split_indices(50000, 5000, "official")
    >>> val[:3].tolist(), len(train)
    ([10, 44, 45], 45000)
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if split == "official":
        order = list(range(n))
        np.random.RandomState(SPLIT_SEED).shuffle(order)  # what np.random.seed(1); np.random.shuffle does
        perm = np.asarray(order)
    else:
        perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])


def make_splits(train: ImageSet, test: ImageSet, description: dict, *, val_size: int = 5000,
                train_subset: int | None = None, val_subset: int | None = None,
                test_subset: int | None = None, split: str = "ncrepro") -> DataSplits:
    """The fixed train/validation split (:data:`SPLITS`), then optional class-balanced subsets.

    With 50,000 training images and ``val_size=5000`` this is the paper's 45k/5k split. Subsets are
    drawn from inside each part with the split seed, so they do not depend on the training seed.
    """
    if not 0 < val_size < len(train):
        raise ValueError(f"--val-size must lie in [1, {len(train) - 1}] for these {len(train):,} training images, "
                         f"got {val_size}")
    if split == "official" and not str(description.get("kind", "")).startswith("torchvision-"):
        raise ValueError("--split official needs a torchvision CIFAR root (the official indices number the images "
                         "in torchvision's order; an ImageFolder tree such as the JPEG copy numbers its files per "
                         "class, so those indices would pick other images); use --split ncrepro")
    train_idx, val_idx = split_indices(len(train), val_size, split)
    train_part, val_part = train.take(train_idx), train.take(val_idx)
    K = len(train.classes)
    missing = sorted(set(range(K)) - set(np.unique(train_part.labels).tolist()))
    if missing:
        raise ValueError(f"--val-size {val_size} leaves no training image of class {missing[0]} "
                         f"({train.classes[missing[0]]}); use a smaller --val-size")
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
                test_size=len(test), split_seed=SPLIT_SEED, split=split)
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


def main(argv: list[str] | None = None) -> int:
    """``python -m ncrepro.data pack SRC DEST``: pack an ImageFolder tree into one file."""
    from ._cli import OneLineParser, program_name, run_guarded

    parser = OneLineParser(prog=program_name("ncrepro-data", "ncrepro.data"), description="Dataset tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    pack = sub.add_parser("pack", help="pack an ImageFolder tree (train/<class>/, test/<class>/) into one file")
    pack.add_argument("src", help="the ImageFolder tree, e.g. ../shared/datasets/cifar10-jpeg")
    pack.add_argument("dest", help="the pack file to write, e.g. data/packs/cifar10-jpeg.npz")
    pack.add_argument("--overwrite", action="store_true", help="replace an existing file at DEST")
    args, code = parser.parse_or_code(argv)
    if args is None:
        return code

    def action():
        if Path(args.dest).is_dir():
            raise ValueError(f"{args.dest}: is a folder; DEST names the pack file to write")
        if Path(args.dest).exists() and not args.overwrite:
            raise ValueError(f"{args.dest}: already exists; pass --overwrite to replace it")
        meta = pack_dataset(args.src, args.dest)
        size = Path(args.dest).stat().st_size
        print(f"{args.dest}: {meta['train_size']:,} training and {meta['test_size']:,} test images, "
              f"{len(meta['classes'])} classes, {size / 2**20:.1f} MiB, sha256 {meta['sha256'][:16]}...")

    return run_guarded(parser.prog, action, "interrupted; nothing was written")


if __name__ == "__main__":
    sys.exit(main())
