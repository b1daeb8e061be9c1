"""Variable-length sequences for the recurrent layers: ``pad_sequence``,
``pack_padded_sequence``, ``pad_packed_sequence``, ``pack_sequence``, ``unpad_sequence``,
``unpack_sequence`` and ``PackedSequence``, with PyTorch's names and semantics.

A ``PackedSequence`` stores the time steps of a batch sorted by decreasing length one
after another: ``data`` holds, for each step ``t``, the rows of the ``batch_sizes[t]``
sequences still running. Packing and unpacking are gathers, so gradients flow through both.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ... import creation
from ...backend import get_array_module
from ...ops.movement import cat, stack
from ...ops.selection import index_select
from ...tensor import Tensor

__all__ = ["PackedSequence", "pad_sequence", "pack_padded_sequence", "pad_packed_sequence",
           "pack_sequence", "unpad_sequence", "unpack_sequence"]


class PackedSequence(NamedTuple):
    """A packed batch of variable-length sequences (build it with ``pack_padded_sequence``
    or ``pack_sequence``, never by hand).

    Fields: ``data`` (sum of lengths, *), ``batch_sizes`` (int64, one entry per time step),
    ``sorted_indices`` and ``unsorted_indices`` (int64 permutations, or None when the
    batch was already sorted by decreasing length).

    >>> import shendu as sd
    >>> from shendu.nn.utils.rnn import pack_sequence
    >>> p = pack_sequence([sd.tensor([1., 2., 3.]), sd.tensor([4., 5.])])
    >>> p.data.tolist(), p.batch_sizes.tolist()
    ([1.0, 4.0, 2.0, 5.0, 3.0], [2, 2, 1])
    """

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None

    def to(self, *args, **kwargs) -> PackedSequence:
        """Move or cast ``data`` (the index tensors stay on the CPU as in PyTorch)."""
        return self._replace(data=self.data.to(*args, **kwargs))

    def cpu(self) -> PackedSequence:
        return self.to("cpu")

    def double(self) -> PackedSequence:
        return self._replace(data=self.data.double())

    def float(self) -> PackedSequence:
        return self._replace(data=self.data.float())

    @property
    def is_cuda(self) -> bool:
        return getattr(self.data, "is_cuda", False)

    def lengths(self) -> np.ndarray:
        """Length of each sequence, in the caller's (unsorted) order, as a NumPy array."""
        bs = self.batch_sizes.numpy()
        lens = (bs[None, :] > np.arange(int(bs[0]))[:, None]).sum(1)
        if self.unsorted_indices is not None:
            lens = lens[self.unsorted_indices.numpy()]
        return lens


def _int_array(x, what: str, op: str) -> np.ndarray:
    arr = np.asarray(x.tolist() if isinstance(x, Tensor) else x)
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{op}: {what} must be a 1-D sequence of integers, got "
                        f"{arr.dtype} array of shape {arr.shape}")
    return arr.astype(np.int64)


def _long(arr: np.ndarray) -> Tensor:
    return creation.tensor(np.ascontiguousarray(arr, dtype=np.int64))


def _take(x: Tensor, dim: int, idx: np.ndarray) -> Tensor:
    """Differentiable gather along ``dim`` with a host index moved to ``x``'s device."""
    xp = get_array_module(x.data)
    return index_select(x, dim, creation.tensor(xp.asarray(idx), device=x.device)
                        if xp is not np else _long(idx))


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False,
                 padding_value: float = 0.0, padding_side: str = "right") -> Tensor:
    """Stack tensors of shape (L_i, *) into one padded tensor (T, B, *), or (B, T, *) with
    ``batch_first``, where T is the longest length; short ones are filled with
    ``padding_value`` on the right (or the left with ``padding_side='left'``).

    >>> import shendu as sd
    >>> from shendu.nn.utils.rnn import pad_sequence
    >>> pad_sequence([sd.tensor([1, 2, 3]), sd.tensor([4])], batch_first=True).tolist()
    [[1, 2, 3], [4, 0, 0]]
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got "
                         f"{padding_side!r}")
    if isinstance(sequences, Tensor):
        sequences = list(sequences.unbind(0))
    sequences = list(sequences)
    if not sequences:
        raise ValueError("pad_sequence: received an empty list of sequences")
    tail = sequences[0].shape[1:]
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence: sequence {i} is a {type(s).__name__}, expected "
                            "a Tensor")
        if s.ndim == 0 or s.shape[1:] != tail:
            raise ValueError(f"pad_sequence: every sequence must have shape (L, *{tail}); "
                             f"sequence {i} has shape {s.shape}")
    total = max(s.shape[0] for s in sequences)
    rows = []
    for s in sequences:
        n = total - s.shape[0]
        if n:
            pad = creation.full((n, *tail), padding_value, dtype=s.dtype, device=s.device)
            s = cat([s, pad] if padding_side == "right" else [pad, s], 0)
        rows.append(s)
    return stack(rows, 0 if batch_first else 1)


def _batch_sizes(lengths: np.ndarray) -> np.ndarray:
    # batch_sizes[t] = number of sequences longer than t
    t = np.arange(int(lengths.max()))
    return (lengths[None, :] > t[:, None]).sum(1).astype(np.int64)


def _packed_positions(batch_sizes: np.ndarray, n: int) -> np.ndarray:
    """For each (t, b) of a padded (T, n) grid: its row in ``data``, or -1 for padding."""
    pos = np.full((len(batch_sizes), n), -1, dtype=np.int64)
    offset = 0
    for t, b in enumerate(batch_sizes):
        pos[t, :b] = np.arange(offset, offset + b)
        offset += b
    return pos


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, B, *) (or (B, T, *) with ``batch_first``) whose sequence b
    has ``lengths[b]`` valid steps. With ``enforce_sorted=False`` the batch may be in any
    order: it is sorted internally and ``unsorted_indices`` restores the caller's order.

    >>> import shendu as sd
    >>> from shendu.nn.utils.rnn import pack_padded_sequence
    >>> x = sd.tensor([[1, 2, 0], [3, 4, 5]])
    >>> p = pack_padded_sequence(x, [2, 3], batch_first=True, enforce_sorted=False)
    >>> p.data.tolist(), p.batch_sizes.tolist(), p.sorted_indices.tolist()
    ([3, 1, 4, 2, 5], [2, 2, 1], [1, 0])
    """
    op = "pack_padded_sequence"
    lengths = _int_array(lengths, "lengths", op)
    if input.ndim < 2:
        raise ValueError(f"{op}: input must be at least 2-D (T, B, *), got shape {input.shape}")
    x = input.transpose(0, 1) if batch_first else input
    T, B = x.shape[0], x.shape[1]
    if lengths.shape[0] != B:
        raise ValueError(f"{op}: expected {B} lengths (one per sequence in the batch of input "
                         f"shape {input.shape}), got {lengths.shape[0]}")
    if B and lengths.min() <= 0:
        raise RuntimeError(f"{op}: every length must be positive (empty sequences cannot be "
                           f"packed), got lengths {lengths.tolist()}")
    if B and lengths.max() > T:
        raise ValueError(f"{op}: a length of {lengths.max()} exceeds the {T} time steps of "
                         f"input of shape {input.shape}")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeError(f"{op}: `lengths` array must be sorted in decreasing order "
                               f"when `enforce_sorted` is True, got {lengths.tolist()}; pass "
                               "enforce_sorted=False to sort it internally")
        order = None
    else:
        order = np.argsort(-lengths, kind="stable")
        lengths = lengths[order]
    bs = _batch_sizes(lengths)
    pos = _packed_positions(bs, B)
    cols = np.arange(B) if order is None else order
    # flat index into x reshaped (T*B, *) for every packed row, in packed order
    flat = np.empty(int(bs.sum()), dtype=np.int64)
    for t in range(len(bs)):
        flat[pos[t, :bs[t]]] = t * B + cols[:bs[t]]
    data = _take(x.reshape(T * B, *x.shape[2:]), 0, flat)
    if order is None:
        return PackedSequence(data, _long(bs), None, None)
    return PackedSequence(data, _long(bs), _long(order), _long(np.argsort(order)))


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0, total_length: int | None = None):
    """Undo ``pack_padded_sequence``: returns ``(padded, lengths)`` with padded (T, B, *)
    (or (B, T, *)) in the caller's original batch order, T = ``total_length`` if given,
    and ``lengths`` an int64 tensor.

    >>> import shendu as sd
    >>> from shendu.nn.utils.rnn import pack_sequence, pad_packed_sequence
    >>> p = pack_sequence([sd.tensor([1, 2]), sd.tensor([3, 4, 5])], enforce_sorted=False)
    >>> x, lens = pad_packed_sequence(p, batch_first=True, padding_value=-1)
    >>> x.tolist(), lens.tolist()
    ([[1, 2, -1], [3, 4, 5]], [2, 3])
    """
    op = "pad_packed_sequence"
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{op}: expected a PackedSequence, got {type(sequence).__name__}")
    data, bs = sequence.data, sequence.batch_sizes.numpy().astype(np.int64)
    T, B = len(bs), int(bs[0])
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"{op}: expected total_length to be at least the length of the "
                             f"longest sequence ({T}), got {total_length}")
        T = total_length
    pos = np.full((T, B), data.shape[0], dtype=np.int64)  # data.shape[0] -> padding row
    p = _packed_positions(bs, B)
    pos[:len(bs)][p >= 0] = p[p >= 0]
    if sequence.unsorted_indices is not None:
        pos = pos[:, sequence.unsorted_indices.numpy()]
    pad = creation.full((1, *data.shape[1:]), padding_value, dtype=data.dtype,
                        device=data.device)
    out = _take(cat([data, pad], 0), 0, pos.reshape(-1)).reshape(T, B, *data.shape[1:])
    return (out.transpose(0, 1) if batch_first else out), _long(sequence.lengths())


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of tensors (L_i, *) directly (``pad_sequence`` then
    ``pack_padded_sequence``).

    >>> import shendu as sd
    >>> from shendu.nn.utils.rnn import pack_sequence
    >>> pack_sequence([sd.tensor([1]), sd.tensor([2, 3])], enforce_sorted=False).data.tolist()
    [2, 1, 3]
    """
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths,
                                enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list[Tensor]:
    """Split a padded batch back into a list of tensors of the given lengths.

    >>> import shendu as sd
    >>> from shendu.nn.utils.rnn import unpad_sequence
    >>> [t.tolist() for t in unpad_sequence(sd.tensor([[1, 2], [3, 0]]), [2, 1], True)]
    [[1, 2], [3]]
    """
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    lengths = _int_array(lengths, "lengths", "unpad_sequence")
    return [x[b, :int(n)] for b, n in enumerate(lengths)]


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    """Unpack a ``PackedSequence`` into a list of tensors, in the caller's order.

    >>> import shendu as sd
    >>> from shendu.nn.utils.rnn import pack_sequence, unpack_sequence
    >>> p = pack_sequence([sd.tensor([1]), sd.tensor([2, 3])], enforce_sorted=False)
    >>> [t.tolist() for t in unpack_sequence(p)]
    [[1], [2, 3]]
    """
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
