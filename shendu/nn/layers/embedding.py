"""``Embedding``: a learnable lookup table from integer ids to dense vectors."""
from __future__ import annotations

import numpy as np

from ... import creation
from ...backend import get_array_module
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """Map integer ids of any shape to rows of a (num_embeddings, embedding_dim) table.

    Args:
        num_embeddings: size of the vocabulary.
        embedding_dim: size of each vector.
        padding_idx: an id whose row starts at zero and never receives gradient
            (negative counts from the end).
        max_norm: before each lookup, rescale looked-up rows whose ``norm_type``-norm
            exceeds this, in place.
        norm_type: the p of the norm for ``max_norm`` (default 2).
        scale_grad_by_freq: divide each row's gradient by how often its id occurs in the
            mini-batch.
        sparse: accepted for PyTorch compatibility; gradients are always dense.
        _weight: an initial table to use instead of drawing N(0, 1).
        _freeze: with ``_weight``, do not train the table.

    >>> import shendu as sd
    >>> emb = sd.nn.layers.Embedding(10, 3, padding_idx=0)
    >>> emb
    Embedding(10, 3, padding_idx=0)
    >>> emb(sd.tensor([[0, 2], [4, 0]])).shape
    (2, 2, 3)
    >>> emb.weight[0].tolist()
    [0.0, 0.0, 0.0]
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False,
                 _weight: Tensor | None = None, _freeze: bool = False, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                                 f"[-{num_embeddings}, {num_embeddings})")
            padding_idx %= num_embeddings
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(creation.empty(num_embeddings, embedding_dim,
                                                   device=device, dtype=dtype),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            w = _weight if isinstance(_weight, Tensor) else creation.tensor(_weight)
            if tuple(w.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(w.shape)}, expected "
                                 f"({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(w.detach(), requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """Draw the table from N(0, 1) and zero the padding row, as PyTorch does."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0
            self.weight._version[0] += 1

    def forward(self, input: Tensor) -> Tensor:
        out = F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type)
        if self.scale_grad_by_freq:
            out = _scale_grad_by_count(out, input)
        return out

    @classmethod
    def from_pretrained(cls, embeddings: Tensor | np.ndarray, freeze: bool = True,
                        padding_idx: int | None = None, max_norm: float | None = None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> Embedding:
        """An ``Embedding`` holding a copy of the 2-D table ``embeddings`` (e.g. word2vec or
        GloVe vectors); ``freeze=True`` keeps it fixed during training.

        >>> import shendu as sd
        >>> emb = Embedding.from_pretrained(sd.tensor([[1.0, 2.0], [3.0, 4.0]]))
        >>> emb(sd.tensor([1])), emb.weight.requires_grad
        (tensor([[3., 4.]]), False)
        """
        # a copy (sd.tensor copies arrays too), never the caller's storage
        table = (embeddings.detach().clone() if isinstance(embeddings, Tensor)
                 else creation.tensor(embeddings))
        if table.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D "
                             f"(num_embeddings, embedding_dim), got shape {tuple(table.shape)}")
        rows, dim = table.shape
        return cls(rows, dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=table, _freeze=freeze)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq is not False:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        if self.sparse is not False:
            s += ", sparse=True"
        return s


def _scale_grad_by_count(out: Tensor, input) -> Tensor:
    """Same values as ``out``, but the gradient of each looked-up row is divided by how many
    times its id occurs in ``input``."""
    idx = input._data if isinstance(input, Tensor) else np.asarray(input)
    xp = get_array_module(idx)
    _, inverse, counts = xp.unique(idx.ravel(), return_inverse=True, return_counts=True)
    scale = (1.0 / counts[inverse]).reshape(idx.shape + (1,)).astype(out.dtype)
    s = Tensor._wrap(scale)
    # value: out * s + out * (1 - s) = out; gradient flows only through the first term.
    return out * s + (out * (1 - s)).detach()
