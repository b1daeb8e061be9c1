"""``Vocab``: a two-way token <-> index map with special tokens, built from token counts.

Order of indices: the specials first (in the order given), then the other tokens by
decreasing frequency, ties broken alphabetically (torchtext's order). Saved as JSON.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["Vocab", "build_vocab_from_iterator", "SPECIALS"]

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
_FORMAT = "shendu.text.Vocab/1"


class Vocab:
    """Map tokens to indices and back.

    Build one with ``Vocab.build(token_lists, min_freq, max_size, specials)``, or directly
    from a list of tokens in index order (``Vocab(itos)``). Unknown tokens map to the
    index of ``<unk>`` when it is a special (or to ``set_default_index``'s index), and
    raise ``KeyError`` otherwise.

    >>> from shendu.text import Vocab
    >>> v = Vocab.build([["to", "be", "or", "not", "to", "be"]], min_freq=2)
    >>> v.get_itos()
    ['<pad>', '<unk>', '<bos>', '<eos>', 'be', 'to']
    >>> v(["to", "be", "or"]), v.lookup_tokens([5, 4])
    ([5, 4, 1], ['to', 'be'])
    """

    def __init__(self, itos: Sequence[str], freqs: dict[str, int] | None = None,
                 default_index: int | None = None) -> None:
        itos = list(itos)
        for i, t in enumerate(itos):
            if not isinstance(t, str):
                raise TypeError(f"Vocab: token {i} is a {type(t).__name__}, expected str")
        self._itos = itos
        self._stoi = {}
        for i, t in enumerate(itos):
            if t in self._stoi:
                raise ValueError(f"Vocab: token {t!r} appears twice (indices {self._stoi[t]} "
                                 f"and {i})")
            self._stoi[t] = i
        self.freqs = Counter(freqs or {})
        if default_index is None and "<unk>" in self._stoi:
            default_index = self._stoi["<unk>"]
        self.set_default_index(default_index)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, iterator: Iterable[Iterable[str]], min_freq: int = 1,
              max_size: int | None = None, specials: Sequence[str] = SPECIALS,
              special_first: bool = True) -> Vocab:
        """Count tokens over an iterable of token lists and keep those seen at least
        ``min_freq`` times; ``max_size`` caps the total size, specials included (the most
        frequent tokens are kept)."""
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"Vocab.build: min_freq must be an integer >= 1, got {min_freq!r}")
        specials = list(specials)
        if max_size is not None and max_size < len(specials):
            raise ValueError(f"Vocab.build: max_size={max_size} leaves no room for the "
                             f"{len(specials)} specials {specials}")
        counts: Counter = Counter()
        for tokens in iterator:
            if isinstance(tokens, str):
                raise TypeError("Vocab.build: expected an iterable of token lists, got a "
                                "str inside it (tokenize the text first)")
            counts.update(tokens)
        kept = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                if c >= min_freq and t not in specials]
        if max_size is not None:
            kept = kept[:max_size - len(specials)]
        itos = specials + kept if special_first else kept + specials
        return cls(itos, freqs=counts)

    # ------------------------------------------------------------------ lookups
    def set_default_index(self, index: int | None) -> None:
        """Index returned for unknown tokens (None: unknown tokens raise ``KeyError``)."""
        if index is not None and not 0 <= index < len(self._itos):
            raise IndexError(f"Vocab: default index {index} is out of range for a vocabulary "
                             f"of {len(self._itos)} tokens")
        self._default = index

    def get_default_index(self) -> int | None:
        return self._default

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: str) -> bool:
        return token in self._stoi

    def __getitem__(self, token: str) -> int:
        i = self._stoi.get(token, self._default)
        if i is None:
            raise KeyError(f"Vocab: unknown token {token!r} and no '<unk>' or default index "
                           "(add '<unk>' to specials or call set_default_index)")
        return i

    def __call__(self, tokens: Iterable[str]) -> list[int]:
        return self.lookup_indices(tokens)

    def lookup_indices(self, tokens: Iterable[str]) -> list[int]:
        """Indices of the tokens (numericalisation)."""
        if isinstance(tokens, str):
            raise TypeError("Vocab.lookup_indices: expected a list of tokens, got a str "
                            f"({tokens[:20]!r}); use vocab[token] for one token")
        return [self[t] for t in tokens]

    def lookup_token(self, index: int) -> str:
        index = int(index)
        if not 0 <= index < len(self._itos):
            raise IndexError(f"Vocab: index {index} is out of range for a vocabulary of "
                             f"{len(self._itos)} tokens")
        return self._itos[index]

    def lookup_tokens(self, indices: Iterable[int]) -> list[str]:
        """Tokens of the indices (accepts a list, a NumPy array or an int tensor)."""
        if hasattr(indices, "tolist"):
            indices = indices.tolist()
        return [self.lookup_token(i) for i in indices]

    encode = lookup_indices
    decode = lookup_tokens

    def get_itos(self) -> list[str]:
        return list(self._itos)

    def get_stoi(self) -> dict[str, int]:
        return dict(self._stoi)

    def _special(self, token: str) -> int | None:
        return self._stoi.get(token)

    pad_index = property(lambda self: self._special("<pad>"), doc="index of <pad> or None")
    unk_index = property(lambda self: self._special("<unk>"), doc="index of <unk> or None")
    bos_index = property(lambda self: self._special("<bos>"), doc="index of <bos> or None")
    eos_index = property(lambda self: self._special("<eos>"), doc="index of <eos> or None")

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return {"format": _FORMAT, "itos": self._itos, "default_index": self._default,
                "freqs": dict(self.freqs)}

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (temp file then rename: never half-written)."""
        path = os.fspath(path)
        d = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        """Read a vocabulary written by ``save``."""
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError(f"Vocab.load: {os.fspath(path)!r} is not a shendu vocabulary "
                             f"file (expected format {_FORMAT!r})")
        return cls(d["itos"], freqs=d.get("freqs"), default_index=d.get("default_index"))

    def __eq__(self, other) -> bool:
        return (isinstance(other, Vocab) and self._itos == other._itos
                and self._default == other._default)

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self._itos[:6])
        return f"Vocab(size={len(self)}, [{head}{', ...' if len(self) > 6 else ''}])"


def build_vocab_from_iterator(iterator: Iterable[Iterable[str]], min_freq: int = 1,
                              specials: Sequence[str] | None = None, special_first: bool = True,
                              max_tokens: int | None = None) -> Vocab:
    """torchtext's builder: like ``Vocab.build`` but with no specials unless given.

    >>> from shendu.text import build_vocab_from_iterator
    >>> build_vocab_from_iterator([["b", "a", "b"]], specials=["<unk>"]).get_itos()
    ['<unk>', 'b', 'a']
    """
    return Vocab.build(iterator, min_freq, max_tokens, specials or (), special_first)
