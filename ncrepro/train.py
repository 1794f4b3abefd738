"""Train a CIFAR network with any of the four losses and measure neural collapse every epoch.

The paper's recipe is the default (Zhou et al., NeurIPS 2022, official ``nc_loss`` code): SGD
with lr 0.1, momentum 0.9, weight decay 5e-4 on all parameters, gradient norm clipped at 2,
batch 128, lr x0.1 after 3/7 and 5/7 of the epochs. Unlike the official code, the decay
happens *after* those epochs (the official scheduler is stepped at the start of each epoch, so
each decay comes one epoch early), NC is measured on clean training images by default, NC4 is
the nearest-class-centre disagreement, and CPU runs are bit-for-bit reproducible on one kind of CPU, including
across ``--resume``.

Command line::

    python -m ncrepro.train --loss ls --alpha 0.1 --arch resnet18 --width 0.25 --epochs 30 \
        --data ../shared/datasets/cifar10-jpeg --train-subset 2000 --out data/results/run.json
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from . import _io
from ._cli import OneLineParser, program_name, run_guarded
from .data import DataSplits, augment_batch, load_dataset, make_splits, normalize_batch
from .losses import LOSSES, get_loss, loss_spec
from .metrics import (
    class_geometry,
    expected_calibration_error,
    linear_probe_accuracy,
    logit_margins,
    nc_metrics,
    nearest_class_mean_accuracy,
)
from .models import ARCHITECTURES, build_model

__all__ = [
    "TrainConfig",
    "train",
    "DeadlineReached",
    "TrainingDiverged",
    "Throughput",
    "measure_throughput",
    "lr_at_epoch",
    "checkpoint_path",
    "IN_PROGRESS_DIR",
    "differing_settings",
    "stored_settings",
    "check_output",
    "read_result",
    "check_result",
    "COMPILE_MODES",
    "PRECISIONS",
    "cpu_has_native_bf16",
    "check_memory",
    "training_precision",
    "EXECUTION_SETTINGS",
    "main",
]


def _setting(default, help: str, **extra):
    """A TrainConfig field with its command-line help (the parser is built from these)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """Every setting of a run; all of it is written into the result's ``config``.

    The command line (``python -m ncrepro.train --help``) is built from these fields, so the
    two cannot drift apart.
    """

    data: str = _setting("../shared/datasets/cifar10-jpeg",
                         "torchvision CIFAR root (or cifar10:/cifar100:<root>), ImageFolder tree, or dataset pack")
    loss: str = _setting("ce", "the loss", choices="losses")
    alpha: float = _setting(0.1, "label smoothing alpha in [0, 1) (loss ls)")
    gamma: float = _setting(3.0, "focal loss exponent >= 0 (loss fl)")
    mse_scale: float = _setting(15.0, "MSE target scale M > 0 (loss mse)")
    loss_scale: str = _setting("mean", "batch reduction: mean, or official (the paper's code: batch sum)",
                               choices=("mean", "official"))
    arch: str = _setting("resnet18", "network", choices="architectures")
    width: float = _setting(1.0, "width multiplier (ResNet18: every channel count; WRN50: bottleneck planes)")
    epochs: int = _setting(10, "training epochs")
    batch_size: int = _setting(128, "batch size")
    lr: float = _setting(0.1, "initial learning rate (x0.1 after 3/7 and 5/7 of the epochs)")
    momentum: float = _setting(0.9, "SGD momentum in [0, 1)")
    weight_decay: float = _setting(5e-4, "weight decay on all parameters")
    grad_clip: float = _setting(2.0, "gradient norm clipped at this value")
    seed: int = _setting(0, "seed of the initialisation, shuffling and augmentation")
    val_size: int = _setting(5000, "validation images held out of the training set (the paper's 45k/5k split)")
    split: str = _setting("ncrepro", "train/validation split: ncrepro (any data source) or official (the paper's "
                          "exact indices; torchvision CIFAR roots only)", choices=("ncrepro", "official"))
    train_subset: int | None = _setting(None, "class-balanced training subset size (default: all)")
    val_subset: int | None = _setting(None, "class-balanced validation subset size (default: all)")
    test_subset: int | None = _setting(None, "class-balanced test subset size (default: all)")
    eval_every: int = _setting(1, "evaluate (validation, test, NC) every this many epochs, and at the end")
    nc_features: str = _setting("clean", "NC on clean training images, or augmented ones as the official code did",
                                choices=("clean", "augmented"))
    augment: bool = _setting(True, "random crop (padding 4) and horizontal flip")
    device: str = _setting("auto", "auto, cpu, cuda, cuda:1, ...")
    compile: str = _setting("auto", "torch.compile mode of the training step (auto: on CUDA only)",
                            choices="compile")
    precision: str = _setting("auto", "training precision: bf16 (bfloat16 autocast; evaluation and NC stay "
                              "float32), fp32, or auto (bf16 on CUDA, fp32 on the CPU)", choices="precision")
    download: bool = _setting(False, "let torchvision download CIFAR (needs internet)")

    def validate(self) -> "TrainConfig":
        spec = loss_spec(self.loss)
        spec.value(self.loss_params())          # the loss's own hyperparameter, in range
        for other in LOSSES.values():            # the others' fields must be valid values too
            if other.config_field and other.check and getattr(self, other.config_field, None) is not None:
                other.check(getattr(self, other.config_field))
        if self.loss_scale not in ("mean", "official"):
            raise ValueError(f"loss_scale must be 'mean' or 'official', got {self.loss_scale!r}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {list(ARCHITECTURES)}")
        if not (self.width > 0 and math.isfinite(self.width)):
            raise ValueError(f"width must be a positive number, got {self.width}")
        if self.width > MAX_WIDTH:
            raise ValueError(f"width must be at most {MAX_WIDTH:g} (ResNet18 at width {MAX_WIDTH:g} already has about "
                             f"{11.2 * MAX_WIDTH ** 2 / 1000:.1f} billion parameters), got {self.width:g}")
        if round(64 * self.width) < 1:
            raise ValueError(f"width must be at least 1/128: below it every layer is clamped to one channel and "
                             f"different widths would train the same network, got {self.width:g}")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2 ** 63):
            raise ValueError(f"seed must be an integer in [0, 2^63), got {self.seed}")
        if self.split not in ("ncrepro", "official"):
            raise ValueError(f"split must be 'ncrepro' or 'official', got {self.split!r}")
        for name in ("epochs", "batch_size", "eval_every", "val_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if not (self.weight_decay >= 0 and 0 <= self.momentum < 1):
            raise ValueError("weight-decay must be >= 0 and momentum in [0, 1)")
        for name in ("lr", "momentum", "weight_decay", "grad_clip"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name.replace('_', '-')} must be a finite number, got {getattr(self, name)}")
        if self.nc_features not in ("clean", "augmented"):
            raise ValueError(f"nc_features must be 'clean' or 'augmented', got {self.nc_features!r}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {list(COMPILE_MODES)}, got {self.compile!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.device != "auto":
            try:
                kind = torch.device(self.device).type
            except (RuntimeError, TypeError):
                kind = None
            if kind not in ("cpu", "cuda"):
                raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        for name in ("train_subset", "val_subset", "test_subset"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer (or none for all), got {value}")
        return self

    def loss_params(self) -> dict[str, float]:
        """The loss's hyperparameter, read from the field the registry names (a registered loss
        without a field here trains at its default)."""
        spec = loss_spec(self.loss)
        if spec.param is None or spec.config_field is None:
            return {}
        return {spec.param: getattr(self, spec.config_field)}

    def public(self) -> dict:
        """The config as stored: the loss's own hyperparameter only, to keep results unambiguous."""
        out = dataclasses.asdict(self)
        for spec in LOSSES.values():
            if spec.config_field in out and spec.name != self.loss:
                out[spec.config_field] = None
        return out


#: The widest network a run may ask for (a bound on memory, not on what is sensible).
MAX_WIDTH = 16.0

#: ``compile`` values: ``auto`` compiles the training step on CUDA (``default`` mode) and not on
#: the CPU, where it measured slower at width 1/8 and exactness of --resume matters most; the
#: others are torch.compile modes, or ``off``.
COMPILE_MODES = ("auto", "off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

#: ``precision`` values. bf16 autocasts the training forward pass (convolutions and matrix
#: products in bfloat16, their sums in float32); ``auto`` is bf16 on CUDA and fp32 on the CPU,
#: which is what every run made before this setting existed used.
PRECISIONS = ("auto", "fp32", "bf16")

#: Settings that say where and how fast a run is computed, not what it computes: they are
#: stored with a result but do not make it a different run.
EXECUTION_SETTINGS = ("device", "compile")


def stored_settings(saved: dict) -> dict:
    """A stored config with every setting it lacks at its default: a setting added to
    TrainConfig after the run was made counts as its default value, so results and checkpoints
    stay valid when new options appear. The one rule by which stored configs are compared.

    >>> stored_settings({"loss": "mse"})["split"] == TrainConfig().split
    True
    """
    return {**TrainConfig().public(), **saved}


def differing_settings(saved: dict, config: TrainConfig) -> list[str]:
    """Settings in which a stored config differs from ``config``, ignoring execution settings;
    a setting missing from ``saved`` counts as its default (:func:`stored_settings`)."""
    stored, current = stored_settings(saved), config.public()
    return sorted(k for k in current if k not in EXECUTION_SETTINGS and stored[k] != current[k])


def lr_at_epoch(epoch: int, config: TrainConfig) -> float:
    """Learning rate of 0-based ``epoch``: x0.1 once ``3/7`` and again once ``5/7`` of the epochs are done."""
    milestones = (config.epochs * 3 // 7, config.epochs * 5 // 7)
    return config.lr * 0.1 ** sum(epoch >= m for m in milestones if m > 0)


#: The folder, beside a protocol's results, where a sweep keeps the checkpoints of unfinished
#: runs. It is tracked by git (unlike ``*.ckpt.pt`` elsewhere), so an unfinished run can be
#: committed and resumed from a fresh clone on another machine; a sweep removes a run's
#: checkpoint once its result is written.
IN_PROGRESS_DIR = "in-progress"


def checkpoint_path(out: str | Path, *, in_progress: bool = False) -> Path:
    """The checkpoint of the run whose result is ``out``: ``<stem>.ckpt.pt`` beside it, or in
    the :data:`IN_PROGRESS_DIR` folder beside it (``in_progress=True``, what sweeps use)."""
    out = Path(out)
    folder = out.parent / IN_PROGRESS_DIR if in_progress else out.parent
    return folder / (out.stem + ".ckpt.pt")


#: Parameters of each architecture at width 1, and how they grow with the width (every
#: convolution of ResNet18 scales with width²; WideResNet50's inner planes roughly so).
_PARAMETERS_AT_WIDTH_1 = {"resnet18": 11.2e6, "wrn50": 23.5e6}


def _available_memory() -> float | None:
    """Bytes of memory free on this machine now (None where the system does not say)."""
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(config: TrainConfig, device: torch.device) -> None:
    """Refuse, before any data loads, a network whose weights, gradients and optimiser state alone
    (16 bytes per parameter) would not fit in the memory the CPU has free."""
    if device.type != "cpu":
        return
    need = 16.0 * _PARAMETERS_AT_WIDTH_1.get(config.arch, 25e6) * max(config.width, 1.0) ** 2
    free = _available_memory()
    if free is not None and need > free:
        raise ValueError(f"width {config.width:g}: {config.arch} needs about {need / 2**30:.1f} GiB for its weights, "
                         f"gradients and momentum alone, and this machine has {free / 2**30:.1f} GiB free; use a "
                         f"smaller --width")


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def _channels_last_ok(model: torch.nn.Module, device: torch.device) -> bool:
    """channels_last everywhere on CUDA; on the CPU only when every convolution has at least 8
    output channels: with torch 2.14.1's oneDNN, channels_last convolutions with 4 channels
    (ResNet18 at width 1/16) crash the process ("double free or corruption")."""
    if device.type == "cuda":
        return True
    return min(m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)) >= 8


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), which is what makes
    bf16 autocast faster than float32 here; without it oneDNN emulates bf16, slower and with
    other rounding, so a run asking for bf16 is refused rather than silently changed."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(check is not None for check in checks):
        return any(check() for check in checks if check is not None)
    # An older torch without the checks: read the CPU's flags.
    return _io.has_native_bf16(_io.cpu_instruction_set(_io.read_cpuinfo()))


def training_precision(config: TrainConfig, device: torch.device | None = None) -> str:
    """``bf16`` or ``fp32``: what ``config.precision`` means on ``device`` (default: the config's
    own device, resolved on this machine).

    Raises:
        ValueError: bf16 asked for on a CPU without native bfloat16 (see
            :func:`cpu_has_native_bf16`); the message says to use fp32.
    """
    device = _resolve_device(config.device) if device is None else device
    if config.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if config.precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        raise ValueError("precision bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX); emulated, it "
                         "trains about 10x slower than float32 and rounds differently from the machines this run "
                         "is defined on; train with precision fp32 (a different run) or on a machine that has it")
    return config.precision


def _epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    # One generator per (seed, epoch): an epoch's shuffle and augmentation do not depend on
    # what ran before it, which is what makes --resume exact.
    gen = torch.Generator(device=device)
    gen.manual_seed(seed * 1_000_003 + epoch)
    return gen


def _narrowest_convolution(model: torch.nn.Module) -> int:
    """The fewest output channels of any convolution in ``model`` (a large number if it has none)."""
    return min((m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)), default=1 << 30)


#: How many compiled versions of the training step one process may keep. torch's own limit (8)
#: is reached by the fifth kind of network a process trains (each kind compiles the step for the
#: full and the short last batch, and a sweep measures before it trains), and past it dynamo runs
#: the step eagerly without failing: a GPU sweep of ResNet18 at three widths and WideResNet50 at
#: two would have trained its last kind uncompiled while its results said compiled.
_STEP_RECOMPILE_LIMIT = 64


def _within_recompile_limit(compiled_step):
    """``compiled_step``, called with :data:`_STEP_RECOMPILE_LIMIT` as dynamo's recompile limit
    (only during the call: the process's other compiled functions keep torch's setting)."""

    def step(x: torch.Tensor) -> torch.Tensor:
        with torch._dynamo.config.patch(recompile_limit=_STEP_RECOMPILE_LIMIT):
            return compiled_step(x)

    return step


def _compile_mode(config: TrainConfig, device: torch.device) -> str | None:
    if config.compile == "auto":
        return "default" if device.type == "cuda" else None
    return None if config.compile == "off" else config.compile


class _Trainer:
    def __init__(self, config: TrainConfig, splits: DataSplits, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.cuda = device.type == "cuda"
        self.num_classes = splits.num_classes
        # The whole dataset lives on the training device as uint8 and is augmented there.
        self.train_x = torch.from_numpy(splits.train.images).to(device)
        self.train_y = torch.from_numpy(splits.train.labels).to(device)
        self.val = (torch.from_numpy(splits.val.images).to(device), torch.from_numpy(splits.val.labels).to(device))
        self.test = (torch.from_numpy(splits.test.images).to(device), torch.from_numpy(splits.test.labels).to(device))
        torch.manual_seed(config.seed)
        self.model = build_model(config.arch, num_classes=self.num_classes, width=config.width).to(device)
        self.memory_format = torch.channels_last if _channels_last_ok(self.model, device) else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        # On CUDA the fused kernel updates every parameter in one launch (same arithmetic).
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay, fused=True if self.cuda else None)
        # Labels were checked once when the data loaded, so skip the per-step device sync.
        reduction = "sum" if config.loss_scale == "official" else "mean"
        self.loss_fn = get_loss(config.loss, reduction=reduction, validate_targets=False, **config.loss_params())
        # The official MSE is the batch sum of ||z - M e_y||^2: twice our 1/2-weighted sum.
        self.loss_factor = 2.0 if (config.loss_scale == "official" and config.loss == "mse") else 1.0
        self.per_sample_loss = get_loss(config.loss, reduction="none", validate_targets=False, **config.loss_params())
        self.precision = training_precision(config, device)
        self.compile_mode = _compile_mode(config, device)
        self.compile_failure: str | None = None
        if (self.compile_mode is not None and device.type == "cpu"
                and (narrowest := _narrowest_convolution(self.model)) < 8):
            # Not an exception _checked_step could catch: the compiled backward corrupts the heap
            # and the process dies (torch 2.14.1, ResNet18 at width 1/16, both memory formats).
            self.compile_failure = (f"not compiled: on the CPU the compiled step crashes the process when a "
                                    f"convolution has fewer than 8 channels (this model's narrowest has {narrowest})")
            print(f"ncrepro.train: {self.compile_failure}; training uncompiled", file=sys.stderr, flush=True)
            self.compile_mode = None
        self._step_logits = self._forward_logits
        if self.compile_mode is not None:
            # Static shapes: the short last batch gets its own graph. With dynamic shapes the
            # kernel used for full batches would change once a short batch had been seen, so a
            # resumed run would compute its first epoch differently from an uninterrupted one.
            self._step_logits = _within_recompile_limit(
                torch.compile(self._forward_logits, mode=self.compile_mode, dynamic=False))
        self._step_checked = self.compile_mode is None

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One SGD step; returns the logits (detached)."""
        logits = self._step_logits(x)
        loss = self.loss_fn(logits, y) * self.loss_factor
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return logits.detach()

    def _checked_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The first compiled step: if compiling fails (an unsupported torch or compiler), train
        on uncompiled and say so in the result, rather than lose the run."""
        try:
            logits = self._step(x, y)
        except Exception as err:  # noqa: BLE001 - any compiler failure means: run eagerly
            self.compile_failure = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
            print(f"ncrepro.train: torch.compile {self.compile_failure}; training uncompiled",
                  file=sys.stderr, flush=True)
            self.compile_mode = None
            self._step_logits = self._forward_logits
            logits = self._step(x, y)
        self._step_checked = True
        return logits

    def _input(self, images_nhwc_uint8: torch.Tensor) -> torch.Tensor:
        return normalize_batch(images_nhwc_uint8).contiguous(memory_format=self.memory_format)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.model(x).float()

    def train_epoch(self, epoch: int, progress: bool) -> dict:
        cfg = self.config
        lr = lr_at_epoch(epoch, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        gen = _epoch_generator(cfg.seed, epoch, self.device)
        n = len(self.train_y)
        order = torch.randperm(n, generator=gen, device=self.device)
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        batches = range(0, n, cfg.batch_size)
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch")
            batches = bar
        # Nothing in the step reads a value back to the host: loss and accuracy accumulate on
        # the device, and the progress bar (which must read them) updates every 50 batches.
        for i, start in enumerate(batches):
            self._train_batch(order[start:start + cfg.batch_size], gen, total_loss, correct)
            if bar is not None and (i % 50 == 0 or start + cfg.batch_size >= n):
                seen = min(start + cfg.batch_size, n)
                bar.set_postfix(loss=f"{float(total_loss) / seen:.4f}", acc=f"{float(correct) / seen:.3f}")
        if bar is not None:
            bar.close()
        train_loss = float(total_loss) / n
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training diverged in epoch {epoch + 1}: the mean training loss is {train_loss} "
                                   f"(loss {cfg.loss}, lr {lr:g}); a smaller learning rate or loss scale may help")
        self.last_train_loss = train_loss
        return {"lr": lr, "train_loss": train_loss, "train_acc": float(correct) / n}

    def _train_batch(self, idx: torch.Tensor, gen: torch.Generator, total_loss: torch.Tensor,
                     correct: torch.Tensor) -> None:
        """One step on the training images ``idx``, adding its summed loss and its correct
        predictions to the two device tensors in place (no read-back to the host). The training
        loop and :func:`measure_throughput` both run this, so the measured step is the real one."""
        x = self.train_x[idx]
        x = self._input(augment_batch(x, gen) if self.config.augment else x)
        y = self.train_y[idx]
        logits = self._step(x, y) if self._step_checked else self._checked_step(x, y)
        with torch.no_grad():
            total_loss += self.per_sample_loss(logits, y).double().sum()
            correct += (logits.argmax(1) == y).sum()

    @torch.no_grad()
    def _features(self, images: torch.Tensor, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features and logits of every image, in order, computed in full float32.

        Training may run in bfloat16 (``precision``), but its rounding (2^-8 relative) would put a floor
        under NC1 near the values of well-collapsed networks, so evaluation uses neither
        autocast nor TF32 (10-bit) convolutions and matrix products.
        """
        self.model.eval()
        feats, logits = [], []
        with _full_float32(self.cuda):
            for start in range(0, len(images), 500):
                x = images[start:start + 500]
                x = self._input(augment_batch(x, generator) if generator is not None else x)
                h, z = self.model.forward_with_features(x)
                feats.append(h.float())
                logits.append(z.float())
        return torch.cat(feats), torch.cat(logits)

    def _classifier(self) -> tuple[torch.Tensor, torch.Tensor]:
        fc = self.model.classifier
        return fc.weight.detach().float(), fc.bias.detach().float()

    def evaluate(self, epoch: int, final: bool = False) -> dict:
        W, b = self._classifier()
        gen = None
        if self.config.nc_features == "augmented":
            gen = _epoch_generator(self.config.seed + 7_919, epoch, self.device)
        H, Z = self._features(self.train_x, gen)
        if not bool(torch.isfinite(H).all()):
            last = getattr(self, "last_train_loss", float("nan"))
            raise TrainingDiverged(f"training diverged by epoch {epoch + 1}: the network's features are no longer "
                                   f"finite (last mean training loss {last:.4g})")
        _, val_logits = self._features(self.val[0])
        test_H, test_logits = self._features(self.test[0])
        out = {"val_acc": _accuracy(val_logits, self.val[1]), "test_acc": _accuracy(test_logits, self.test[1])}
        if gen is None:
            out["clean_train_acc"] = _accuracy(Z, self.train_y)
        else:
            # NC on augmented images, as the official code did; whether the network has fitted
            # its training set is still read on the clean images (one more forward pass).
            out["augmented_eval_train_acc"] = _accuracy(Z, self.train_y)
            out["clean_train_acc"] = _accuracy(self._features(self.train_x)[1], self.train_y)
        out.update(nc_metrics(H, self.train_y, W, b))
        if final:
            out["analysis"] = self._analysis(H, Z, test_H, test_logits)
        return out

    def _analysis(self, H, Z, test_H, test_logits) -> dict:
        """What the final network's last layer looks like: NC on test features, margins, norms,
        calibration, basis-free geometry and two classifier-free accuracies (see the metrics)."""
        W, b = self._classifier()
        y, test_y = self.train_y, self.test[1]
        margins = logit_margins(Z, y)
        test_margins = logit_margins(test_logits, test_y)
        geometry = class_geometry(H, y, W)
        return {
            "test_nc": nc_metrics(test_H, test_y, W, b),
            "train_margin_to_max": _median_mean(margins[:, 0]),
            "train_margin_to_mean": _median_mean(margins[:, 1]),
            "test_margin_to_max": _median_mean(test_margins[:, 0]),
            "train_true_class_probability": float(torch.softmax(Z.double(), 1).gather(1, y[:, None]).mean()),
            "test_confidence": float(torch.softmax(test_logits.double(), 1).max(1).values.mean()),
            "test_ece": expected_calibration_error(test_logits, test_y),
            "test_nll": float(torch.nn.functional.cross_entropy(test_logits.double(), test_y)),
            "feature_norm": float(H.double().norm(dim=1).mean()),
            "class_mean_norm": float(np.sqrt(np.diag(geometry["means"])).mean()),
            "classifier_row_norm": float(W.double().norm(dim=1).mean()),
            "bias_norm": float(b.double().norm()),
            "geometry": geometry,
            "nearest_class_mean_test_acc": nearest_class_mean_accuracy(H, y, test_H, test_y),
            "linear_probe_test_acc": linear_probe_accuracy(H, y, test_H, test_y),
            # Every test image's predicted class: two networks can then be compared by the
            # test images on which they agree, not only by how many each gets right.
            "test_predictions": test_logits.argmax(1).tolist(),
        }


class _full_float32:
    """Within the block, CUDA convolutions and matrix products use no TF32."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda

    def __enter__(self):
        if self.cuda:
            self.saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).double().mean())


def _median_mean(x: torch.Tensor) -> dict:
    return {"mean": float(x.mean()), "median": float(x.median()), "min": float(x.min())}


@dataclass
class Throughput:
    """Measured speed of one configuration on one device (see :func:`measure_throughput`)."""

    train_images_per_s: float
    eval_images_per_s: float
    setup_seconds: float          # building the model and compiling, beyond the steady-state steps
    compiled: str


def measure_throughput(config: TrainConfig, splits: DataSplits, *, steps: int | None = None,
                       warmup: int = 3) -> Throughput:
    """Time ``config``'s training step and evaluation on its device with the trainer itself, on
    the real (augmented) data: ``warmup`` untimed steps, and one on a short batch where the
    training set does not divide into batches (compilation happens there: a run compiles both
    shapes), then ``steps`` timed steps of the training loop's own batch code (default 40 on
    CUDA, where a step takes milliseconds and a few of them are noisy, 12 elsewhere), then the
    evaluation pass over up to 2,000 images. The model is thrown away."""
    device = _resolve_device(config.device)
    if steps is None:
        steps = 40 if device.type == "cuda" else 12
    if steps < 1 or warmup < 1:
        raise ValueError(f"steps and warmup must be at least 1, got {steps} and {warmup}")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    trainer = _Trainer(config, splits, device)
    trainer.model.train()
    n, bs = len(trainer.train_y), config.batch_size
    gen = torch.Generator(device=device).manual_seed(0)
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)

    def step(i: int, size: int = bs) -> None:
        trainer._train_batch(torch.arange(i * bs, i * bs + size, device=device) % n, gen, total_loss, correct)

    for i in range(warmup):
        step(i)
    short = n % bs
    if short:
        step(warmup, short)
    sync()
    t1 = time.perf_counter()
    for i in range(steps):
        step(warmup + 1 + i)
    sync()
    t2 = time.perf_counter()
    count = min(n, 2000)
    trainer._features(trainer.train_x[:min(n, 500)])  # warm-up of the evaluation path
    sync()
    t3 = time.perf_counter()
    trainer._features(trainer.train_x[:count])
    sync()
    t4 = time.perf_counter()
    per_step = (t2 - t1) / steps
    untimed_steps = warmup + (short / bs)
    return Throughput(train_images_per_s=bs / per_step, eval_images_per_s=count / (t4 - t3),
                      setup_seconds=max((t1 - t0) - untimed_steps * per_step, 0.0),
                      compiled=trainer.compile_mode or "off")


_CHECKPOINT_KEYS = ("config", "model", "optimizer", "history", "elapsed", "started")


def _load_checkpoint(path: Path, config: TrainConfig) -> dict | None:
    if not path.exists():
        return None
    what = "delete it to start the run over"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated, empty, random or crafted files all land here
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {first}); {what}") from None
    if not isinstance(state, dict) or any(k not in state for k in _CHECKPOINT_KEYS):
        raise ValueError(f"{path}: not an ncrepro checkpoint (missing {', '.join(_CHECKPOINT_KEYS)}); {what}")
    if not isinstance(state["config"], dict):
        raise ValueError(f"{path}: not an ncrepro checkpoint (its config is not a mapping); {what}")
    diff = differing_settings(state["config"], config)
    if diff:
        raise ValueError(f"{path}: checkpoint was written with different settings ({', '.join(diff)}); "
                         f"delete it or rerun with the same settings")
    history = state["history"]
    if (not isinstance(history, list) or len(history) > config.epochs
            or any(not isinstance(r, dict) or r.get("epoch") != i + 1 for i, r in enumerate(history))):
        raise ValueError(f"{path}: its history is not the epochs 1..k of a {config.epochs}-epoch run; {what}")
    if not (isinstance(state["elapsed"], (int, float)) and math.isfinite(state["elapsed"]) and state["elapsed"] >= 0):
        raise ValueError(f"{path}: its elapsed time is not a non-negative number; {what}")
    if not isinstance(state["started"], str) or not isinstance(state.get("machines") or [], list):
        raise ValueError(f"{path}: malformed start time or machine list; {what}")
    return state


def _restore(trainer, state: dict, path: Path) -> None:
    try:
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0][:160]
        raise ValueError(f"{path}: checkpoint does not fit this model ({first}); delete it to start over") from None


def _save(what: str, path: Path, write) -> None:
    """Write atomically; a failure (disk full, folder gone) is one line, the last good file kept."""
    try:
        write()
    except OSError as err:
        raise ValueError(f"{path}: could not write the {what} ({err.strerror or err}); the previous one, if any, "
                         f"is kept") from None
    except RuntimeError as err:  # torch.save reports a full disk or a failed write as a RuntimeError
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: could not write the {what} ({first}); the previous one, if any, is kept") from None


class TrainingDiverged(FloatingPointError):
    """The training loss, or the network's features, stopped being finite; the message names the
    epoch and the last loss. The checkpoint holds the last epoch that was still finite."""


class DeadlineReached(Exception):
    """Training stopped at an epoch boundary because the next epoch would pass the deadline;
    the checkpoint holds every finished epoch, and ``--resume`` continues from it."""


def train(config: TrainConfig, out: str | Path | None = None, *, resume: bool = False, progress: bool = True,
          splits: DataSplits | None = None, log=print, deadline: float | None = None,
          checkpoint: str | Path | None = None, overwrite: bool = False) -> dict:
    """Train as ``config`` says; return the result dict (and write it to ``out`` when given).

    A checkpoint (``checkpoint``, by default ``<out stem>.ckpt.pt`` beside ``out``) is written
    atomically after every epoch; with
    ``resume=True`` training continues from it and ends with the numbers an uninterrupted run
    gives (on the CPU, with the same seed). The result JSON is written only when training ends,
    with an ``analysis`` of the final network (see ``_Trainer._analysis``).

    ``deadline`` (a ``time.monotonic()`` value): before each epoch after the first, stop with
    :class:`DeadlineReached` if the epoch, at the mean pace so far, would end after it.

    Nothing is silently dropped: without ``resume`` an existing checkpoint is refused (unless
    ``overwrite``), and the result is not written over one that appeared at ``out`` while this
    run trained (unless ``overwrite``); the checkpoint is kept in both cases.
    """
    config.validate()
    _io.git_commit()  # pin provenance to the code as it was when training started
    device = _resolve_device(config.device)
    check_memory(config, device)
    if splits is None:
        train_set, test_set, desc = load_dataset(config.data, download=config.download)
        splits = make_splits(train_set, test_set, desc, val_size=config.val_size, train_subset=config.train_subset,
                             val_subset=config.val_subset, test_subset=config.test_subset, split=config.split)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
        # Deterministic mode also fills every new tensor with NaN (to expose reads of
        # uninitialised memory), which cost 6-12% of a training step at width 1/8 and changes no
        # result of correct code.
        torch.utils.deterministic.fill_uninitialized_memory = False
    else:
        torch.backends.cudnn.benchmark = True  # fast, and says so: GPU runs are not bit-reproducible
    trainer = _Trainer(config, splits, device)
    ckpt = Path(checkpoint) if checkpoint is not None else (checkpoint_path(out) if out is not None else None)
    if ckpt is not None and ckpt.exists() and not resume:
        if not overwrite:
            raise ValueError(f"{ckpt}: an unfinished run's checkpoint is here; pass --resume to continue it, or "
                             f"--overwrite to discard it and start over")
        ckpt.unlink()
    result_at_start = _file_identity(out)
    if out is not None:
        # Temporary files of an earlier process killed while writing these outputs.
        _io.remove_stale_temporaries(Path(out))
        _io.remove_stale_temporaries(ckpt)
    history: list[dict] = []
    elapsed = 0.0
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    machines: list[dict] = []
    state = _load_checkpoint(ckpt, config) if (resume and ckpt is not None) else None
    if state is not None:
        _restore(trainer, state, ckpt)
        history, elapsed, started = list(state["history"]), float(state["elapsed"]), state["started"]
        machines = list(state.get("machines") or [])
        log(f"resuming {ckpt} after epoch {len(history)}/{config.epochs}")
    # Which machine trained which epochs: a run may be resumed on another machine.
    segment = dict(_io.machine_description(device), precision=trainer.precision,
                   started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   first_epoch=len(history) + 1, last_epoch=len(history))
    analysis = state.get("analysis") if state is not None else None
    durations: list[float] = []   # of epochs in this process, on the deadline's clock
    for epoch in range(len(history), config.epochs):
        if deadline is not None and history:
            # Stop at an epoch boundary, checkpoint kept, when the next epoch would overrun.
            per_epoch = sum(durations) / len(durations) if durations else elapsed / len(history)
            if time.monotonic() + per_epoch > deadline:
                raise DeadlineReached(f"stopped after epoch {len(history)}/{config.epochs}: the next epoch "
                                      f"(about {per_epoch:.0f} s) would pass the deadline")
        t0, started_at = time.perf_counter(), time.monotonic()
        record = {"epoch": epoch + 1, **trainer.train_epoch(epoch, progress)}
        final = epoch + 1 == config.epochs
        evaluate = (epoch + 1) % config.eval_every == 0 or final
        metrics = trainer.evaluate(epoch, final=final) if evaluate else {}
        if final:
            analysis = metrics.pop("analysis")
        for key in ("val_acc", "test_acc", "nc1", "nc2", "nc3", "nc4", "bias_gap"):
            record[key] = metrics.pop(key, None)
        record.update(metrics)
        record["seconds"] = time.perf_counter() - t0
        durations.append(time.monotonic() - started_at)
        elapsed += record["seconds"]
        history.append(record)
        segment["last_epoch"] = len(history)
        if progress or log is not print:
            log(_format_epoch(record, config.epochs))
        if ckpt is not None:
            snapshot = {"config": config.public(), "model": trainer.model.state_dict(),
                        "optimizer": trainer.optimizer.state_dict(), "history": history,
                        "elapsed": elapsed, "started": started, "analysis": analysis,
                        "machines": machines + [segment]}
            _save("checkpoint", ckpt, lambda: _io.atomic_torch_save(snapshot, ckpt))
    compiled = trainer.compile_mode or ("off" if trainer.compile_failure is None
                                        else f"off ({trainer.compile_failure})")
    if segment["last_epoch"] >= segment["first_epoch"]:
        machines = machines + [segment]
    result = _result(config, splits, device, history, started, elapsed, analysis, compiled, trainer.precision,
                     machines)
    if out is not None:
        if not overwrite and _file_identity(out) not in (None, result_at_start):
            raise ValueError(f"{out}: another result was written there while this run trained; this run's result "
                             f"was not written (its checkpoint {ckpt} is kept); pass --overwrite to replace it")
        _save("result", Path(out), lambda: _io.atomic_write_json(out, result))
    return result


def _file_identity(path) -> tuple | None:
    """Device, inode, size and modification time of a file, or None if there is none."""
    if path is None:
        return None
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _package_version() -> str:
    from ._version import __version__

    return __version__


def _format_epoch(r: dict, epochs: int) -> str:
    parts = [f"epoch {r['epoch']}/{epochs}", f"lr {r['lr']:.4g}", f"loss {r['train_loss']:.4f}",
             f"train {r['train_acc']:.3f}"]
    if r["val_acc"] is not None:
        parts += [f"val {r['val_acc']:.3f}", f"test {r['test_acc']:.3f}", f"NC1 {r['nc1']:.3g}",
                  f"NC2 {r['nc2']:.3g}", f"NC3 {r['nc3']:.3g}", f"NC4 {r['nc4']:.3g}"]
    return "  ".join(parts) + f"  ({r['seconds']:.1f}s)"


def _result(config, splits, device, history, started, elapsed, analysis, compile_mode, precision,
            machines) -> dict:
    evaluated = [r for r in history if r["val_acc"] is not None]
    best = max(evaluated, key=lambda r: (r["val_acc"], r["epoch"]))
    last = history[-1]
    return {
        "config": config.public(),
        "provenance": {
            "git_commit": _io.git_commit(),
            "ncrepro": _package_version(),
            "torch": torch.__version__,
            "device": _io.device_description(device),
            "started": started,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": round(elapsed, 2),
            "compiled": compile_mode,
            "precision": precision,
            "machines": machines,
            "dataset": splits.description,
            "python": sys.version.split()[0],
            "numpy": np.__version__,
        },
        "summary": {
            "final_train_acc": last["train_acc"],
            "final_clean_train_acc": last.get("clean_train_acc"),
            "final_test_acc": last["test_acc"],
            "best_val_epoch": best["epoch"],
            "best_val_acc": best["val_acc"],
            "test_acc_at_best_val": best["test_acc"],
            "final_nc": {k: last[k] for k in ("nc1", "nc2", "nc3", "nc4", "bias_gap")},
        },
        "analysis": analysis,
        "epochs": history,
    }


def _subset_size(text: str) -> int | None:
    if text.lower() in ("none", "all"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value}")
    return value


def _choices(kind) -> tuple[str, ...] | None:
    from .losses import LOSSES

    named = {"losses": tuple(LOSSES), "architectures": tuple(ARCHITECTURES), "compile": COMPILE_MODES,
             "precision": PRECISIONS}
    return named.get(kind, kind)


def build_parser() -> argparse.ArgumentParser:
    """The command line, one option per :class:`TrainConfig` field (help and default from it)."""
    p = OneLineParser(prog=program_name("ncrepro-train", "ncrepro.train"), description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"]
        if f.type in ("bool", bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
            continue
        kwargs = {"default": f.default, "help": help_text}
        if f.name.endswith("_subset"):
            kwargs["type"] = _subset_size
        elif f.type in ("int", int):
            kwargs["type"] = int
        elif f.type in ("float", float):
            kwargs["type"] = float
        if "choices" in f.metadata:
            kwargs["choices"] = _choices(f.metadata["choices"])
        p.add_argument(flag, **kwargs)
    p.add_argument("--out", required=True, help="result JSON to write; the checkpoint lives beside it")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint beside --out")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing result at --out, even one of another configuration")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})


def check_output(out: str | Path, config: TrainConfig, *, overwrite: bool = False) -> dict | None:
    """Check ``out`` before any training: a ``.json`` path whose folder exists or can be made and
    is writable. Returns the finished result already there for ``config`` (None if there is
    none); an existing file of another configuration, or not a result at all, is refused
    unless ``overwrite``.

    Raises:
        ValueError: with one line that names the file and what to do.
    """
    out = Path(out)
    if out.suffix != ".json":
        raise ValueError(f"--out must name a .json result file, got {out}")
    if out.is_dir():
        raise ValueError(f"{out}: is a folder; --out names the result file")
    folder = out.parent
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: is a file, not a folder for {out.name}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".{out.name}.{os.getpid()}.probe.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"{folder}: cannot write the result there ({err.strerror or err})") from None
    if not out.exists() or overwrite:
        return None
    result = read_result(out, hint="move it away or pass --overwrite")
    diff = differing_settings(result["config"], config)
    if diff:
        raise ValueError(f"{out}: holds the result of another configuration ({', '.join(diff)}); "
                         f"choose another --out, or pass --overwrite")
    return result


def read_result(path: str | Path, *, hint: str = "move it away") -> dict:
    """A finished result file, checked (config, provenance, summary, epochs).

    Raises:
        ValueError: unreadable, not UTF-8, not JSON, or not a finished result; the message
            names the file and ends with ``hint``.
    """
    path = Path(path)
    result = _io.read_json_file(path, "a result", hint)
    return check_result(result, str(path), hint)


def check_result(result, where: str, hint: str = "move it away") -> dict:
    """``result`` if it has the shape of a finished result; ValueError naming ``where`` otherwise."""
    if not isinstance(result, dict):
        raise ValueError(f"{where}: a result must be a JSON object, got {type(result).__name__}; {hint}")
    missing = [k for k in ("config", "provenance", "summary", "epochs") if k not in result]
    if missing:
        raise ValueError(f"{where}: not a finished result (missing {', '.join(missing)}); {hint}")
    if not isinstance(result["config"], dict) or not isinstance(result["epochs"], list) or not result["epochs"]:
        raise ValueError(f"{where}: malformed result (config must be an object, epochs a non-empty list); {hint}")
    prov = result["provenance"]
    if not isinstance(prov, dict) or any(k not in prov for k in ("git_commit", "device", "torch", "dataset")):
        raise ValueError(f"{where}: missing provenance (git_commit, device, torch, dataset); {hint}")
    problem = _shape_problem(result)
    if problem:
        raise ValueError(f"{where}: malformed result: {problem}; {hint}")
    return result


def _is_number(value, low: float = -math.inf, high: float = math.inf) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and low <= value <= high)


#: Per-epoch fields every reader may use, and what they must be when present (None: not
#: measured that epoch).
_EPOCH_FIELDS = {"train_loss": (-math.inf, math.inf), "train_acc": (0, 1), "clean_train_acc": (0, 1),
                 "val_acc": (0, 1), "test_acc": (0, 1), "nc1": (0, math.inf), "nc2": (0, math.inf),
                 "nc3": (0, math.inf), "nc4": (0, 1), "lr": (0, math.inf), "seconds": (0, math.inf)}


def _shape_problem(result: dict) -> str | None:
    """The first field of a result that is not what the readers expect (None if all are)."""
    config, summary, prov = result["config"], result["summary"], result["provenance"]
    for key, kind in (("loss", str), ("arch", str), ("epochs", int), ("seed", int)):
        if key in config and (not isinstance(config[key], kind) or isinstance(config[key], bool)):
            return f"config.{key} must be {kind.__name__}, got {config[key]!r}"
    if "width" in config and not _is_number(config["width"], 0):
        return f"config.width must be a positive number, got {config['width']!r}"
    if not isinstance(summary, dict):
        return "summary must be an object"
    for key in ("final_test_acc", "test_acc_at_best_val", "best_val_acc", "final_train_acc"):
        if key in summary and summary[key] is not None and not _is_number(summary[key], 0, 1):
            return f"summary.{key} must be a fraction in [0, 1], got {summary[key]!r}"
    final_nc = summary.get("final_nc", {})
    if not isinstance(final_nc, dict) or any(v is not None and not _is_number(v) for v in final_nc.values()):
        return "summary.final_nc must map NC metrics to numbers"
    if not isinstance(prov["dataset"], dict):
        return "provenance.dataset must be an object"
    for key in ("train_size", "val_size", "test_size"):
        value = prov["dataset"].get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            return f"provenance.dataset.{key} must be a positive integer, got {value!r}"
    if "wall_seconds" in prov and not _is_number(prov["wall_seconds"], 0):
        return f"provenance.wall_seconds must be a non-negative number, got {prov['wall_seconds']!r}"
    for i, record in enumerate(result["epochs"]):
        if not isinstance(record, dict) or record.get("epoch") != i + 1:
            return f"epochs[{i}] must be the record of epoch {i + 1}"
        for key, (low, high) in _EPOCH_FIELDS.items():
            value = record.get(key)
            if value is not None and not _is_number(value, low, high):
                return f"epochs[{i}].{key} must be a number in [{low}, {high}], got {value!r}"
    if result.get("analysis") is not None and not isinstance(result["analysis"], dict):
        return "analysis must be an object"
    return None


def _ignored_hyperparameters(config: TrainConfig, argv) -> list[str]:
    """The other losses' hyperparameter flags given on the command line (``--alpha`` with
    ``--loss ce``): accepted, but they change nothing, so the user is told."""
    given = {a.split("=", 1)[0] for a in (argv if argv is not None else sys.argv[1:]) if a.startswith("--")}
    own = loss_spec(config.loss).config_field
    return sorted(flag for spec in LOSSES.values() if spec.config_field and spec.config_field != own
                  for flag in ["--" + spec.config_field.replace("_", "-")] if flag in given)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, code = parser.parse_or_code(argv)
    if args is None:
        return code

    def action():
        from .locks import LockHeld, RunLock

        config = config_from_args(args).validate()
        for ignored in _ignored_hyperparameters(config, argv):
            print(f"{parser.prog}: note: {ignored} is ignored with --loss {config.loss}", file=sys.stderr)
        finished = check_output(args.out, config, overwrite=args.overwrite)
        if finished is not None:
            print(f"{args.out}: this run is already finished (pass --overwrite to train it again)")
            return 0
        try:
            with RunLock(args.out):
                train(config, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                      log=lambda m: print(m, flush=True))
        except LockHeld as held:
            raise ValueError(f"{args.out}: another process is training this run ({held.info.get('host')} pid "
                             f"{held.info.get('pid')} since {held.info.get('started')})") from None

    return run_guarded(parser.prog, action, "interrupted; rerun with --resume to continue")


if __name__ == "__main__":
    sys.exit(main())
