from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny_data import CLASSES, make_image_folder
from ncrepro.data import (CIFAR_MEAN, CIFAR_STD, augment_batch, balanced_subset, load_dataset, make_splits,
                          normalize_batch)

JPEG = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "cifar10-jpeg"


def test_image_folder_loads_and_caches(tmp_path):
    root = make_image_folder(tmp_path / "tree")
    cache = tmp_path / "cache"
    train, test, desc = load_dataset(root, cache_dir=cache)
    assert train.images.shape == (48, 32, 32, 3) and train.images.dtype == np.uint8
    assert test.labels.tolist() == sorted(test.labels.tolist())
    assert train.classes == CLASSES and desc["kind"] == "imagefolder" and not desc["lossy_jpeg"]
    cached = list(cache.glob("*.npz"))
    assert len(cached) == 1 and not list(cache.glob("*.tmp*"))
    again, _, _ = load_dataset(root, cache_dir=cache)
    np.testing.assert_array_equal(again.images, train.images)


def test_missing_and_malformed_datasets(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match="train/<class>"):
        load_dataset(tmp_path / "flat")
    root = make_image_folder(tmp_path / "tree")
    (root / "train" / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        load_dataset(root, cache_dir=None)


def test_wrong_image_size_is_named(tmp_path):
    root = make_image_folder(tmp_path / "tree")
    from PIL import Image
    Image.new("RGB", (16, 16)).save(root / "train" / "ant" / "big.png")
    with pytest.raises(ValueError, match="big.png: expected a 32x32 image"):
        load_dataset(root, cache_dir=None)


def test_split_and_balanced_subsets(tmp_path):
    train, test, desc = load_dataset(make_image_folder(tmp_path / "tree"), cache_dir=None)
    splits = make_splits(train, test, desc, val_size=8, train_subset=20, test_subset=8)
    assert len(splits.train) == 20 and len(splits.val) == 8 and len(splits.test) == 8
    assert np.bincount(splits.train.labels).tolist() == [5, 5, 5, 5]
    again = make_splits(train, test, desc, val_size=8, train_subset=20, test_subset=8)
    np.testing.assert_array_equal(again.train.images, splits.train.images)  # fixed split seed
    with pytest.raises(ValueError, match="multiple"):
        balanced_subset(train.labels, 10, 4, 0)
    with pytest.raises(ValueError, match="train-subset"):
        make_splits(train, test, desc, val_size=8, train_subset=1000)


def test_augmentation_is_a_crop_and_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 32 * 32 * 3, dtype=torch.int64).reshape(2, 32, 32, 3).remainder(251).to(torch.uint8)
    out = augment_batch(x, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    # Every output pixel is an input pixel or padding (zero).
    values = set(x.flatten().tolist()) | {0}
    assert set(out.flatten().tolist()) <= values
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(augment_batch(x, g1), augment_batch(x, g2))


def test_normalize_uses_cifar_statistics():
    x = torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    out = normalize_batch(x)
    assert out.shape == (1, 3, 2, 2) and out.is_contiguous(memory_format=torch.channels_last)
    expected = [(1 - m) / s for m, s in zip(CIFAR_MEAN, CIFAR_STD)]
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor(expected))


@pytest.mark.skipif(not JPEG.exists(), reason="the offline CIFAR-10 JPEG copy is not beside this checkout")
def test_offline_cifar10_jpeg_copy():
    train, test, desc = load_dataset(JPEG)
    assert len(train) == 50000 and len(test) == 10000 and train.classes[0] == "airplane"
    assert desc["lossy_jpeg"] and "lossy" in desc["note"]
    splits = make_splits(train, test, desc)
    assert len(splits.train) == 45000 and len(splits.val) == 5000
