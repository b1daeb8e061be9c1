"""Sequence labelling: a BiLSTM tagger with a CRF output layer.

Words are looked up lower-cased, beside a small embedding of their shape (capitalised,
all capitals, digits, ...), so a name never seen in training is still recognisable.

>>> import shendu as sd
>>> from shendu.text.tagging import BiLSTMCRF, word_shapes
>>> word_shapes(["Romeo", "loves", "1979", "X-2", ","])
[1, 0, 3, 4, 5]
>>> m = BiLSTMCRF(vocab_size=20, num_tags=5, embed_dim=8, hidden_size=8)
>>> words, shapes = sd.tensor([[4, 5, 6]]), sd.tensor([[1, 0, 3]])
>>> m.decode(words, shapes)[0].__len__()
3
"""
from __future__ import annotations

from ..nn.layers.crf import CRF
from ..nn.layers.dropout import Dropout
from ..nn.layers.embedding import Embedding
from ..nn.layers.linear import Linear
from ..nn.layers.rnn import LSTM
from ..nn.module import Module
from ..ops.movement import cat
from ..tensor import Tensor

__all__ = ["BiLSTMCRF", "word_shapes", "NUM_SHAPES"]

NUM_SHAPES = 7  # the six shapes of word_shapes and a padding id (6)


def word_shapes(words: list[str]) -> list[int]:
    """Shape ids: 0 lower-case, 1 Capitalised, 2 ALL CAPITALS, 3 digits only, 4 digits with
    other characters, 5 no letters or digits (the pad id is 6)."""
    out = []
    for w in words:
        if w.isdigit():
            out.append(3)
        elif any(c.isdigit() for c in w):
            out.append(4)
        elif not any(c.isalpha() for c in w):
            out.append(5)
        elif w.isupper() and len(w) > 1:
            out.append(2)
        elif w[:1].isupper():
            out.append(1)
        else:
            out.append(0)
    return out


class BiLSTMCRF(Module):
    """Word + shape embeddings -> bidirectional LSTM -> per-tag scores -> ``CRF``.

    ``loss(words, shapes, tags, mask)``: mean negative log-likelihood per sequence;
    ``decode(words, shapes, mask)``: Viterbi tag ids per sequence. Inputs are (B, T)."""

    def __init__(self, vocab_size: int, num_tags: int, embed_dim: int = 64,
                 hidden_size: int = 64, shape_dim: int = 8, dropout: float = 0.2,
                 pad_idx: int = 0) -> None:
        super().__init__()
        self.words = Embedding(vocab_size, embed_dim, padding_idx=pad_idx)
        self.shapes = Embedding(NUM_SHAPES, shape_dim)
        self.drop = Dropout(dropout)
        self.lstm = LSTM(embed_dim + shape_dim, hidden_size, batch_first=True,
                         bidirectional=True)
        self.proj = Linear(2 * hidden_size, num_tags)
        self.crf = CRF(num_tags, batch_first=True)

    def emissions(self, words: Tensor, shapes: Tensor) -> Tensor:
        x = self.drop(cat([self.words(words), self.shapes(shapes)], dim=-1))
        out, _ = self.lstm(x)
        return self.proj(self.drop(out))

    def loss(self, words: Tensor, shapes: Tensor, tags: Tensor, mask=None) -> Tensor:
        return -self.crf(self.emissions(words, shapes), tags, mask, reduction="mean")

    def decode(self, words: Tensor, shapes: Tensor, mask=None) -> list[list[int]]:
        return self.crf.decode(self.emissions(words, shapes), mask)
