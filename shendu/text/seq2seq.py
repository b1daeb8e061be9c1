"""Encoder-decoder models with attention.

``Seq2Seq`` is a bidirectional recurrent encoder (GRU or LSTM, padded sources packed so the
backward direction starts at each sequence's own end) and a recurrent decoder attending
over the encoder states with ``BahdanauAttention`` (additive, scored from the previous
decoder state and fed into the cell) or ``LuongAttention`` (multiplicative, scored from the
new state and combined into an attentional vector that is also fed to the next step).
Training uses teacher forcing (``forward``); decoding goes one step at a time through
``encode`` and ``decode_step``, which ``shendu.text.decoding`` drives (greedy and beam
search). ``TransformerSeq2Seq`` offers the same interface over ``nn.Transformer``.

>>> import shendu as sd
>>> from shendu.text.seq2seq import Seq2Seq
>>> m = Seq2Seq(10, 12, embed_dim=8, hidden_size=16, attention="luong")
>>> src = sd.tensor([[4, 5, 6], [7, 8, 0]])            # 0 is padding
>>> m(src, sd.tensor([[2, 4, 5], [2, 6, 0]])).shape    # teacher-forced logits
(2, 3, 12)
"""
from __future__ import annotations

import math

import numpy as np

from .. import creation
from ..nn.functional.activation import softmax
from ..nn.layers.dropout import Dropout
from ..nn.layers.embedding import Embedding
from ..nn.layers.linear import Linear
from ..nn.layers.rnn import GRU, LSTM, GRUCell, LSTMCell
from ..nn.layers.transformer import Transformer
from ..nn.module import Module
from ..nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from ..ops.movement import cat, stack
from ..tensor import Tensor

__all__ = ["BahdanauAttention", "LuongAttention", "Seq2Seq", "TransformerSeq2Seq"]


def _masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return softmax(scores, dim=-1)


class BahdanauAttention(Module):
    """Additive attention: ``score(q, k) = v . tanh(W_q q + W_k k)``.

    ``forward(query (B, Q), keys (B, S, K), mask (B, S) bool of valid positions,
    proj_keys=None)`` returns ``(context (B, K), weights (B, S))``; ``proj_keys`` is
    ``project_keys(keys)``, computed once per source sequence.

    >>> import shendu as sd
    >>> from shendu.text.seq2seq import BahdanauAttention
    >>> att = BahdanauAttention(4, 6, 5)
    >>> ctx, w = att(sd.randn(2, 4), sd.randn(2, 3, 6))
    >>> ctx.shape, w.sum(dim=-1).tolist()  # doctest: +ELLIPSIS
    ((2, 6), [1.0..., 1.0...])
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__()
        self.query_proj = Linear(query_size, hidden_size, bias=False)
        self.key_proj = Linear(key_size, hidden_size)
        self.v = Linear(hidden_size, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        return self.key_proj(keys)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None,
                proj_keys: Tensor | None = None):
        pk = self.project_keys(keys) if proj_keys is None else proj_keys
        scores = self.v((pk + self.query_proj(query).unsqueeze(1)).tanh()).squeeze(-1)
        w = _masked_softmax(scores, mask)
        return (w.unsqueeze(1) @ keys).squeeze(1), w


class LuongAttention(Module):
    """Multiplicative attention: ``score(q, k) = q . k`` (``'dot'``, needs equal sizes)
    or ``q . W k`` (``'general'``). Same call as ``BahdanauAttention``.

    >>> import shendu as sd
    >>> from shendu.text.seq2seq import LuongAttention
    >>> ctx, w = LuongAttention(4, 6)(sd.randn(2, 4), sd.randn(2, 3, 6))
    >>> ctx.shape, w.shape
    ((2, 6), (2, 3))
    """

    def __init__(self, query_size: int, key_size: int, method: str = "general") -> None:
        super().__init__()
        if method not in ("dot", "general"):
            raise ValueError(f"LuongAttention: method must be 'dot' or 'general', got "
                             f"{method!r}")
        if method == "dot" and query_size != key_size:
            raise ValueError(f"LuongAttention: 'dot' needs query_size == key_size, got "
                             f"{query_size} and {key_size}")
        self.method = method
        self.key_proj = Linear(key_size, query_size, bias=False) if method == "general" else None

    def project_keys(self, keys: Tensor) -> Tensor:
        return keys if self.key_proj is None else self.key_proj(keys)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None,
                proj_keys: Tensor | None = None):
        pk = self.project_keys(keys) if proj_keys is None else proj_keys
        scores = (pk @ query.unsqueeze(-1)).squeeze(-1)
        w = _masked_softmax(scores, mask)
        return (w.unsqueeze(1) @ keys).squeeze(1), w


class Seq2Seq(Module):
    """Recurrent encoder-decoder with attention.

    Args:
        src_vocab_size, tgt_vocab_size: vocabulary sizes.
        embed_dim: embedding width (both sides).
        hidden_size: width of the decoder and of each encoder direction (the memory the
            decoder attends over is ``2 * hidden_size`` wide).
        attention: ``'bahdanau'``, ``'luong'`` or ``None`` (the decoder sees only the
            encoder's final state).
        cell: ``'gru'`` or ``'lstm'``.
        pad_idx: padding id of both vocabularies (ignored in attention and packing).
        dropout: on embeddings and before the output layer.

    Decoder state: a tuple of (B, ...) tensors (``(h,)`` or ``(h, c)``, plus the last
    attentional vector for Luong), so beam search can reorder it row-wise.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embed_dim: int = 64,
                 hidden_size: int = 128, attention: str | None = "bahdanau",
                 cell: str = "gru", pad_idx: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        if attention not in ("bahdanau", "luong", None):
            raise ValueError(f"Seq2Seq: attention must be 'bahdanau', 'luong' or None, got "
                             f"{attention!r}")
        if cell not in ("gru", "lstm"):
            raise ValueError(f"Seq2Seq: cell must be 'gru' or 'lstm', got {cell!r}")
        H, M = hidden_size, 2 * hidden_size
        self.attention_type, self.cell_type, self.pad_idx = attention, cell, pad_idx
        self.tgt_vocab_size = tgt_vocab_size
        self.src_embed = Embedding(src_vocab_size, embed_dim, padding_idx=pad_idx)
        self.tgt_embed = Embedding(tgt_vocab_size, embed_dim, padding_idx=pad_idx)
        rnn = GRU if cell == "gru" else LSTM
        self.encoder = rnn(embed_dim, H, batch_first=True, bidirectional=True)
        self.bridge = Linear(M, H)
        self.drop = Dropout(dropout)
        step_in = embed_dim + {"bahdanau": M, "luong": H, None: 0}[attention]
        self.cell = (GRUCell if cell == "gru" else LSTMCell)(step_in, H)
        if attention == "bahdanau":
            self.attention = BahdanauAttention(H, M, H)
            self.out = Linear(H + M + embed_dim, tgt_vocab_size)
        elif attention == "luong":
            self.attention = LuongAttention(H, M, "general")
            self.combine = Linear(H + M, H, bias=False)
            self.out = Linear(H, tgt_vocab_size)
        else:
            self.attention = None
            self.out = Linear(H + embed_dim, tgt_vocab_size)

    # ------------------------------------------------------------------ encoder
    def encode(self, src: Tensor):
        """``(memory (B, S, 2H), mask (B, S), proj_keys, state)`` for a padded (B, S)
        source batch."""
        if src.ndim != 2 or src.shape[1] == 0:
            raise ValueError(f"Seq2Seq.encode: expected a non-empty (batch, time) id tensor, "
                             f"got shape {tuple(src.shape)}")
        ids = src.numpy()
        mask_np = ids != self.pad_idx
        lengths = mask_np.sum(1)
        if (lengths == 0).any():
            empty = np.flatnonzero(lengths == 0).tolist()
            raise ValueError(f"Seq2Seq.encode: source row(s) {empty} are empty (all padding)")
        packed = pack_padded_sequence(self.drop(self.src_embed(src)), lengths.tolist(),
                                      batch_first=True, enforce_sorted=False)
        out, hn = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        h_last = hn[0] if self.cell_type == "lstm" else hn  # (2, B, H)
        h0 = self.bridge(cat([h_last[0], h_last[1]], dim=-1)).tanh()
        state: tuple = (h0,) if self.cell_type == "gru" else (h0, creation.zeros_like(h0))
        if self.attention_type == "luong":
            state = state + (creation.zeros_like(h0),)
        mask = creation.tensor(mask_np)
        proj = self.attention.project_keys(memory) if self.attention is not None else None
        return memory, mask, proj, state

    # ------------------------------------------------------------------ decoder
    def decode_step(self, y_prev: Tensor, state: tuple, memory: Tensor, mask: Tensor,
                    proj_keys: Tensor | None = None):
        """One decoder step from the previous target ids (B,): ``(logits (B, V), state,
        attention weights (B, S) or None)``."""
        e = self.drop(self.tgt_embed(y_prev))
        lstm = self.cell_type == "lstm"
        rec = state[:2] if lstm else state[:1]
        w = None
        if self.attention_type == "bahdanau":
            ctx, w = self.attention(rec[0], memory, mask, proj_keys)
            rec = self._cell(cat([e, ctx], dim=-1), rec)
            feat = cat([rec[0], ctx, e], dim=-1)
            new = rec
        elif self.attention_type == "luong":
            rec = self._cell(cat([e, state[-1]], dim=-1), rec)
            ctx, w = self.attention(rec[0], memory, mask, proj_keys)
            feat = self.combine(cat([rec[0], ctx], dim=-1)).tanh()
            new = rec + (feat,)
        else:
            rec = self._cell(e, rec)
            feat = cat([rec[0], e], dim=-1)
            new = rec
        return self.out(self.drop(feat)), new, w

    def _cell(self, x: Tensor, rec: tuple) -> tuple:
        if self.cell_type == "lstm":
            return tuple(self.cell(x, rec))
        return (self.cell(x, rec[0]),)

    def forward(self, src: Tensor, tgt_in: Tensor, return_attention: bool = False):
        """Teacher-forced logits (B, T, V) for target inputs ``tgt_in`` (B, T) that start
        with ``<bos>``; with ``return_attention`` also the weights (B, T, S)."""
        memory, mask, proj, state = self.encode(src)
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            lt, state, w = self.decode_step(tgt_in[:, t], state, memory, mask, proj)
            logits.append(lt)
            weights.append(w)
        out = stack(logits, dim=1)
        if return_attention:
            return out, (stack(weights, dim=1) if weights[0] is not None else None)
        return out


class TransformerSeq2Seq(Module):
    """``nn.Transformer`` encoder-decoder with token and sinusoidal position encodings,
    with the ``encode``/``decode_step`` interface of ``Seq2Seq`` (the decoder state is the
    target prefix; each step re-reads it).

    >>> import shendu as sd
    >>> from shendu.text.seq2seq import TransformerSeq2Seq
    >>> m = TransformerSeq2Seq(10, 12, d_model=16, nhead=2, num_layers=1, max_len=8)
    >>> m(sd.tensor([[4, 5, 6]]), sd.tensor([[2, 4]])).shape
    (1, 2, 12)
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int = 64,
                 nhead: int = 4, num_layers: int = 2, dim_feedforward: int = 256,
                 dropout: float = 0.0, pad_idx: int = 0, max_len: int = 64) -> None:
        super().__init__()
        self.pad_idx, self.max_len, self.d_model = pad_idx, max_len, d_model
        self.tgt_vocab_size = tgt_vocab_size
        self.src_embed = Embedding(src_vocab_size, d_model, padding_idx=pad_idx)
        self.tgt_embed = Embedding(tgt_vocab_size, d_model, padding_idx=pad_idx)
        self.transformer = Transformer(d_model, nhead, num_layers, num_layers, dim_feedforward,
                                       dropout, batch_first=True, norm_first=True)
        self.out = Linear(d_model, tgt_vocab_size)
        pos = np.arange(max_len)[:, None] / 10000 ** (np.arange(0, d_model, 2) / d_model)
        pe = np.zeros((max_len, d_model), dtype=np.float32)
        pe[:, 0::2], pe[:, 1::2] = np.sin(pos), np.cos(pos)
        self.register_buffer("pe", creation.tensor(pe))

    def _embed(self, table: Embedding, ids: Tensor) -> Tensor:
        if ids.shape[1] > self.max_len:
            raise ValueError(f"TransformerSeq2Seq: a sequence of {ids.shape[1]} tokens is "
                             f"longer than the position table (max_len={self.max_len})")
        return table(ids) * math.sqrt(self.d_model) + self.pe[:ids.shape[1]]

    def encode(self, src: Tensor):
        if src.ndim != 2 or src.shape[1] == 0:
            raise ValueError(f"TransformerSeq2Seq.encode: expected a non-empty (batch, time) "
                             f"id tensor, got shape {tuple(src.shape)}")
        mask = src != self.pad_idx
        memory = self.transformer.encoder(self._embed(self.src_embed, src),
                                          src_key_padding_mask=~mask)
        return memory, mask, None, (creation.zeros(src.shape[0], 0, dtype=src.dtype),)

    def _decode(self, tgt_in: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        T = tgt_in.shape[1]
        causal = creation.tensor(np.triu(np.ones((T, T), dtype=bool), 1))
        h = self.transformer.decoder(self._embed(self.tgt_embed, tgt_in), memory,
                                     tgt_mask=causal, memory_key_padding_mask=~mask)
        return self.out(h)

    def decode_step(self, y_prev: Tensor, state: tuple, memory: Tensor, mask: Tensor,
                    proj_keys=None):
        prefix = cat([state[0], y_prev.reshape(-1, 1)], dim=1)
        return self._decode(prefix, memory, mask)[:, -1], (prefix,), None

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        memory, mask, _, _ = self.encode(src)
        return self._decode(tgt_in, memory, mask)
