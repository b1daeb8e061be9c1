"""Language models over token ids, and sampling from them.

Both models take a (batch, time) id tensor and return ``(logits, state)`` with logits of
shape (batch, time, vocab): ``LSTMLanguageModel`` carries its recurrent state between
calls (truncated back-propagation through time), ``GPTLanguageModel`` is a causal
Transformer over at most ``block_size`` positions and has no state (``None``).

>>> import shendu as sd
>>> from shendu.text.lm import GPTLanguageModel, generate
>>> _ = sd.manual_seed(0)
>>> m = GPTLanguageModel(10, block_size=8, d_model=16, nhead=2, num_layers=1)
>>> logits, state = m(sd.tensor([[1, 2, 3]]))
>>> logits.shape, state
((1, 3, 10), None)
>>> len(generate(m, [1, 2], 5, top_k=3, generator=sd.Generator().manual_seed(1)))
7
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import creation
from ..autograd import no_grad
from ..nn.containers import ModuleList
from ..nn.functional.loss import cross_entropy
from ..nn.layers.dropout import Dropout
from ..nn.layers.embedding import Embedding
from ..nn.layers.linear import Linear
from ..nn.layers.norm import LayerNorm
from ..nn.layers.rnn import LSTM
from ..nn.layers.transformer import TransformerEncoderLayer
from ..nn.module import Module
from ..tensor import Tensor

__all__ = ["LSTMLanguageModel", "GPTLanguageModel", "generate", "sample_next",
           "lm_loss", "evaluate_lm"]


def _check_ids(op: str, input: Tensor, vocab_size: int) -> None:
    if not isinstance(input, Tensor) or input.ndim != 2:
        shape = getattr(input, "shape", None)
        raise ValueError(f"{op}: expected a (batch, time) tensor of token ids, got "
                         f"{type(input).__name__} of shape {shape}")
    if input.shape[1] == 0:
        raise ValueError(f"{op}: got an empty sequence (shape {tuple(input.shape)})")


class LSTMLanguageModel(Module):
    """Embedding -> LSTM -> Linear over the vocabulary (a character or word LM).

    Args:
        vocab_size: number of token ids.
        embed_dim: embedding width.
        hidden_size: LSTM width.
        num_layers: stacked LSTM layers.
        dropout: dropout on the embeddings, between layers and before the output layer.
        tie_weights: share the embedding table with the output layer (needs
            ``embed_dim == hidden_size``).

    ``forward(input, state=None)`` with input (batch, time) returns logits
    (batch, time, vocab) and the LSTM state ``(h, c)`` to pass to the next window.

    >>> import shendu as sd
    >>> from shendu.text.lm import LSTMLanguageModel
    >>> m = LSTMLanguageModel(12, embed_dim=8, hidden_size=16)
    >>> logits, (h, c) = m(sd.tensor([[1, 2, 3, 4]]))
    >>> logits.shape, h.shape
    ((1, 4, 12), (1, 1, 16))
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 256,
                 num_layers: int = 1, dropout: float = 0.0, tie_weights: bool = False) -> None:
        super().__init__()
        if tie_weights and embed_dim != hidden_size:
            raise ValueError(f"LSTMLanguageModel: tie_weights needs embed_dim == hidden_size, "
                             f"got {embed_dim} and {hidden_size}")
        self.vocab_size = vocab_size
        self.embedding = Embedding(vocab_size, embed_dim)
        self.drop = Dropout(dropout)
        self.lstm = LSTM(embed_dim, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0)
        self.decoder = Linear(hidden_size, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight

    def forward(self, input: Tensor, state=None):
        _check_ids("LSTMLanguageModel", input, self.vocab_size)
        out, state = self.lstm(self.drop(self.embedding(input)), state)
        return self.decoder(self.drop(out)), state


class GPTLanguageModel(Module):
    """A GPT-style causal Transformer: token + learned position embeddings, pre-norm
    blocks with a causal mask, a final LayerNorm and an output layer tied to the token
    embeddings.

    Args:
        vocab_size: number of token ids.
        block_size: longest context (the size of the position table).
        d_model: width.
        nhead: attention heads.
        num_layers: Transformer blocks.
        dim_feedforward: hidden width of the MLP (default ``4 * d_model``).
        dropout: dropout on embeddings, attention and residual branches.

    ``forward(input, state=None)`` returns ``(logits, None)``.

    >>> import shendu as sd
    >>> from shendu.text.lm import GPTLanguageModel
    >>> m = GPTLanguageModel(12, block_size=4, d_model=8, nhead=2, num_layers=1)
    >>> m(sd.tensor([[1, 2, 3]]))[0].shape
    (1, 3, 12)
    """

    def __init__(self, vocab_size: int, block_size: int = 128, d_model: int = 128,
                 nhead: int = 4, num_layers: int = 4, dim_feedforward: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.tok = Embedding(vocab_size, d_model)
        self.pos = Embedding(block_size, d_model)
        self.drop = Dropout(dropout)
        self.blocks = ModuleList([
            TransformerEncoderLayer(d_model, nhead, dim_feedforward or 4 * d_model, dropout,
                                    activation="gelu", batch_first=True, norm_first=True)
            for _ in range(num_layers)])
        self.norm = LayerNorm(d_model)
        self.head = Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok.weight  # weight tying
        self._init_weights()

    def _init_weights(self) -> None:
        # GPT-2's scheme: N(0, 0.02) tables, residual projections scaled by depth
        from ..nn import init
        init.normal_(self.tok.weight, 0.0, 0.02)
        init.normal_(self.pos.weight, 0.0, 0.02)
        for blk in self.blocks:
            for lin in (blk.linear1, blk.linear2, blk.self_attn.out_proj):
                init.normal_(lin.weight, 0.0, 0.02 / (math.sqrt(2 * len(self.blocks))
                                                      if lin is not blk.linear1 else 1.0))
                init.zeros_(lin.bias)

    def forward(self, input: Tensor, state=None):
        _check_ids("GPTLanguageModel", input, self.vocab_size)
        T = input.shape[1]
        if T > self.block_size:
            raise ValueError(f"GPTLanguageModel: a sequence of {T} tokens is longer than the "
                             f"position table (block_size={self.block_size}); crop the "
                             "context to the last block_size tokens")
        pos = creation.arange(T)
        x = self.drop(self.tok(input) + self.pos(pos))
        for blk in self.blocks:
            x = blk(x, is_causal=True)
        return self.head(self.norm(x)), None


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy in nats per token of (batch, time, vocab) logits against
    (batch, time) targets.

    >>> import shendu as sd
    >>> from shendu.text.lm import lm_loss
    >>> round(lm_loss(sd.zeros(1, 2, 4), sd.tensor([[0, 3]])).item(), 4)  # log(4)
    1.3863
    """
    V = logits.shape[-1]
    return cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def evaluate_lm(model: Module, ids, batch_size: int = 16, bptt: int = 128) -> float:
    """Mean loss (nats per token) of ``model`` over a held-out id stream.

    The stream is cut into ``batch_size`` contiguous columns walked in ``bptt`` windows;
    the LSTM carries its state across windows, the Transformer sees each window afresh
    (``bptt`` is cropped to its ``block_size``). Perplexity is ``exp`` of the result,
    bits per token the result divided by ``log(2)``.
    """
    from .batching import LMBatches

    if isinstance(model, GPTLanguageModel):
        bptt = min(bptt, model.block_size)
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    with no_grad():
        for x, y in LMBatches(ids, batch_size, bptt, batch_first=True):
            logits, state = model(x, state)
            n = y.numel()
            total += lm_loss(logits, y).item() * n
            count += n
    model.train(was_training)
    return total / count


def sample_next(logits, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator=None) -> int:
    """Draw one token id from a 1-D vector of logits.

    ``temperature`` divides the logits (0 means greedy: the arg-max); ``top_k`` keeps the k
    most likely tokens; ``top_p`` keeps the smallest set of most likely tokens whose
    probability reaches p (nucleus sampling). ``generator``: an ``sd.Generator`` or a NumPy
    ``Generator`` (default: shendu's global stream).

    >>> from shendu.text.lm import sample_next
    >>> sample_next([0.1, 2.0, 0.3], top_k=1)
    1
    """
    z = np.asarray(logits.numpy() if isinstance(logits, Tensor) else logits, dtype=np.float64)
    if z.ndim != 1 or z.size == 0:
        raise ValueError(f"sample_next: expected a non-empty 1-D vector of logits, got shape "
                         f"{z.shape}")
    if temperature < 0:
        raise ValueError(f"sample_next: temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"sample_next: top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"sample_next: top_p must be in (0, 1], got {top_p}")
    if temperature == 0:
        return int(np.argmax(z))
    z = z / temperature
    keep = np.ones(z.size, dtype=bool)
    if top_k is not None and top_k < z.size:
        keep[np.argsort(-z, kind="stable")[top_k:]] = False
    p = np.where(keep, np.exp(z - z[keep].max()), 0.0)
    p /= p.sum()
    if top_p is not None:
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]  # mass of the tokens ranked above
        p[order[before >= top_p]] = 0.0  # drop a token once the ones above reach p
        p /= p.sum()
    u = _uniform(generator)
    return int(min(np.searchsorted(np.cumsum(p), u * p.sum(), side="right"), z.size - 1))


def _uniform(generator) -> float:
    if isinstance(generator, np.random.Generator):
        return float(generator.random())
    return float(creation.rand(1, generator=generator).item())


def generate(model: Module, prompt: Sequence[int], max_new_tokens: int,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             generator=None) -> list[int]:
    """Continue ``prompt`` (a list of ids) by ``max_new_tokens`` sampled ids; returns the
    prompt followed by the new ids. The LSTM reads each new token once, carrying its state;
    the Transformer re-reads the last ``block_size`` tokens at each step.
    """
    ids = [int(i) for i in prompt]
    if not ids:
        raise ValueError("generate: the prompt is empty; give at least one token id")
    was_training = model.training
    model.eval()
    gpt = isinstance(model, GPTLanguageModel)
    with no_grad():
        state, feed = None, ids
        for _ in range(max_new_tokens):
            if gpt:
                feed, state = ids[-model.block_size:], None
            logits, state = model(creation.tensor([feed]), state)
            nxt = sample_next(logits[0, -1], temperature, top_k, top_p, generator)
            ids.append(nxt)
            feed = [nxt]
    model.train(was_training)
    return ids
