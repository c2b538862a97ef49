"""FPD and KPD (arXiv:2211.10295) with jetnet's sampling, from multiplicities instead of copies.

``jetnet.evaluation.fpd``/``kpd`` (what the CaloChallenge evaluator calls) normalise both samples
by the reference's per-column maximum of ``|x|``, then draw rows *with replacement*:

- FPD: one ``default_rng(seed)`` for the whole call; for each of ``num_points`` batch sizes
  ``N_k = int32(1 / linspace(1/min, 1/max, num_points))`` it draws ``num_batches`` pairs of index
  sets (real, then generated), computes the Fréchet distance of the two Gaussian fits and
  averages; FPD is the intercept at ``1/N = 0`` of a least-squares line (parameters bounded
  below by 0), its error the fit's standard error.
- KPD: batch ``i`` draws from ``default_rng(seed + 1000 i)``; the unbiased MMD² with the kernel
  ``(x.y / d + 1)^4``; KPD is the median over batches, its error half the 16-84 % spread.

This module makes the same draws but never materialises a drawn batch: a batch is the vector of
multiplicities ``w`` of the sample's rows (``bincount`` of the draw), and every statistic is a
weighted sum over the *distinct* rows. A batch of 50,000 draws from 10,000 showers costs a
10,000-row product instead of a 50,000-row one, and the trace of ``sqrtm(S1 S2)`` comes from a
singular value or symmetric eigenvalue solve instead of ``scipy.linalg.sqrtm``. The results equal jetnet's to float rounding (the
test compares them).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["fpd", "kpd", "normalise"]


def normalise(real: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both samples divided by the reference's per-column maximum of ``|x|`` (columns that are all
    zero are left alone), as jetnet's ``normalise=True``."""
    scale = np.max(np.abs(real), axis=0)
    scale[scale == 0] = 1
    return real / scale, generated / scale


def _check(real: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    real, generated = np.asarray(real, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(f"feature arrays must be [N, d] with the same d, got {list(real.shape)} and "
                         f"{list(generated.shape)}")
    if len(real) < 2 or len(generated) < 2:
        raise ValueError(f"need at least 2 rows per sample, got {len(real)} and {len(generated)}")
    return real, generated


@functools.lru_cache(maxsize=None)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    # Decompositions of a few hundred rows run 10-100x slower on several BLAS threads when the
    # cores are shared (threads spin waiting for each other); large products keep every thread.
    return _blas_controller().limit(limits=1, user_api="blas")


def _gaussian(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Mean and a factor Y of the unbiased covariance (S = Y^T Y) of the batch that holds row i of x
    # w[i] times: one row of Y per distinct row drawn. x is centred on the sample mean beforehand.
    keep = w > 0
    x, w = x[keep], w[keep].astype(np.float64)
    n = w.sum()
    mu = w @ x / n
    return mu, (x - mu) * np.sqrt(w / (n - 1))[:, None]


def _trace_sqrt(y1: np.ndarray, y2: np.ndarray) -> float:
    # Tr sqrt(S1 S2) for S = Y^T Y. The eigenvalues of S1 S2 are the squared singular values of
    # Y1 Y2^T, so the trace is its nuclear norm: exact for singular covariances, and cheap when a
    # batch has fewer distinct rows than features. Otherwise, with S1 = L L^T, S1 S2 is similar to
    # the symmetric L^T S2 L: one Cholesky and one eigenvalue solve, ~10x cheaper than sqrtm.
    d = y1.shape[1]
    if min(len(y1), len(y2)) <= d:
        with _one_blas_thread():
            return float(np.linalg.svd(y1 @ y2.T, compute_uv=False).sum())
    s1, s2 = y1.T @ y1, y2.T @ y2
    with _one_blas_thread():
        return _trace_sqrt_square(s1, s2)


def _trace_sqrt_square(s1: np.ndarray, s2: np.ndarray) -> float:
    try:
        half = np.linalg.cholesky(s1)
        eig = np.linalg.eigvalsh(half.T @ s2 @ half)
    except np.linalg.LinAlgError:  # singular: S1^1/2 from an eigendecomposition
        w, v = np.linalg.eigh(s1)
        half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        eig = np.linalg.eigvalsh(half @ s2 @ half)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())  # rounding makes tiny negative ones: clipped


def _frechet(mu1, y1, mu2, y2) -> float:
    # |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrt(S1 S2))
    diff = mu1 - mu2
    return float(diff @ diff + (y1 * y1).sum() + (y2 * y2).sum() - 2 * _trace_sqrt(y1, y2))


def fpd(real: np.ndarray, generated: np.ndarray, *, min_samples: int = 20_000, max_samples: int = 50_000,
        num_batches: int = 20, num_points: int = 10, normalise_features: bool = True,
        seed: int = 42) -> tuple[float, float]:
    """Fréchet physics distance and its error, as ``jetnet.evaluation.fpd`` with the same arguments.

    Args:
        real, generated: ``[N, d]`` feature arrays (the reference first: it sets the scale).
        min_samples, max_samples, num_points: the batch sizes, regular in ``1/N``.
        num_batches: batches averaged per batch size.
        normalise_features: divide by the reference's per-column ``max |x|`` first.
        seed: the seed of the one generator of every draw.

    Returns:
        ``(value, error)``; the CaloChallenge prints both x1e3.
    """
    from scipy.optimize import curve_fit

    x, y = _check(real, generated)
    if normalise_features:
        x, y = normalise(x, y)
    # Shift both samples by one vector (the distance is invariant) so that the one-pass covariance
    # works on centred numbers.
    shift = x.mean(axis=0)
    x, y = x - shift, y - shift
    sizes = (1 / np.linspace(1.0 / min_samples, 1.0 / max_samples, num_points)).astype("int32")
    rng = np.random.default_rng(seed)
    means = []
    for size in sizes:
        values = []
        for _ in range(num_batches):
            w1 = np.bincount(rng.choice(len(x), size=size), minlength=len(x))
            w2 = np.bincount(rng.choice(len(y), size=size), minlength=len(y))
            values.append(_frechet(*_gaussian(x, w1), *_gaussian(y, w2)))
        means.append(np.mean(values))
    params, covs = curve_fit(lambda t, a, b: a + b * t, 1 / sizes, means, bounds=([0, 0], [np.inf, np.inf]))
    return float(params[0]), float(np.sqrt(np.diag(covs)[0]))


def _kernel(a: np.ndarray, b: np.ndarray, d: int) -> np.ndarray:
    k = a @ b.T
    k /= d
    k += 1
    k *= k
    k *= k
    return k


def _kernel_sum(a: np.ndarray, wa: np.ndarray, b: np.ndarray, wb: np.ndarray, d: int, block: int = 4096) -> float:
    # sum_ij wa_i wb_j (a_i . b_j / d + 1)^4 over distinct rows, in row blocks (bounded memory).
    return float(sum(wa[lo:lo + block] @ (_kernel(a[lo:lo + block], b, d) @ wb) for lo in range(0, len(a), block)))


def _kernel_sum_sym(a: np.ndarray, wa: np.ndarray, d: int, block: int = 4096) -> float:
    # The same for b = a: the upper triangle of blocks only, off-diagonal blocks counted twice.
    total = 0.0
    for lo in range(0, len(a), block):
        hi = min(lo + block, len(a))
        k = _kernel(a[lo:hi], a[lo:], d)
        w = wa[lo:hi]
        total += float(w @ (k[:, :hi - lo] @ w)) + 2 * float(w @ (k[:, hi - lo:] @ wa[hi:]))
    return total


def _mmd(x: np.ndarray, wx: np.ndarray, y: np.ndarray, wy: np.ndarray) -> float:
    # jetnet's unbiased estimate: (sum K_XX - tr K_XX) / (m (m-1)) + (...)_YY - 2 mean K_XY, where a
    # row drawn w times contributes w^2 entries of the sum and w entries of the trace.
    d = x.shape[1]
    kx, ky = x[wx > 0], y[wy > 0]
    wx, wy = wx[wx > 0].astype(np.float64), wy[wy > 0].astype(np.float64)
    m, n = wx.sum(), wy.sum()
    diag_x = ((np.einsum("ij,ij->i", kx, kx) / d + 1) ** 4) @ wx
    diag_y = ((np.einsum("ij,ij->i", ky, ky) / d + 1) ** 4) @ wy
    xx = (_kernel_sum_sym(kx, wx, d) - diag_x) / (m * (m - 1))
    yy = (_kernel_sum_sym(ky, wy, d) - diag_y) / (n * (n - 1))
    return xx + yy - 2 * _kernel_sum(kx, wx, ky, wy, d) / (m * n)


def kpd(real: np.ndarray, generated: np.ndarray, *, num_batches: int = 10, batch_size: int = 5_000,
        normalise_features: bool = True, seed: int = 42) -> tuple[float, float]:
    """Kernel physics distance and its error, as ``jetnet.evaluation.kpd`` (serial path).

    Returns:
        ``(median, half the 16.275-83.725 % inter-quantile range)`` over the batches.
    """
    from scipy.stats import iqr

    x, y = _check(real, generated)
    if normalise_features:
        x, y = normalise(x, y)
    values = []
    for i in range(num_batches):
        rng = np.random.default_rng(seed + i * 1000)
        wx = np.bincount(rng.choice(len(x), size=batch_size), minlength=len(x))
        wy = np.bincount(rng.choice(len(y), size=batch_size), minlength=len(y))
        values.append(_mmd(x, wx, y, wy))
    return float(np.median(values)), float(iqr(values, rng=(16.275, 83.725)) / 2)
