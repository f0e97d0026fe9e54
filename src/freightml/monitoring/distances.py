"""The distances drift is judged by, each computed for many (segment, feature) pairs at
once over (pairs, bins) count arrays: PSI, the Jensen-Shannon distance and a binned
Wasserstein-1 distance (freightml.monitoring.drift decides with them)."""

from __future__ import annotations

import numpy as np

EPSILON = 1e-4  # share given to an empty bin in PSI, so ln(q / p) stays finite


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros(counts.shape), where=total > 0)


def psi(reference: np.ndarray, current: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """Population stability index per row of two (pairs, bins) count arrays:
    ``sum((q - p) * ln(q / p))`` over the shares, an empty bin's share raised to ``epsilon``."""
    p = np.maximum(_shares(np.asarray(reference, np.float64)), epsilon)
    q = np.maximum(_shares(np.asarray(current, np.float64)), epsilon)
    return ((q - p) * np.log(q / p)).sum(axis=-1)


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2, in [0, 1]) per row of two (pairs, bins) count arrays."""
    p = _shares(np.asarray(reference, np.float64))
    q = _shares(np.asarray(current, np.float64))
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        ratio = np.divide(a, m, out=np.ones_like(a), where=a > 0)
        return (a * np.log2(ratio)).sum(axis=-1)

    return np.sqrt(np.maximum((kl(p) + kl(q)) / 2, 0.0))


def binned_wasserstein(
    ref_counts: np.ndarray,
    ref_positions: np.ndarray,
    cur_counts: np.ndarray,
    cur_positions: np.ndarray,
) -> np.ndarray:
    """Wasserstein-1 distance per row between two binned distributions.

    Each side is its bin counts placed at its own bin representatives (the mean of its
    values in the bin), so the result is the exact W1 of those two discrete distributions:
    the integral of ``|F - G|`` over the sorted union of the positions. Against the raw
    values the error is at most the within-bin spread, and a shift inside a bin (also an
    outer, open one) still shows because the current side keeps its own bin means.
    """
    p = _shares(np.asarray(ref_counts, np.float64))
    q = _shares(np.asarray(cur_counts, np.float64))
    pos = np.concatenate([ref_positions, cur_positions], axis=-1)
    mass = np.concatenate([p, -q], axis=-1)
    order = np.argsort(pos, axis=-1, kind="stable")
    pos = np.take_along_axis(pos, order, axis=-1)
    diff = np.cumsum(np.take_along_axis(mass, order, axis=-1), axis=-1)
    return (np.abs(diff[..., :-1]) * np.diff(pos, axis=-1)).sum(axis=-1)
