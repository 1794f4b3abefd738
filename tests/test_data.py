from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_data import CLASSES, make_image_folder

from ncrepro.data import (
    CIFAR_MEAN,
    CIFAR_STD,
    augment_batch,
    balanced_subset,
    load_dataset,
    make_splits,
    normalize_batch,
)

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


# ---------------------------------------------------------------------------------------------
# Dataset packs and the content-true cache


def _jpeg_tree(root: Path, per_class: int = 6, seed: int = 0) -> Path:
    """A tiny ImageFolder tree of JPEG files written by one encoder (so they share a header)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("test", 2)):
        for k, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(folder / f"{i:04d}.jpg", quality=75)
    return root


def test_pack_round_trip_is_exact(tmp_path):
    from ncrepro.data import pack_dataset

    tree = _jpeg_tree(tmp_path / "tree")
    # A PNG among the JPEGs is stored whole, not with the shared header.
    from PIL import Image
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(tree / "train" / "ant" / "zz.png")
    meta = pack_dataset(tree, tmp_path / "tree.npz")
    assert meta["train_size"] == 25 and meta["test_size"] == 8 and meta["classes"] == CLASSES
    a_train, a_test, _ = load_dataset(tree, cache_dir=None)
    b_train, b_test, desc = load_dataset(tmp_path / "tree.npz", cache_dir=tmp_path / "cache")
    for a, b in ((a_train, b_train), (a_test, b_test)):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.classes == b.classes
    assert desc["kind"] == "pack" and desc["fingerprint"] == meta["sha256"][:16]
    again, _, _ = load_dataset(tmp_path / "tree.npz", cache_dir=tmp_path / "cache")  # from the cache
    np.testing.assert_array_equal(again.images, a_train.images)
    split_a = make_splits(a_train, a_test, {}, val_size=5)
    split_b = make_splits(b_train, b_test, {}, val_size=5)
    np.testing.assert_array_equal(split_a.val.images, split_b.val.images)


def test_pack_header_is_shared():
    import io

    from PIL import Image

    from ncrepro.data import _jpeg_header  # the header parser is this module's own detail
    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buf, format="JPEG", quality=75)
    data = buf.getvalue()
    header = _jpeg_header(data)
    assert header is not None and data.startswith(header) and header.endswith(data[len(header) - 12:len(header)])
    assert _jpeg_header(b"\x89PNG....") is None and _jpeg_header(b"\xff\xd8\xff") is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_pack_is_one_line_error(tmp_path, damage):
    from ncrepro.data import pack_dataset

    tree = _jpeg_tree(tmp_path / "tree")
    pack = tmp_path / "p.npz"
    pack_dataset(tree, pack)
    data = bytearray(pack.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        # Flip one byte of the payload (not the zip directory): the checksum catches it.
        import zipfile
        with zipfile.ZipFile(pack) as z:
            info = z.getinfo("payload.npy")
        data[info.header_offset + 200] ^= 0xFF
    elif damage == "garbage":
        data = bytearray(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    else:
        data = bytearray()
    pack.write_bytes(bytes(data))
    with pytest.raises(ValueError) as err:
        load_dataset(pack, cache_dir=None)
    message = str(err.value)
    assert str(pack) in message and "\n" not in message and "pack" in message


def test_pack_cli(tmp_path, capsys):
    from ncrepro.data import main as data_main

    tree = _jpeg_tree(tmp_path / "tree")
    assert data_main(["pack", str(tree), str(tmp_path / "p.npz")]) == 0
    assert "24 training and 8 test images" in capsys.readouterr().out
    assert data_main(["pack", str(tmp_path / "nowhere"), str(tmp_path / "q.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ImageFolder" in err and not (tmp_path / "q.npz").exists()
    (tmp_path / "folder").mkdir()
    assert data_main(["pack", str(tree), str(tmp_path / "folder")]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_cache_follows_the_content(tmp_path):
    """The cache never serves pixels of another folder or of a changed file."""
    from PIL import Image

    cache = tmp_path / "cache"
    tree = _jpeg_tree(tmp_path / "tree")
    real, _, _ = load_dataset(tree, cache_dir=cache)
    # A copy with every image replaced by a black one, same names, same count.
    black = tmp_path / "black"
    for f in tree.rglob("*.jpg"):
        target = black / f.relative_to(tree)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32)).save(target, quality=75)
    dark, _, _ = load_dataset(black, cache_dir=cache)
    assert dark.images.max() < 5 and real.images.max() > 200
    # One file replaced under the same name (size or modification time change).
    victim = tree / "train" / "ant" / "0000.jpg"
    Image.new("RGB", (32, 32), (255, 255, 255)).save(victim, quality=75)
    changed, _, _ = load_dataset(tree, cache_dir=cache)
    assert changed.images[0].min() > 250 and not np.array_equal(changed.images[0], real.images[0])
    # RGBA and 16-bit images are decoded afresh, never taken from an older cache entry.
    rgba = tree / "train" / "ant" / "0001.jpg"
    rgba.unlink()
    Image.fromarray(np.full((32, 32, 4), 90, np.uint8), "RGBA").save(tree / "train" / "ant" / "0001.png")
    Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(tree / "train" / "bee" / "0009.png")
    mixed, _, _ = load_dataset(tree, cache_dir=cache)
    assert len(mixed) == len(real) + 1
    # A wrong size is refused by name, even when an old cache entry exists for the folder.
    Image.new("RGB", (64, 64)).save(tree / "train" / "cat" / "big.png")
    with pytest.raises(ValueError, match="big.png: expected a 32x32 image"):
        load_dataset(tree, cache_dir=cache)


@pytest.mark.parametrize("damage", [b"", b"garbage" * 100])
def test_damaged_cache_is_rebuilt(tmp_path, capsys, damage):
    cache = tmp_path / "cache"
    tree = _jpeg_tree(tmp_path / "tree")
    first, _, _ = load_dataset(tree, cache_dir=cache)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(damage)
    again, _, _ = load_dataset(tree, cache_dir=cache)
    np.testing.assert_array_equal(again.images, first.images)
    err = capsys.readouterr().err
    assert "ignoring damaged cache" in err and str(entry) in err


@pytest.mark.parametrize("bad", ["text", "truncated", "empty", "directory"])
def test_bad_image_files_are_named(tmp_path, bad):
    tree = _jpeg_tree(tmp_path / "tree")
    target = tree / "train" / "dog" / "bad.jpg"
    if bad == "text":
        target.write_text("not an image")
    elif bad == "truncated":
        target.write_bytes((tree / "train" / "dog" / "0000.jpg").read_bytes()[:300])
    elif bad == "empty":
        target.write_bytes(b"")
    else:
        target.mkdir()
    with pytest.raises(ValueError) as err:
        load_dataset(tree, cache_dir=None)
    assert "bad.jpg" in str(err.value) and "\n" not in str(err.value)
