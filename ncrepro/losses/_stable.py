"""Exact building blocks for losses of logits (private).

Every loss here is a function of the differences ``r_j = z_j - z_y``. Computing
``logsumexp(z) - z_y`` cancels catastrophically for a confidently classified sample (the true
value 8.7e-16 comes out as -0.0 for logits of size ~40), and ``1 - p_y`` loses every digit
once ``p_y`` rounds to 1. The functions below avoid both:

* ``r_j`` is formed by an error-free subtraction (Knuth's TwoSum): ``r_j = hi_j + lo_j`` exactly,
  and ``exp(r_j)`` is ``exp(hi_j) * (1 + lo_j)``, so even a subtraction that rounds costs no digit;
* ``-log p_y = log1p(S)`` with ``S = sum_{j != y} exp(r_j)`` while ``S <= 1`` (the sample is
  classified, ``p_y >= 1/2``), and ``omega + log1p(exp(-omega))`` with ``omega = log S`` beyond;
* ``1 - p_y = S / (1 + S)`` while ``S <= 1`` and ``1 / (1 + 1/S)`` beyond, so a power
  ``(1 - p_y)^gamma`` loses only about gamma ulps.

Every branch is evaluated on inputs clamped into its own range, so no branch produces an
infinity whose zero-weighted gradient would turn into NaN (the ``torch.where`` pitfall).
Autograd through these expressions gives gradients with the same accuracy as the values.
The leading dimensions of ``logits`` are free: ``(..., K)`` with targets broadcastable to
``logits.shape[:-1]``.
"""

from __future__ import annotations

import torch


def _two_diff(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a - b = hi + lo`` exactly (TwoSum on ``a + (-b)``); ``lo`` carries no gradient."""
    hi = a - b
    with torch.no_grad():
        a_virtual = hi + b
        b_virtual = a_virtual - hi
        lo = (a - a_virtual) + (b_virtual - b)
    return hi, lo


def _gather_last(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(-1, index.unsqueeze(-1)).squeeze(-1)


def differences(logits: torch.Tensor, targets: torch.Tensor):
    """``(hi, lo, mask)``: ``z_j - z_y = hi + lo`` for every class (0 at y) and the mask of the
    other classes, ``j != y``."""
    targets = targets.expand(logits.shape[:-1])
    true = _gather_last(logits, targets).unsqueeze(-1)
    hi, lo = _two_diff(logits, true)
    mask = torch.ones_like(logits, dtype=torch.bool).scatter(-1, targets.unsqueeze(-1), False)
    return hi, lo, mask


def _log_sum_exp_others(logits: torch.Tensor, true: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``omega = log sum_{j != y} exp(z_j - z_y)``.

    Formed as ``(a - z_y) + log sum_{j != y} exp(z_j - a)`` with ``a`` the largest other logit,
    detached: the difference ``a - z_y`` is exact (TwoSum), the sum is of numbers in (0, 1], and
    the gradient is the softmax over the other classes computed from the logits themselves, to a
    few ulps (torch.logsumexp's backward, ``exp(x - omega)``, would inherit omega's rounding,
    about |omega| ulps)."""
    masked = logits.masked_fill(~mask, float("-inf"))
    a = masked.amax(-1).detach()
    hi, lo = _two_diff(a, true)
    return hi + lo + torch.log(torch.exp(masked - a.unsqueeze(-1)).sum(-1))


def _sum_exp_others(hi: torch.Tensor, lo: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``S = sum_{j != y} exp(hi_j) (1 + lo_j)``, on ``hi`` clamped at 0 (the branch where it is used)."""
    terms = torch.exp(hi.clamp(max=0.0)) * (1.0 + lo)
    return terms.masked_fill(~mask, 0.0).sum(-1)


def nll_and_q(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(-log p_y, 1 - p_y)`` per sample, each to a few ulps of its true value.

    ``1 - p_y = S / (1 + S)`` is formed from S while the sample is classified (S <= 1) and as
    ``1 / (1 + 1/S)`` beyond: both are quotients of accurate numbers, never a difference.
    """
    hi, lo, mask = differences(logits, targets)
    true = _gather_last(logits, targets.expand(logits.shape[:-1]))
    omega = _log_sum_exp_others(logits, true, mask)
    confident = omega <= 0.0                       # S <= 1, p_y >= 1/2
    S = _sum_exp_others(hi, lo, mask)              # exact where confident (all r_j <= omega <= 0)
    omega_pos = omega.clamp(min=0.0)
    inverse_S = torch.exp(-omega_pos)              # 1/S where not confident
    nll = torch.where(confident, torch.log1p(S), omega_pos + torch.log1p(inverse_S))
    q = torch.where(confident, S / (1.0 + S), 1.0 / (1.0 + inverse_S))
    return nll, q


def nll_true_class(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-log p_y`` (cross entropy) per sample."""
    return nll_and_q(logits, targets)[0]


def nll_every_class(logits: torch.Tensor) -> torch.Tensor:
    """``-log p_j`` for every class j, shape ``(..., K)``, each to a few ulps.

    With ``t`` the largest logit, ``-log p_j = -log p_t + (z_t - z_j)``: a sum of two
    non-negative terms, the first from :func:`nll_true_class` and the second an exact
    difference, so nothing cancels whichever class is confident.
    """
    top = logits.argmax(-1)
    hi, lo, _ = differences(logits, top)            # z_j - z_t <= 0
    return nll_true_class(logits, top).unsqueeze(-1) - (hi + lo)
