"""The registry of losses: one entry per loss, read by everything that needs to know the losses
(the modules, the UFM solver and theory, the landscape, the command line, run names, plots)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch


@dataclass(frozen=True)
class LossSpec:
    """Everything ncrepro knows about one loss.

    Attributes:
        name: short name used everywhere (``"ce"``).
        label: short label for plots and tables (``"CE"``).
        title: what it is, in words.
        per_sample: the pure function ``(logits (..., K), targets, value) -> (...)`` per-sample
            losses; ``value`` is the hyperparameter (a float, or a tensor that broadcasts against
            ``logits.shape[:-1]``, so a batch of problems with different values runs at once).
        at_margin: ``(m ndarray, K, value) -> ndarray``: the loss of one sample whose K-1 wrong
            logits all sit ``m`` below the true one (the UFM's one-dimensional form).
        param: the hyperparameter's name (``"alpha"``), or None.
        default: its default value (the official CIFAR-10 scripts' choice).
        check: validates a value (raises ValueError), returns it as float.
        token: prefix of the hyperparameter in run names (``"a"`` for ``-a0.1``).
        config_field: the :class:`ncrepro.train.TrainConfig` field holding the hyperparameter.
        kind: ``"ce-family"`` (the UFM optimum is a simplex ETF whose margin minimises
            ``at_margin(m) + c0 m``, Zhou et al. Theorem 3.1) or ``"mse"``.
        optimal_margin: optional closed form ``(K, c0, value) -> m*`` for a ce-family loss;
            without it the theory minimises ``at_margin(m) + c0 m`` by a global 1-D search.
        color: plot colour.
        references: papers, with arXiv links.
    """

    name: str
    label: str
    title: str
    per_sample: Callable[..., torch.Tensor]
    at_margin: Callable[..., np.ndarray]
    param: str | None = None
    default: float | None = None
    check: Callable[[float], float] | None = None
    token: str = ""
    config_field: str | None = None
    kind: str = "ce-family"
    optimal_margin: Callable[[int, float, float], float] | None = None
    color: str = "#7f7f7f"
    references: tuple[str, ...] = field(default_factory=tuple)

    def value(self, params: dict) -> float | None:
        """The hyperparameter from ``params`` (default if absent), checked; ValueError on extra keys."""
        allowed = {self.param} if self.param else set()
        unknown = set(params) - allowed
        if unknown:
            raise ValueError(f"loss {self.name!r} takes {sorted(allowed) or 'no hyperparameters'}, "
                             f"got {sorted(unknown)}")
        if self.param is None:
            return None
        raw = params.get(self.param, self.default)
        return self.check(raw) if self.check else float(raw)


LOSSES: dict[str, LossSpec] = {}


def register_loss(spec: LossSpec) -> LossSpec:
    """Add a loss to the registry (a name may be registered once)."""
    if spec.name in LOSSES:
        raise ValueError(f"a loss named {spec.name!r} is already registered")
    if spec.kind not in ("ce-family", "mse"):
        raise ValueError(f"kind must be 'ce-family' or 'mse', got {spec.kind!r}")
    if (spec.param is None) != (spec.default is None):
        raise ValueError("a loss with a hyperparameter needs a default, and only then")
    LOSSES[spec.name] = spec
    return spec


def unregister_loss(name: str) -> None:
    """Remove a registered loss (for tests that register a toy loss)."""
    LOSSES.pop(name, None)


def loss_spec(name: str) -> LossSpec:
    """The registry entry of ``name``; ValueError naming the known losses otherwise."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name]
