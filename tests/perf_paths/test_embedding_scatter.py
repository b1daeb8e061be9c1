"""Embedding backward: the sorted, round-by-round row scatter against ``np.add.at``."""
import numpy as np
import pytest
from op_helper import torch
from tolerance import assert_sums_close

import shendu as sd
from shendu.ops.nn_ops import _MAX_ROUNDS, row_scatter_add

rng = np.random.default_rng(3)


@pytest.mark.parametrize("n, vocab", [(1120, 10_000), (200, 7), (40, 1), (1, 5), (0, 4),
                                      (3 * _MAX_ROUNDS, 2)])
def test_bit_identical_to_add_at(n, vocab):
    idx = rng.integers(0, vocab, n)
    rows = rng.standard_normal((n, 6)).astype(np.float32)
    want = np.zeros((vocab, 6), np.float32)
    np.add.at(want, idx, rows)
    got = row_scatter_add(np, (vocab, 6), idx, rows)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_unique_ids_and_every_round_count():
    for repeats in range(1, _MAX_ROUNDS + 2):  # up to one past the add.at fallback
        idx = np.repeat(np.arange(5), repeats)
        rng.shuffle(idx)
        rows = rng.standard_normal((idx.size, 3))
        want = np.zeros((9, 3))
        np.add.at(want, idx, rows)
        np.testing.assert_array_equal(row_scatter_add(np, (9, 3), idx, rows), want)


def test_embedding_gradient_with_padding_idx():
    emb = sd.nn.Embedding(12, 4, padding_idx=3)
    idx = rng.integers(0, 12, (5, 7))
    g = rng.standard_normal((5, 7, 4)).astype(np.float32)
    emb(sd.tensor(idx)).backward(sd.tensor(g))
    want = np.zeros((12, 4), np.float32)
    np.add.at(want, idx.ravel(), g.reshape(-1, 4))
    want[3] = 0
    np.testing.assert_array_equal(emb.weight.grad.numpy(), want)


@pytest.mark.skipif(torch is None, reason="PyTorch not installed")
def test_matches_torch():
    idx = rng.integers(0, 50, (9, 13))
    w = rng.standard_normal((50, 8)).astype(np.float32)
    g = rng.standard_normal((9, 13, 8)).astype(np.float32)
    ws = sd.tensor(w, requires_grad=True)
    sd.nn.functional.embedding(sd.tensor(idx), ws).backward(sd.tensor(g))
    wt = torch.from_numpy(w).requires_grad_(True)
    torch.nn.functional.embedding(torch.from_numpy(idx), wt).backward(torch.from_numpy(g))
    # each row sums the gradients of its repeats, in PyTorch's order or ours
    count = np.bincount(idx.ravel(), minlength=50).max()
    scale = np.zeros((50, 8))
    np.add.at(scale, idx.ravel(), np.abs(g.reshape(-1, 8)))
    assert_sums_close(ws.grad.numpy(), wt.grad.numpy(), count, scale)
