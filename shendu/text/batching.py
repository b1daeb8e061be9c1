"""Numericalisation and language-model batching.

``batchify`` cuts one contiguous token stream into ``batch_size`` equal streams (columns),
dropping the tail that does not fill a row; ``LMBatches`` walks those streams in windows of
``bptt`` steps, each input window paired with the same window shifted by one token.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .. import creation
from ..tensor import Tensor
from .vocab import Vocab

__all__ = ["numericalize", "batchify", "LMBatches", "lm_batches"]


def numericalize(text: str | Iterable[str], vocab: Vocab,
                 tokenizer: Callable[[str], list[str]] | None = None,
                 add_bos: bool = False, add_eos: bool = False) -> Tensor:
    """Token indices of ``text`` as an int64 tensor: a string is tokenized with
    ``tokenizer`` first, a list of tokens is used as is; ``add_bos``/``add_eos`` wrap it in
    ``<bos>``/``<eos>``.

    >>> from shendu.text import Vocab, numericalize, CharTokenizer
    >>> v = Vocab(["<pad>", "<unk>", "<bos>", "<eos>", "a", "b"])
    >>> numericalize("abc", v, CharTokenizer(), add_eos=True).tolist()
    [4, 5, 1, 3]
    """
    if isinstance(text, str):
        if tokenizer is None:
            raise ValueError("numericalize: got a str but no tokenizer to split it")
        text = tokenizer(text)
    ids = vocab(text)
    for flag, idx, tok in ((add_bos, vocab.bos_index, "<bos>"),
                           (add_eos, vocab.eos_index, "<eos>")):
        if flag and idx is None:
            raise ValueError(f"numericalize: the vocabulary has no {tok} token")
    ids = ([vocab.bos_index] if add_bos else []) + ids + ([vocab.eos_index] if add_eos else [])
    return creation.tensor(np.asarray(ids, dtype=np.int64))


def _as_ids(ids, op: str) -> np.ndarray:
    arr = np.asarray(ids.tolist() if isinstance(ids, Tensor) else ids)
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{op}: expected a 1-D stream of integer token ids, got {arr.dtype} "
                        f"array of shape {arr.shape}")
    return arr.astype(np.int64)


def batchify(ids, batch_size: int) -> Tensor:
    """Reshape a 1-D stream into (T, batch_size): column b is the b-th contiguous slice of
    the stream, T = len(ids) // batch_size (the remainder is dropped).

    >>> from shendu.text import batchify
    >>> batchify(list(range(7)), 2).tolist()
    [[0, 3], [1, 4], [2, 5]]
    """
    arr = _as_ids(ids, "batchify")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batchify: batch_size must be a positive integer, got {batch_size!r}")
    T = arr.size // batch_size
    if T == 0:
        raise ValueError(f"batchify: a stream of {arr.size} tokens is too short for "
                         f"batch_size={batch_size}")
    return creation.tensor(np.ascontiguousarray(arr[:T * batch_size].reshape(batch_size, T).T))


class LMBatches:
    """Language-model batches over a token stream: ``(inputs, targets)`` pairs of shape
    (bptt, batch_size) (or (batch_size, bptt) with ``batch_first``), targets being the
    inputs shifted by one token. The last window may be shorter. Consecutive batches
    continue each stream, so hidden states can be carried over (truncated BPTT).

    Args:
        ids: the token stream (list, array or 1-D int tensor).
        batch_size: number of parallel streams.
        bptt: window length.
        batch_first: put the batch dimension first.

    >>> from shendu.text import LMBatches
    >>> b = LMBatches(list(range(10)), batch_size=2, bptt=2)
    >>> len(b)
    2
    >>> [(x.tolist(), y.tolist()) for x, y in b][0]
    ([[0, 5], [1, 6]], [[1, 6], [2, 7]])
    """

    def __init__(self, ids, batch_size: int, bptt: int, batch_first: bool = False) -> None:
        if isinstance(bptt, bool) or not isinstance(bptt, int) or bptt < 1:
            raise ValueError(f"LMBatches: bptt must be a positive integer, got {bptt!r}")
        self.data = batchify(ids, batch_size)
        if self.data.shape[0] < 2:
            raise ValueError(f"LMBatches: each of the {batch_size} streams has "
                             f"{self.data.shape[0]} token(s); need at least 2 (an input and "
                             "its target)")
        self.batch_size, self.bptt, self.batch_first = batch_size, bptt, batch_first

    def __len__(self) -> int:
        return -(-(self.data.shape[0] - 1) // self.bptt)

    def __iter__(self):
        T = self.data.shape[0]
        for i in range(0, T - 1, self.bptt):
            n = min(self.bptt, T - 1 - i)
            x, y = self.data[i:i + n], self.data[i + 1:i + 1 + n]
            yield (x.t(), y.t()) if self.batch_first else (x, y)


def lm_batches(ids, batch_size: int, bptt: int, batch_first: bool = False) -> LMBatches:
    """Shorthand for ``LMBatches(ids, batch_size, bptt, batch_first)``."""
    return LMBatches(ids, batch_size, bptt, batch_first)
