"""Arithmetic behind ``random_split`` and ``stratified_split``: turning fractions into
whole sample counts."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _check_fractions(fn: str, fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if f.size == 0 or np.any(f < 0) or not np.all(np.isfinite(f)):
        raise ValueError(f"{fn}: fractions must be non-negative finite numbers, got "
                         f"{list(fractions)}")
    if not math.isclose(float(f.sum()), 1.0, abs_tol=1e-6):
        raise ValueError(f"{fn}: fractions must sum to 1, got {list(fractions)} "
                         f"(sum {f.sum():g})")
    return f


def split_lengths(fn: str, n: int, lengths: Sequence[float]) -> list[int]:
    """Whole part sizes from ``lengths``: counts summing to ``n``, or fractions of ``n``.

    Fractions are floored and the leftover samples given one each to the first parts,
    the rule PyTorch's ``random_split`` uses.
    """
    lengths = list(lengths)
    if all(isinstance(x, (int, np.integer)) for x in lengths):
        if any(x < 0 for x in lengths) or sum(lengths) != n:
            raise ValueError(f"{fn}: lengths {lengths} must be non-negative and sum to the "
                             f"dataset's length {n} (or be fractions summing to 1)")
        return [int(x) for x in lengths]
    f = _check_fractions(fn, lengths)
    sizes = [math.floor(n * x) for x in f]
    for i in range(n - sum(sizes)):
        sizes[i % len(sizes)] += 1
    return sizes


def largest_remainder(n: int, f: np.ndarray) -> np.ndarray:
    """Whole counts summing to ``n`` that are as close as possible to ``n * f``."""
    ideal = n * f
    counts = np.floor(ideal).astype(np.int64)
    short = n - int(counts.sum())
    if short:
        counts[np.argsort(-(ideal - counts), kind="stable")[:short]] += 1
    return counts


def class_counts(per_class: np.ndarray, f: np.ndarray) -> np.ndarray:
    """A (classes, parts) table of counts: each row sums to its class size, each column to
    the part's share of the total, each cell within one of its ideal ``n_c * f_k``."""
    ideal = per_class[:, None] * f[None, :]
    table = np.floor(ideal).astype(np.int64)
    need = largest_remainder(int(per_class.sum()), f) - table.sum(axis=0)
    left = per_class - table.sum(axis=1)
    # Hand out the leftover samples one at a time, biggest fractional part first, to a
    # part that still needs samples; that keeps both the rows and the columns exact.
    frac = ideal - table
    for c, k in zip(*np.unravel_index(np.argsort(-frac, axis=None, kind="stable"),
                                      frac.shape)):
        if left[c] and need[k] and frac[c, k] > 0:
            table[c, k] += 1
            left[c] -= 1
            need[k] -= 1
    for c in np.flatnonzero(left):  # whatever is left goes wherever columns still need it
        for k in np.flatnonzero(need):
            take = min(left[c], need[k])
            table[c, k] += take
            left[c] -= take
            need[k] -= take
    return table


def stratified_indices(labels: np.ndarray, fractions: Sequence[float],
                       rng: np.random.Generator) -> list[np.ndarray]:
    f = _check_fractions("stratified_split", fractions)
    classes, inverse = np.unique(labels, return_inverse=True)
    table = class_counts(np.bincount(inverse, minlength=len(classes)), f)
    parts: list[list[np.ndarray]] = [[] for _ in f]
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(inverse == c))
        bounds = np.cumsum(np.concatenate([[0], table[c]]))
        for k in range(len(f)):
            parts[k].append(members[bounds[k]:bounds[k + 1]])
    return [rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts]
