"""``MultiheadAttention``: scaled dot-product attention over several learned projections.

Parameter layout follows PyTorch (``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E,)
holding the query/key/value projections stacked, or ``q_proj_weight``/``k_proj_weight``/
``v_proj_weight`` when ``kdim``/``vdim`` differ from ``embed_dim``; ``out_proj.weight`` and
``out_proj.bias``), so a PyTorch ``state_dict`` loads unchanged.

Masks use this module's PyTorch convention: in a bool ``attn_mask`` or ``key_padding_mask``
True means "may NOT attend" (the opposite of ``F.scaled_dot_product_attention``'s bool
mask); float masks are added to the attention scores.
"""
from __future__ import annotations

import math

import numpy as np

from ... import creation
from ...ops._util import xp_of
from ...ops.movement import cat
from ...tensor import Tensor, _asarray
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from .linear import Linear

__all__ = ["MultiheadAttention"]


def _param(*shape: int, device=None, dtype=None) -> Parameter:
    return Parameter(creation.empty(*shape, device=device, dtype=dtype))


def _additive(mask, like: Tensor, what: str) -> Tensor | None:
    """A float mask to add to the scores: bool True -> -inf (blocked), False -> 0."""
    if mask is None:
        return None
    m = mask if isinstance(mask, Tensor) else Tensor._wrap(_asarray(mask))
    if m.dtype == np.bool_:
        xp = xp_of(like._data)
        arr = xp.asarray(m._data)
        return Tensor._wrap(xp.where(arr, like.dtype.type(-np.inf), like.dtype.type(0)))
    if m.dtype.kind != "f":
        raise TypeError(f"MultiheadAttention: {what} must be bool or floating point, got "
                        f"{m.dtype}")
    return m if m.dtype == like.dtype else m.type(like.dtype)


class MultiheadAttention(Module):
    """Attention with ``num_heads`` parallel heads of size ``embed_dim // num_heads``.

    Args (PyTorch's order):
        embed_dim: model width E (query features and output features).
        num_heads: number of heads; must divide ``embed_dim``.
        dropout: dropout on the attention weights (training only).
        bias: learn ``in_proj_bias`` and ``out_proj.bias``.
        add_bias_kv: learn ``bias_k``/``bias_v`` appended to the key/value sequences.
        add_zero_attn: append a zero key/value position (after projection).
        kdim, vdim: key/value feature sizes (default ``embed_dim``).
        batch_first: inputs are (N, L, E) instead of (L, N, E).

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(output, weights)``: output like
    ``query``; weights (N, L, S) averaged over heads, (N, heads, L, S) with
    ``average_attn_weights=False``, or None when ``need_weights=False``.
    ``key_padding_mask`` is (N, S); ``attn_mask`` is (L, S) or (N*heads, L, S).
    With ``is_causal=True`` and no ``attn_mask``, a causal mask is built (PyTorch requires
    the mask itself; with both given, ``attn_mask`` is used as passed).

    >>> import shendu as sd
    >>> from shendu.nn.layers.attention import MultiheadAttention
    >>> mha = MultiheadAttention(8, 2, batch_first=True)
    >>> x = sd.randn(3, 5, 8)
    >>> out, w = mha(x, x, x)
    >>> out.shape, w.shape
    ((3, 5, 8), (3, 5, 5))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, "
                             f"got {embed_dim} and {num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible by "
                             f"num_heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = dropout, batch_first
        self.head_dim = embed_dim // num_heads
        fk = {"device": device, "dtype": dtype}
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _param(3 * embed_dim, embed_dim, **fk)
            for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(n, None)
        else:
            self.q_proj_weight = _param(embed_dim, embed_dim, **fk)
            self.k_proj_weight = _param(embed_dim, self.kdim, **fk)
            self.v_proj_weight = _param(embed_dim, self.vdim, **fk)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = _param(3 * embed_dim, **fk)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, **fk)
        if add_bias_kv:
            self.bias_k = _param(1, 1, embed_dim, **fk)
            self.bias_v = _param(1, 1, embed_dim, **fk)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # PyTorch's choice: Xavier-uniform projections, zero biases, Xavier-normal bias_k/v.
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    reset_parameters = _reset_parameters

    def _project(self, query: Tensor, key: Tensor, value: Tensor):
        """q, k, v = the three input projections; one GEMM for self-attention."""
        e, b = self.embed_dim, self.in_proj_bias
        bq, bk, bv = (None,) * 3 if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        if not self._qkv_same_embed_dim:
            return (F.linear(query, self.q_proj_weight, bq),
                    F.linear(key, self.k_proj_weight, bk),
                    F.linear(value, self.v_proj_weight, bv))
        w = self.in_proj_weight
        if query is key and key is value:
            return F.linear(query, w, b).chunk(3, -1)
        if key is value:
            k, v = F.linear(key, w[e:], None if b is None else b[e:]).chunk(2, -1)
            return F.linear(query, w[:e], bq), k, v
        return (F.linear(query, w[:e], bq), F.linear(key, w[e:2 * e], bk),
                F.linear(value, w[2 * e:], bv))

    def _check(self, query: Tensor, key: Tensor, value: Tensor) -> bool:
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key and value must all be 2-D "
                             f"(unbatched) or 3-D, got shapes {query.shape}, {key.shape}, "
                             f"{value.shape}")
        for name, t, d in (("query", query, self.embed_dim), ("key", key, self.kdim),
                           ("value", value, self.vdim)):
            if t.shape[-1] != d:
                raise ValueError(f"MultiheadAttention: {name} has {t.shape[-1]} features "
                                 f"(shape {t.shape}) but {d} were expected")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"MultiheadAttention: key shape {key.shape} and value shape "
                             f"{value.shape} must agree except in the last dimension")
        bdim = 0 if self.batch_first else 1
        if query.ndim == 3 and query.shape[bdim] != key.shape[bdim]:
            raise ValueError(f"MultiheadAttention: query batch size {query.shape[bdim]} does "
                             f"not match key batch size {key.shape[bdim]} (batch_first="
                             f"{self.batch_first})")
        return query.ndim == 3

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        batched = self._check(query, key, value)
        q_in, k_in, v_in = query, key, value
        if not batched:  # unbatched: a batch of one
            q_in, k_in, v_in = (t.unsqueeze(0) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.reshape(1, -1)
        elif not self.batch_first:  # work batch-first: (N, L, E)
            same_kv = key is value
            same_qk = query is key
            q_in = query.transpose(0, 1)
            k_in = q_in if same_qk else key.transpose(0, 1)
            v_in = k_in if same_kv else value.transpose(0, 1)
        n, lq, _ = q_in.shape
        h, d = self.num_heads, self.head_dim
        q, k, v = self._project(q_in, k_in, v_in)
        s = k.shape[1]
        am = _additive(attn_mask, q, "attn_mask")
        if is_causal and am is None:
            am = _additive(np.triu(np.ones((lq, s), bool), 1), q, "attn_mask")
        am = None if am is None else self._attn_mask_4d(am, n, lq, s, batched)
        kpm = _additive(key_padding_mask, q, "key_padding_mask")
        if kpm is not None:
            if kpm.shape != (n, s):
                raise ValueError(f"MultiheadAttention: key_padding_mask must have shape "
                                 f"{(n, s) if batched else (s,)}, got {kpm.shape}")
            kpm = kpm.reshape(n, 1, 1, s)
        extra = []  # key/value positions appended after the sequence (masks allow them)
        if self.bias_k is not None:
            extra.append((self.bias_k.expand(n, 1, self.embed_dim),
                           self.bias_v.expand(n, 1, self.embed_dim)))
        if self.add_zero_attn:
            z = creation.zeros(n, 1, self.embed_dim, dtype=q.dtype, device=q.device)
            extra.append((z, z))
        if extra:
            k = cat([k] + [a for a, _ in extra], 1)
            v = cat([v] + [b for _, b in extra], 1)
            am = None if am is None else F.pad(am, (0, len(extra)))
            kpm = None if kpm is None else F.pad(kpm, (0, len(extra)))
        q, k, v = (t.reshape(n, t.shape[1], h, d).transpose(1, 2) for t in (q, k, v))
        if not need_weights:
            # PyTorch's route too: one fused attention node, the heads read in place
            mask = am if kpm is None else (kpm if am is None else am + kpm)
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
            out = self.out_proj(out.transpose(1, 2).reshape(n, lq, self.embed_dim))
            if not batched:
                return out.squeeze(0), None
            return (out if self.batch_first else out.transpose(0, 1)), None
        scores = (q * (1.0 / math.sqrt(d))) @ k.transpose(-2, -1)  # (N, h, L, S)
        if am is not None:
            scores = scores + am
        if kpm is not None:
            scores = scores + kpm
        attn = F.softmax(scores, dim=-1)
        if self.dropout > 0 and self.training:
            attn = F.dropout(attn, self.dropout, True)
        out = (attn @ v).transpose(1, 2).reshape(n, lq, self.embed_dim)
        out = self.out_proj(out)
        weights = None
        if need_weights:
            weights = attn.mean(dim=1) if average_attn_weights else attn
            weights = weights if batched else weights.squeeze(0)
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def _attn_mask_4d(self, am: Tensor, n: int, lq: int, s: int, batched: bool) -> Tensor:
        h = self.num_heads
        if am.ndim == 2 and am.shape == (lq, s):
            return am
        if am.ndim == 3 and am.shape == ((n * h) if batched else h, lq, s):
            return am.reshape(n, h, lq, s)
        raise ValueError(f"MultiheadAttention: attn_mask must have shape {(lq, s)} or "
                         f"{((n * h) if batched else h, lq, s)}, got {am.shape}")

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
