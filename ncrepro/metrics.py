"""Neural collapse metrics NC1-NC4 (Papyan, Han & Donoho 2020) with the conventions of
Zhou et al., NeurIPS 2022 (official ``evaluate.py``), pinned here:

* ``Sigma_W = 1/N sum_k sum_i (h_ki - mu_k)(h_ki - mu_k)^T`` (divisor N, all samples);
* ``Sigma_B = 1/K sum_k (mu_k - mu_G)(mu_k - mu_G)^T`` with ``mu_G`` the mean of all samples;
* ``NC1 = tr(Sigma_W Sigma_B^+) / K`` with the Moore-Penrose pseudo-inverse;
* ``NC2 = || Wc Wc^T / ||Wc Wc^T||_F - (I - 11^T/K) / sqrt(K-1) ||_F``, ``Wc`` = W minus its mean row;
* ``NC3`` = the same form with ``Wc M``, ``M = [mu_k - mu_G]`` (d x K);
* ``nc2_means``: NC2's form on the class means (``M^T M``), the "equinorm, equiangular means"
  of Papyan, Han & Donoho (2020, arXiv:2008.08186), beside the classifier's NC2;
* ``nc3_papyan``: their self-duality distance ``|| W^T/||W||_F - M/||M||_F ||_F``;
* ``NC4`` = fraction of samples whose prediction ``argmax(W h + b)`` differs from the nearest
  class mean (Papyan et al.), not the official plots' bias panel, which is ``bias_gap``;
* ``bias_gap = ||W mu_G + b||`` (only when ``b`` is given).

Nothing here forms a d x d matrix. ``Sigma_B = M M^T / K`` has rank at most K-1, so with the
thin SVD ``M = U S V^T`` (rank r), ``tr(Sigma_W Sigma_B^+) = K sum_j (u_j^T Sigma_W u_j) / s_j^2``
and ``u_j^T Sigma_W u_j`` is the mean squared projection of the centred features on ``u_j``.
That is O(N d K) work instead of O(N d^2 + d^3). Class means, the SVD and all sums are float64;
the per-sample products run in the features' precision (float32 for a network's features),
after the class mean is subtracted exactly (see ``_metrics_from_statistics``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = [
    "nc_metrics",
    "NCMetricsAccumulator",
    "simplex_etf_distance",
    "logit_margins",
    "expected_calibration_error",
    "class_geometry",
    "gram_procrustes_distance",
    "gram_cka",
    "linear_probe_accuracy",
    "nearest_class_mean_accuracy",
    "textbook_nc_metrics",
    "simplex_etf",
    "first_below",
    "random_nc_baseline",
]

_CHUNK = 8192


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ValueError(f"{name} must be a NumPy array or a torch tensor, got {type(x).__name__}")


def _check_finite(x: torch.Tensor, name: str) -> None:
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_inputs(H, labels, W, b):
    H = _as_tensor(H, "H")
    labels = _as_tensor(labels, "labels")
    W = _as_tensor(W, "W")
    if H.dim() != 2:
        raise ValueError(f"H must have shape (N, d), got {tuple(H.shape)}")
    if W.dim() != 2:
        raise ValueError(f"W must have shape (K, d), got {tuple(W.shape)}")
    K, d = W.shape
    if H.shape[1] != d:
        raise ValueError(f"H has feature dimension {H.shape[1]} but W has {d} columns")
    if labels.dim() != 1 or labels.shape[0] != H.shape[0]:
        raise ValueError(f"labels must have shape ({H.shape[0]},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if K < 2:
        raise ValueError(f"need at least 2 classes, W has K={K} rows")
    if b is not None:
        b = _as_tensor(b, "b")
        if b.shape != (K,):
            raise ValueError(f"b must have shape ({K},), got {tuple(b.shape)}")
        _check_finite(b, "b")
    _check_finite(W, "W")  # H is checked by the class sums (one pass fewer over the data)
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= K:
            raise ValueError(f"label {lo if lo < 0 else hi} is outside [0, {K}) for K={K} classes")
    device = H.device
    return H, labels.to(device).long(), W.to(device), (None if b is None else b.to(device))


def _papyan_duality(W: torch.Tensor, M: torch.Tensor) -> float:
    """``|| W^T/||W||_F - M/||M||_F ||_F``: NC3 as Papyan, Han & Donoho (2020) measure it
    (W as it is, not centred; the distance itself, not its square)."""
    nw, nm = torch.linalg.matrix_norm(W), torch.linalg.matrix_norm(M)
    if nw == 0 or nm == 0:
        return float("nan")
    return float(torch.linalg.matrix_norm(W.T / nw - M / nm))


def simplex_etf_distance(G: torch.Tensor) -> float:
    """``|| G/||G||_F - (I - 11^T/K)/sqrt(K-1) ||_F`` for a K x K matrix G (0 for a simplex ETF)."""
    K = G.shape[0]
    G = G.double()
    norm = torch.linalg.matrix_norm(G)
    if norm == 0:
        return float("nan")
    etf = (torch.eye(K, dtype=G.dtype, device=G.device) - 1.0 / K) / math.sqrt(K - 1)
    return float(torch.linalg.matrix_norm(G / norm - etf))


def _power_of_two_scale(H: torch.Tensor) -> float:
    """1, or a power of two that brings H's largest entry near 1 when it is far from it.

    Every metric is invariant to the scale of H once the bias is scaled alike (NC1 and the
    nearest-mean rule are ratios; the logits W h + b keep their argmax), and multiplying by a
    power of two is exact, so features of size 1e200 or 1e-300 (or float32 1e30, whose squares
    overflow) give the same numbers as features of size 1. Typical features are left as they are.
    """
    largest = 0.0
    for start in range(0, H.shape[0], _CHUNK):
        chunk = H[start:start + _CHUNK]
        if chunk.numel():
            largest = max(largest, float(chunk.abs().max()))
    if largest == 0.0 or not math.isfinite(largest):
        return 1.0
    exponent = math.frexp(largest)[1]
    return 1.0 if abs(exponent) <= 40 else math.ldexp(1.0, exponent)


def _class_statistics(H: torch.Tensor, labels: torch.Tensor, K: int, scale: float = 1.0):
    """Class counts and class sums in float64, chunk by chunk (H is never copied whole).

    Each chunk is widened to float64 before it is summed: summing float32 features in float32
    puts an error of about N ulps of the feature size into the means, which for nearly collapsed
    features (within-class spread 1e-5 of the feature size) inflates NC1 tenfold. The sums also
    serve as the finiteness check: a NaN or infinity anywhere makes some sum non-finite, so no
    separate pass over H is needed.
    """
    d = H.shape[1]
    counts = torch.bincount(labels, minlength=K).double()
    sums = torch.zeros(K, d, dtype=torch.float64, device=H.device)
    for start in range(0, H.shape[0], _CHUNK):
        sums.index_add_(0, labels[start:start + _CHUNK], H[start:start + _CHUNK].double() / scale)
    if not bool(torch.isfinite(sums).all()):
        _check_finite(H, "H")          # names the problem; a finite H with overflowing sums
        raise ValueError("H is too large: its class sums overflow")  # is refused too
    return counts, sums


def _metrics_from_statistics(H, labels, W, b, counts, sums, scale: float = 1.0) -> dict[str, float]:
    """The metrics from class statistics of ``H / scale`` (see :func:`_power_of_two_scale`)."""
    K, d = W.shape
    b = None if b is None else b.double() / scale
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        raise ValueError(f"class {empty[0]} has no sample (classes without samples: {empty})")
    N = float(counts.sum())
    means = sums / counts[:, None]                      # (K, d), float64
    global_mean = sums.sum(0) / N                       # (d,)
    M_raw = (means - global_mean).T                     # (d, K)

    # Between-class directions. sum_k n_k (mu_k - mu_G) = 0, so the count vector spans a null
    # direction of M; project it out exactly, so the rank (at most K-1) never rests on rounding,
    # then cut the remaining singular values as numpy.linalg.matrix_rank does.
    v = counts / torch.linalg.vector_norm(counts)
    M = M_raw - (M_raw @ v)[:, None] * v[None, :]
    _, S, Vh = torch.linalg.svd(M, full_matrices=False)
    tol = S.max() * max(d, K) * torch.finfo(torch.float64).eps
    rank = int((S > tol).sum())
    S = S[:rank]

    # One pass over the samples. The within-class deviation dev = h - mu_y is formed first, to
    # the working precision of dev itself (see mu_hi/mu_lo below), so strongly collapsed
    # features lose no digits to cancellation; the product then runs in the features' own
    # precision (float32 features: float32, as the network computes them) and sums of squares
    # accumulate in float64. A single product dev @ [M, W^T] gives
    #   NC1:  dev @ U = (dev @ M) V S^-1   (U = M V S^-1 spans the columns of M),
    #   NC4:  h @ W^T = dev @ W^T + mu_y @ W^T  and
    #         (h - mu_G) @ M = dev @ M + (mu_y - mu_G) @ M   for the nearest class mean.
    dtype = torch.float64 if H.dtype == torch.float64 else torch.float32
    to_U = Vh[:rank].T / S[None, :]                      # (K, rank): dev @ M @ to_U = dev @ U
    W64 = W.double()
    right64 = torch.cat([M, W64.T], dim=1)                                 # (d, 2K)
    right = right64.to(dtype)
    # Per-class additions: (mu_y - mu_G) @ M for the nearest mean, mu_y @ W^T (+ b) for the logits.
    class_terms = torch.cat([M.T @ M, means @ W64.T], dim=1)               # (K, 2K)
    if b is not None:
        class_terms[:, K:] += b.double()
    mean_sq = (M * M).sum(0)                                               # ||mu_k - mu_G||^2
    # mu = mu_hi + mu_lo with mu_hi in the working precision: for h near mu_y (the collapsed
    # case that matters) h - mu_hi is exact (Sterbenz), and since everything below is linear in
    # dev, mu_lo's share is a per-class float64 table rather than a second pass over the data.
    means_hi = means.to(dtype)
    lo_terms = (means - means_hi.double()) @ right64                                  # (K, 2K)
    projected_sq = torch.zeros(rank, dtype=torch.float64, device=H.device)
    disagree = 0
    for start in range(0, H.shape[0], _CHUNK):
        y = labels[start:start + _CHUNK]
        chunk = H[start:start + _CHUNK].to(dtype)
        dev_hi = (chunk if scale == 1.0 else (chunk.double() / scale).to(dtype)) - means_hi[y]
        prod = (dev_hi @ right).double() - lo_terms[y]                     # dev @ [M, W^T], (chunk, 2K)
        projected_sq += (prod[:, :K] @ to_U).pow(2).sum(0)
        full = prod + class_terms[y]
        nearest = (mean_sq[None, :] - 2.0 * full[:, :K]).argmin(1)
        disagree += int((full[:, K:].argmax(1) != nearest).sum())
    # NC1 = tr(Sigma_W Sigma_B^+)/K and Sigma_B^+ = K U S^-2 U^T, so the K's cancel. When every
    # class mean coincides, Sigma_B = 0, its pseudo-inverse is 0 and so is NC1 by definition
    # (a degenerate case: NC2-of-means and NC3 are undefined, NaN, there).
    nc1 = float(((projected_sq / N) / S ** 2).sum()) if rank else 0.0

    Wc = W64 - W64.mean(0, keepdim=True)
    out = {
        "nc1": nc1,
        "nc2": simplex_etf_distance(Wc @ Wc.T),
        "nc3": simplex_etf_distance(Wc @ M_raw),
        "nc4": disagree / N,
        "nc2_means": simplex_etf_distance(M_raw.T @ M_raw),
        "nc3_papyan": _papyan_duality(W64, M_raw),
    }
    if b is not None:
        out["bias_gap"] = float(torch.linalg.vector_norm(W64 @ global_mean + b)) * scale
    return out


def nc_metrics(H, labels, W, b=None) -> dict[str, float]:
    """Neural collapse metrics of features ``H`` (N, d), labels (N,), classifier ``W`` (K, d), ``b`` (K,).

    Accepts NumPy arrays or torch tensors (CPU or CUDA; computed on H's device).
    Returns ``{"nc1", "nc2", "nc3", "nc4"}`` and ``"bias_gap"`` when ``b`` is given; see the
    module docstring for the exact definitions.

    Raises:
        ValueError: mismatched shapes, non-finite values, labels outside [0, K), a class with
            no sample.
    """
    H, labels, W, b = _check_inputs(H, labels, W, b)
    scale = _power_of_two_scale(H)
    counts, sums = _class_statistics(H, labels, W.shape[0], scale)
    return _metrics_from_statistics(H, labels, W, b, counts, sums, scale)


class NCMetricsAccumulator:
    """The streaming form of :func:`nc_metrics`: feed feature batches during one pass over a
    dataset, then call :meth:`compute`.

    NC1 needs the class means before the within-class scatter, and NC4 needs them before the
    nearest-mean rule, so both need a second look at the features. Rather than a second
    forward pass over the data, the batches are kept (on their own device, in their own
    dtype: N x d values) and :meth:`compute` runs exactly the code path of
    :func:`nc_metrics`, so the numbers are identical. Inputs are checked batch by batch.
    """

    def __init__(self, W, b=None) -> None:
        self.W = _as_tensor(W, "W")
        self.b = None if b is None else _as_tensor(b, "b")
        self._features: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def update(self, H_batch, labels_batch) -> None:
        H_batch, labels_batch, _, _ = _check_inputs(H_batch, labels_batch, self.W, None)
        _check_finite(H_batch, "H")
        self._features.append(H_batch)
        self._labels.append(labels_batch)

    @property
    def num_samples(self) -> int:
        return sum(h.shape[0] for h in self._features)

    def compute(self) -> dict[str, float]:
        if not self._features:
            raise ValueError("no features were added before compute()")
        H = torch.cat(self._features)
        labels = torch.cat(self._labels)
        return nc_metrics(H, labels, self.W, self.b)


# ---------------------------------------------------------------------------------------------
# Beyond NC1-NC4: what a trained network's last layer looks like, in quantities that can be
# compared across networks (whose feature spaces share no basis) and with the UFM's predictions.


def logit_margins(logits, labels) -> torch.Tensor:
    """Per-sample margins ``(z_y - max_{j != y} z_j, z_y - mean_{j != y} z_j)`` as a (N, 2) tensor.

    The second is the UFM's margin ``m``: at a collapsed optimum every wrong logit sits ``m``
    below the true one, and both margins coincide.
    """
    logits = _as_tensor(logits, "logits").double()
    labels = _as_tensor(labels, "labels").long().to(logits.device)
    K = logits.shape[1]
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    to_max = true - others.max(1).values
    to_mean = true - (logits.sum(1) - true) / (K - 1)
    return torch.stack([to_max, to_mean], dim=1)


def expected_calibration_error(logits, labels, bins: int = 15) -> float:
    """Expected calibration error of ``softmax(logits)``: the confidence-weighted gap between
    confidence and accuracy over ``bins`` equal-width confidence bins (Guo et al. 2017,
    arXiv:1706.04599). For an MSE-trained network the softmax of its outputs is used as for the
    other losses, which is a convention, not a probability model of that loss."""
    logits = _as_tensor(logits, "logits").double()
    labels = _as_tensor(labels, "labels").long().to(logits.device)
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    probs = torch.softmax(logits, dim=1)
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).double()
    which = torch.clamp((confidence * bins).long(), max=bins - 1)
    total = torch.zeros(bins, dtype=torch.float64, device=logits.device)
    gap = torch.zeros(bins, dtype=torch.float64, device=logits.device)
    total.index_add_(0, which, torch.ones_like(confidence))
    gap.index_add_(0, which, confidence - correct)
    return float(gap.abs().sum() / max(len(labels), 1))


def class_geometry(H, labels, W) -> dict[str, list[list[float]]]:
    """The last layer's shape as K x K Gram matrices, free of the feature space's basis:
    ``means`` = M^T M with M the centred class means (d x K), ``classifier`` = Wc Wc^T with Wc
    the centred classifier rows, and ``cross`` = Wc M. Two networks with different losses can
    be compared through these (:func:`gram_procrustes_distance`, :func:`gram_cka`)."""
    H, labels, W, _ = _check_inputs(H, labels, W, None)
    K = W.shape[0]
    counts, sums = _class_statistics(H, labels, K)
    if bool((counts == 0).any()):
        raise ValueError("every class needs at least one sample")
    means = sums / counts[:, None]
    M = (means - sums.sum(0) / counts.sum()).T
    Wc = W.double() - W.double().mean(0, keepdim=True)
    return {"means": (M.T @ M).tolist(), "classifier": (Wc @ Wc.T).tolist(), "cross": (Wc @ M).tolist()}


def _psd_sqrt(G: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(0.5 * (G + G.T))
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def gram_procrustes_distance(G_a, G_b) -> float:
    """Orthogonal Procrustes distance between two configurations of K points, from their Gram
    matrices alone: ``min_R || R A/||A|| - B/||B|| ||_F`` over orthogonal R, where
    ``A^T A = G_a`` and ``B^T B = G_b``. It equals ``sqrt(2 - 2 ||G_b^{1/2} G_a^{1/2}||_* /
    sqrt(tr G_a tr G_b))``, so the feature spaces (even of different dimension) never meet.
    0 means the same shape up to rotation and scale; the largest value is sqrt(2)."""
    A, B = np.asarray(G_a, np.float64), np.asarray(G_b, np.float64)
    if A.shape != B.shape or A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"need two square Gram matrices of one size, got {A.shape} and {B.shape}")
    scale = math.sqrt(max(np.trace(A), 0.0) * max(np.trace(B), 0.0))
    if scale == 0:
        raise ValueError("a Gram matrix with zero trace has no shape to compare")
    nuclear = np.linalg.svd(_psd_sqrt(B) @ _psd_sqrt(A), compute_uv=False).sum()
    return math.sqrt(max(2.0 - 2.0 * nuclear / scale, 0.0))


def gram_cka(G_a, G_b) -> float:
    """Linear CKA (Kornblith et al. 2019, arXiv:1905.00414) between two sets of K points given
    as Gram matrices over the points: ``tr(G_a G_b) / (||G_a||_F ||G_b||_F)``; 1 means equal up
    to rotation and scale."""
    A, B = np.asarray(G_a, np.float64), np.asarray(G_b, np.float64)
    if A.shape != B.shape:
        raise ValueError(f"need two Gram matrices of one size, got {A.shape} and {B.shape}")
    denom = np.linalg.norm(A) * np.linalg.norm(B)
    if denom == 0:
        raise ValueError("a zero Gram matrix has no shape to compare")
    return float(np.trace(A @ B) / denom)


def linear_probe_accuracy(train_H, train_labels, test_H, test_labels, *, l2: float = 1e-4,
                          max_iter: int = 300) -> float:
    """Test accuracy of one fixed probe on frozen features: multinomial logistic regression
    (cross entropy, L2 penalty ``l2`` on the weights) on standardised features, fitted by
    full-batch L-BFGS in float64. The same recipe for every network, so differences come from
    the features, not from each network's own trained classifier."""
    Xtr = _as_tensor(train_H, "train_H").double()
    ytr = _as_tensor(train_labels, "train_labels").long().to(Xtr.device)
    Xte = _as_tensor(test_H, "test_H").double().to(Xtr.device)
    yte = _as_tensor(test_labels, "test_labels").long().to(Xtr.device)
    if Xtr.dim() != 2 or Xte.dim() != 2 or Xtr.shape[1] != Xte.shape[1]:
        raise ValueError("train_H and test_H must be (N, d) with the same d")
    mean, std = Xtr.mean(0), Xtr.std(0).clamp_min(1e-12)
    Xtr, Xte = (Xtr - mean) / std, (Xte - mean) / std
    K = int(max(int(ytr.max()), int(yte.max()))) + 1
    Wp = torch.zeros(Xtr.shape[1], K, dtype=torch.float64, device=Xtr.device, requires_grad=True)
    bp = torch.zeros(K, dtype=torch.float64, device=Xtr.device, requires_grad=True)
    opt = torch.optim.LBFGS([Wp, bp], lr=1, max_iter=max_iter, history_size=20, tolerance_grad=1e-9,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(Xtr @ Wp + bp, ytr) + 0.5 * l2 * Wp.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((Xte @ Wp + bp).argmax(1) == yte).double().mean())


def nearest_class_mean_accuracy(train_H, train_labels, test_H, test_labels) -> float:
    """Test accuracy of the nearest-class-mean rule with the training class means (no classifier)."""
    H, labels = _as_tensor(train_H, "train_H"), _as_tensor(train_labels, "train_labels").long()
    K = int(labels.max()) + 1
    counts, sums = _class_statistics(H, labels.to(H.device), K)
    means = sums / counts.clamp_min(1)[:, None]
    X = _as_tensor(test_H, "test_H").double().to(H.device)
    y = _as_tensor(test_labels, "test_labels").long().to(H.device)
    d2 = (X * X).sum(1, keepdim=True) - 2 * X @ means.T + (means * means).sum(1)[None]
    return float((d2.argmin(1) == y).double().mean())


def simplex_etf(K: int, d: int | None = None) -> np.ndarray:
    """A simplex equiangular tight frame: K unit vectors in R^d (d >= K-1, default K) with pairwise
    inner products -1/(K-1), as rows. Built from the centred identity, so for d >= K it is the
    familiar ``sqrt(K/(K-1)) (I - 11^T/K)`` padded with zero columns; for d = K-1 it is expressed
    in an orthonormal basis of the centred subspace."""
    d = K if d is None else d
    if K < 2 or d < K - 1:
        raise ValueError(f"a simplex ETF of K={K} vectors needs K >= 2 and d >= K-1, got d={d}")
    centred = np.sqrt(K / (K - 1)) * (np.eye(K) - 1.0 / K)
    if d >= K:
        return np.hstack([centred, np.zeros((K, d - K))])
    # d = K-1: coordinates in an orthonormal basis of the subspace orthogonal to 1.
    basis = np.linalg.svd(np.eye(K) - 1.0 / K)[0][:, :K - 1]
    return centred @ basis


def textbook_nc_metrics(H, labels, W, b=None, *, rcond: float = 1e-10) -> dict[str, float]:
    """The reference computation of NC1-NC4, straight from the definitions: d x d covariance
    matrices in float64 and a pseudo-inverse (``rcond`` relative cut-off). O(N d^2 + d^3): use it
    to check :func:`nc_metrics`, not on large features. Same conventions as the module docstring."""
    H = np.asarray(H, dtype=np.float64)
    labels = np.asarray(labels)
    W = np.asarray(W, dtype=np.float64)
    K = W.shape[0]
    mu_G = H.mean(0)
    means = np.stack([H[labels == k].mean(0) for k in range(K)])
    centred = H - means[labels]
    Sw = centred.T @ centred / len(H)
    M = means - mu_G
    Sb = M.T @ M / K
    nc1 = float(np.trace(Sw @ np.linalg.pinv(Sb, rcond=rcond, hermitian=True)) / K)
    etf = (np.eye(K) - 1 / K) / np.sqrt(K - 1)
    Wc = W - W.mean(0)

    def dist(G):
        return float(np.linalg.norm(G / np.linalg.norm(G) - etf))

    out = {"nc1": nc1, "nc2": dist(Wc @ Wc.T), "nc3": dist(Wc @ M.T), "nc2_means": dist(M @ M.T),
           "nc3_papyan": float(np.linalg.norm(W.T / np.linalg.norm(W) - M.T / np.linalg.norm(M)))}
    logits = H @ W.T + (0.0 if b is None else np.asarray(b, dtype=np.float64))
    nearest = ((H ** 2).sum(1)[:, None] - 2 * H @ means.T + (means ** 2).sum(1)[None]).argmin(1)
    out["nc4"] = float(np.mean(logits.argmax(1) != nearest))
    if b is not None:
        out["bias_gap"] = float(np.linalg.norm(W @ mu_G + np.asarray(b, dtype=np.float64)))
    return out


def first_below(steps, values, threshold: float) -> int | None:
    """The first of ``steps`` (integers) at which ``values`` is below ``threshold``; None if never."""
    if len(steps) != len(values):
        raise ValueError(f"{len(steps)} steps for {len(values)} values")
    hit = np.flatnonzero(np.asarray(values, dtype=np.float64) < threshold)
    return None if len(hit) == 0 else int(steps[int(hit[0])])


def random_nc_baseline(K: int, d: int, *, trials: int = 400, seed: int = 0) -> dict[str, tuple[float, float]]:
    """NC2 and NC3 of *random* geometry at the same K and d: Gaussian classifier rows and Gaussian
    class means, independent. ``(mean, standard deviation)`` over ``trials`` draws for ``nc2``,
    ``nc2_means``, ``nc3`` and ``nc3_papyan``. A trained network whose NC2 is not below this
    value has a classifier no closer to a simplex ETF than a random one."""
    if K < 2 or d < 1 or trials < 2:
        raise ValueError(f"need K >= 2, d >= 1 and trials >= 2, got K={K}, d={d}, trials={trials}")
    g = torch.Generator().manual_seed(seed)
    values: dict[str, list[float]] = {"nc2": [], "nc2_means": [], "nc3": [], "nc3_papyan": []}
    for _ in range(trials):
        W = torch.randn(K, d, generator=g, dtype=torch.float64)
        means = torch.randn(K, d, generator=g, dtype=torch.float64)
        M = (means - means.mean(0)).T
        Wc = W - W.mean(0)
        values["nc2"].append(simplex_etf_distance(Wc @ Wc.T))
        values["nc2_means"].append(simplex_etf_distance(M.T @ M))
        values["nc3"].append(simplex_etf_distance(Wc @ M))
        values["nc3_papyan"].append(_papyan_duality(W, M))
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1))) for k, v in values.items()}
