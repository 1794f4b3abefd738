"""Training throughput: ncrepro's training step against a loop in the official code's style.

Both train the same model (ResNet18 or WideResNet50 with the CIFAR stem) with SGD at batch 128
on the same images, in one process on one device. The official-style loop decodes PIL images
through torchvision transforms (random crop with padding 4, flip, ToTensor, Normalize) in a
DataLoader with worker processes, in fp32 and NCHW. Ours is the trainer's own step, timed by
``ncrepro.train.measure_throughput``: uint8 images resident on the device and augmented there
in batches, channels_last where it is safe, bf16 autocast and the fused SGD kernel on CUDA, no
host synchronisation inside the step, and optionally ``torch.compile`` (``--variants``).

Every measurement is repeated (``--repeats``, interleaved) and reported as the median with its
range. For compiled variants the compile time is reported too, with the throughput a run of one
and of five minutes actually gets once compiling is paid for. The model FLOP utilisation uses
the FLOPs of one training step counted by ``torch.utils.flop_counter`` and, on an H100/H200,
the nominal dense bf16 peak (989 TFLOP/s).

    python benchmarks/train_throughput.py [--device cpu|cuda] [--widths 0.125] [--variants off]
    python benchmarks/train_throughput.py --device cuda --widths 0.25,1 --variants off,default,reduce-overhead

``--paths`` compares our own training paths against each other instead (no official loop): each
is ``precision/compile`` with ``/nan-fill`` for the fill of new tensors that deterministic mode
does by default. The first path is the baseline of the ratios; the default list starts with the
CPU path every run before the terminal-phase protocol used (float32, eager, NaN fill)::

    python benchmarks/train_throughput.py --paths default --widths 0.125,0.25 --no-augment
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ncrepro.data import CIFAR_MEAN, CIFAR_STD, DataSplits, ImageSet
from ncrepro.models import build_model
from ncrepro.train import TrainConfig, measure_throughput

PEAK_BF16 = {"H100": 989e12, "H200": 989e12}

#: Our training paths on the CPU, the old default first (see ``--paths``).
DEFAULT_PATHS = "fp32/off/nan-fill,fp32/off,bf16/off,bf16/default"


class _PILDataset(Dataset):
    def __init__(self, images, labels):
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                             transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def official_style(images, labels, arch, width, steps, batch_size, device, workers) -> float:
    """Images/s of the official code's loop (PIL transforms in a DataLoader, fp32, NCHW)."""
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, width=width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(_PILDataset(images, labels), batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=False)
    model.train()
    seen, t0, it = 0, None, iter(loader)
    for step in range(steps + 3):
        if step == 3:  # warm-up steps are not timed
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0, seen = time.perf_counter(), 0
        x, y = next(it)
        x, y = x.to(device), y.to(device)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def step_flops(arch: str, width: float, batch_size: int) -> float:
    """FLOPs of one training step (forward and backward) at ``batch_size``, counted on the CPU."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(arch, num_classes=10, width=width)
    x = torch.randn(batch_size, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return float(counter.get_total_flops())


def compare_paths(paths: list[str], splits: DataSplits, arch: str, width: float, batch_size: int, device,
                  steps: int, repeats: int, augment: bool) -> dict[str, list[float]]:
    """Images/s of each of our training paths (``precision/compile[/nan-fill]``), measured in
    interleaved repeats with the trainer's own step under the trainer's CPU settings
    (deterministic algorithms on). Every path pays its own compilation before its first repeat."""
    import torch.utils.deterministic as deterministic

    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    speeds: dict[str, list[float]] = {p: [] for p in paths}
    for r in range(repeats):
        for path in paths:
            precision, compile_mode, *fill = path.split("/")
            deterministic.fill_uninitialized_memory = fill == ["nan-fill"]
            if r == 0:
                torch._dynamo.reset()
            cfg = TrainConfig(arch=arch, width=width, batch_size=batch_size, device=str(device), loss="ce",
                              compile=compile_mode, precision=precision, augment=augment)
            t = measure_throughput(cfg, splits, steps=steps, warmup=3)
            speeds[path].append(t.train_images_per_s)
            print(f"  [{r + 1}] {path}: {t.train_images_per_s:,.0f} images/s (setup {t.setup_seconds:.1f} s)",
                  flush=True)
    deterministic.fill_uninitialized_memory = True
    return speeds


def _fmt(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:9,.0f} images/s (range {min(values):,.0f}-{max(values):,.0f}, n={len(values)})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--arch", default="resnet18", choices=["resnet18", "wrn50"])
    p.add_argument("--widths", default=None, help="comma-separated (default: 0.125 on the CPU, 0.25,1 on CUDA)")
    p.add_argument("--variants", default=None,
                   help="compile modes of our step, comma-separated: off, default, reduce-overhead, ... "
                        "(default: off on the CPU; off,default,reduce-overhead on CUDA)")
    p.add_argument("--paths", default=None,
                   help=f"compare our own paths precision/compile[/nan-fill], comma-separated, the first the "
                        f"baseline; 'default' is {DEFAULT_PATHS}")
    p.add_argument("--no-augment", action="store_true", help="our paths train on unaugmented images")
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 30 CPU, 100 CUDA)")
    p.add_argument("--repeats", type=int, default=3, help="measurements of each loop, interleaved")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers of the official-style loop "
                                                               "(default: 2 on the CPU, min(16, cores) on CUDA)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        print("train_throughput: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    widths = [float(w) for w in (args.widths or ("0.25,1" if cuda else "0.125")).split(",")]
    variants = (args.variants or ("off,default,reduce-overhead" if cuda else "off")).split(",")
    steps = args.steps or (100 if cuda else 30)
    import os
    workers = args.workers if args.workers is not None else (min(16, os.cpu_count() or 1) if cuda else 2)
    if cuda:
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    else:
        name, peak = f"CPU, {torch.get_num_threads()} threads", None
    print(f"{name}; torch {torch.__version__}; {args.arch}; batch {args.batch_size}; {steps} timed steps; "
          f"{args.repeats} repeats; official-style loop with {workers} DataLoader workers", flush=True)
    rng = np.random.default_rng(0)
    n = (steps + 8) * args.batch_size
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    train = ImageSet(images, labels, [str(k) for k in range(10)])
    tiny = ImageSet(images[:10], labels[:10], train.classes)
    splits = DataSplits(train, tiny, tiny, {})
    if args.paths:
        paths = (DEFAULT_PATHS if args.paths == "default" else args.paths).split(",")
        for width in widths:
            print(f"\nwidth {width:g}, {'no ' if args.no_augment else ''}augmentation:", flush=True)
            speeds = compare_paths(paths, splits, args.arch, width, args.batch_size, device, steps, args.repeats,
                                   not args.no_augment)
            base = speeds[paths[0]]
            for path in paths:
                ratios = [a / b for a, b in zip(speeds[path], base)]
                ratio = statistics.median(speeds[path]) / statistics.median(base)
                print(f"  {path:22} {_fmt(speeds[path])}, {ratio:.2f}x"
                      f" (per repeat {min(ratios):.2f}x-{max(ratios):.2f}x)", flush=True)
        return 0
    for width in widths:
        flops = step_flops(args.arch, width, args.batch_size)
        print(f"\nwidth {width:g}: {flops / args.batch_size / 1e9:.2f} GFLOP per image per training step", flush=True)
        official: list[float] = []
        ours: dict[str, list[float]] = {v: [] for v in variants}
        setup: dict[str, list[float]] = {v: [] for v in variants}
        compiled_as: dict[str, str] = {}
        for r in range(args.repeats):
            official.append(official_style(images, labels, args.arch, width, steps, args.batch_size, device, workers))
            print(f"  [{r + 1}] official-style: {official[-1]:,.0f} images/s", flush=True)
            for v in variants:
                torch._dynamo.reset()  # each measurement pays its own compile, as a fresh process would
                cfg = TrainConfig(arch=args.arch, width=width, batch_size=args.batch_size, device=str(device),
                                  loss="ce", compile=v)
                t = measure_throughput(cfg, splits, steps=steps, warmup=3)
                ours[v].append(t.train_images_per_s)
                setup[v].append(t.setup_seconds)
                compiled_as[v] = t.compiled
                print(f"  [{r + 1}] ours, compile={v} (ran as {t.compiled}): {t.train_images_per_s:,.0f} images/s, "
                      f"setup {t.setup_seconds:.1f} s", flush=True)
        base = statistics.median(official)
        print(f"  official-style loop (PIL transforms, DataLoader, fp32 NCHW): {_fmt(official)}")
        for v in variants:
            med = statistics.median(ours[v])
            s = statistics.median(setup[v])
            line = f"  ours, compile={v} (ran as {compiled_as[v]}): {_fmt(ours[v])}, {med / base:.2f}x"
            line += f"; setup {s:.1f} s"
            runs = ", ".join(f"{m} min: {med * max(0.0, 1 - s / (60 * m)) / base:.2f}x" for m in (1, 5))
            line += f"; counting setup, a run of {runs}"
            achieved = med * flops / args.batch_size
            line += f"; {achieved / 1e12:.2f} TFLOP/s" + (f" = {100 * achieved / peak:.1f}% MFU" if peak else "")
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
