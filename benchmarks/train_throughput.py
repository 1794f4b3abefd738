"""Training throughput: ncrepro's loop against a plain loop in the official code's style.

Both train the same model (ResNet18, CIFAR stem) with SGD on the same images for the same number
of steps. The official-style loop decodes PIL images through torchvision transforms (random
crop with padding 4, flip, ToTensor, Normalize) in a DataLoader, in fp32 and NCHW. Ours keeps the
uint8 images on the training device, augments whole batches there, uses channels_last where it
is safe and bf16 autocast on CUDA. Prints images per second for both and their ratio; on a
machine with CUDA it also runs the comparison on the GPU.

    python benchmarks/train_throughput.py [--width 0.125 --steps 30 --batch-size 128]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ncrepro.data import CIFAR_MEAN, CIFAR_STD, ImageSet, DataSplits
from ncrepro.train import TrainConfig, _Trainer


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


def official_style(images, labels, width, steps, batch_size, device, workers):
    from ncrepro.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=10, width=width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(_PILDataset(images, labels), batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=workers)
    model.train()
    seen, t0, it = 0, None, iter(loader)
    for step in range(steps + 2):
        if step == 2:  # warm-up steps are not timed
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


def ours(images, labels, width, steps, batch_size, device):
    n = steps * batch_size + 2 * batch_size
    split = ImageSet(images[:n], labels[:n], [str(k) for k in range(10)])
    tiny = ImageSet(images[:10], labels[:10], split.classes)
    cfg = TrainConfig(arch="resnet18", width=width, epochs=1, batch_size=batch_size, device=str(device), loss="ce")
    trainer = _Trainer(cfg, DataSplits(split, tiny, tiny, {}), device)
    # Time one epoch over exactly `steps` + 2 batches, minus the first two (warm-up).
    t_start = {}
    original_step = trainer.optimizer.step
    count = {"n": 0}

    def step_and_clock(*a, **k):
        out = original_step(*a, **k)
        count["n"] += 1
        if count["n"] == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t_start["t"] = time.perf_counter()
        return out

    trainer.optimizer.step = step_and_clock
    trainer.train_epoch(0, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - t_start["t"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the official-style loop")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    n = (args.steps + 2) * args.batch_size
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        base = official_style(images, labels, args.width, args.steps, args.batch_size, device, args.workers)
        fast = ours(images, labels, args.width, args.steps, args.batch_size, device)
        print(f"{name}: ResNet18 width {args.width:g}, batch {args.batch_size}, {args.steps} timed steps")
        print(f"  official-style loop (PIL transforms, DataLoader, fp32 NCHW): {base:9.0f} images/s")
        print(f"  ncrepro loop (on-device uint8 augmentation{', bf16, channels_last' if device.type == 'cuda' else ''}): {fast:9.0f} images/s")
        print(f"  ratio: {fast / base:.2f}x")


if __name__ == "__main__":
    main()
