"""nc_metrics against the textbook NC computation (issue target: >= 8x, same values).

N = 50,000 features, d = 2,048, K = 100, float32 (a WideResNet50's CIFAR-100 training set). The
textbook computation forms the d x d within- and between-class covariances and pseudo-inverts
Sigma_B (float64, so that its values are right; in float32 it is also wrong, see the book).

    python benchmarks/nc_metrics_speed.py [--N 50000 --d 2048 --K 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ncrepro.metrics import nc_metrics
from ncrepro.metrics import textbook_nc_metrics as textbook


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--N", type=int, default=50_000)
    p.add_argument("--d", type=int, default=2048)
    p.add_argument("--K", type=int, default=100)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    labels = np.arange(args.N) % args.K
    centres = rng.normal(size=(args.K, args.d)).astype(np.float32)
    H = centres[labels] + 0.5 * rng.standard_normal((args.N, args.d), dtype=np.float32)
    W = rng.normal(size=(args.K, args.d)).astype(np.float32)
    b = rng.normal(size=args.K).astype(np.float32)

    t0 = time.perf_counter()
    ref = textbook(H, labels, W, b)
    t_textbook = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = nc_metrics(H, labels, W, b)
    t_ours = time.perf_counter() - t0

    worst = max(abs(ours[k] - ref[k]) / max(abs(ref[k]), 1e-12) for k in ref)
    print(f"N={args.N}, d={args.d}, K={args.K}, float32 features, {torch.get_num_threads()} torch threads")
    print(f"textbook (d x d covariances, pinv, float64): {t_textbook:8.2f} s")
    print(f"ncrepro.metrics.nc_metrics:                   {t_ours:8.2f} s")
    print(f"largest relative difference in any metric: {worst:.1e}")
    print(f"speed-up: {t_textbook / t_ours:.1f}x (target >= 8x)")


if __name__ == "__main__":
    main()
