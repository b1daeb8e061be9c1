"""Regex tokenizers: ``WordTokenizer``, ``CharTokenizer`` and ``get_tokenizer``.

Both are plain callables ``str -> list[str]`` with options for lower-casing and for what to
do with punctuation (``'keep'`` it as separate tokens, ``'drop'`` it, or ``'attach'`` —
words only: leave it glued to the surrounding word, i.e. split on whitespace only).
"""
from __future__ import annotations

import re

__all__ = ["WordTokenizer", "CharTokenizer", "get_tokenizer"]

_PUNCT_MODES = ("keep", "drop", "attach")
# a word: letters/digits/underscore with inner apostrophes or hyphens (don't, o'er, well-a-day)
_WORD = r"\w+(?:['\u2019-]\w+)*"
_PUNCT = r"[^\w\s]"


def _check(name: str, punctuation: str, modes=_PUNCT_MODES) -> None:
    if punctuation not in modes:
        raise ValueError(f"{name}: punctuation must be one of {modes}, got {punctuation!r}")


class WordTokenizer:
    """Split text into words with a regular expression.

    Args:
        lower: lower-case the text first (default True).
        punctuation: ``'keep'`` (default) makes each punctuation mark its own token,
            ``'drop'`` removes them, ``'attach'`` splits on whitespace only.
        pattern: a custom regex; every non-overlapping match is a token (overrides
            ``punctuation``).

    >>> from shendu.text import WordTokenizer
    >>> WordTokenizer()("Don't stop, Romeo!")
    ["don't", 'stop', ',', 'romeo', '!']
    >>> WordTokenizer(lower=False, punctuation="drop")("Don't stop, Romeo!")
    ["Don't", 'stop', 'Romeo']
    """

    def __init__(self, lower: bool = True, punctuation: str = "keep",
                 pattern: str | None = None) -> None:
        _check("WordTokenizer", punctuation)
        self.lower, self.punctuation = lower, punctuation
        if pattern is None:
            pattern = {"keep": f"{_WORD}|{_PUNCT}", "drop": _WORD, "attach": r"\S+"}[punctuation]
        self.pattern = re.compile(pattern)

    def __call__(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"WordTokenizer: expected a str, got {type(text).__name__}")
        return self.pattern.findall(text.lower() if self.lower else text)

    def __repr__(self) -> str:
        return f"WordTokenizer(lower={self.lower}, punctuation={self.punctuation!r})"


class CharTokenizer:
    """Split text into single characters (newlines and spaces included).

    Args:
        lower: lower-case the text first (default False: a character LM keeps case).
        punctuation: ``'keep'`` (default) or ``'drop'`` (remove punctuation characters).

    >>> from shendu.text import CharTokenizer
    >>> CharTokenizer(lower=True, punctuation="drop")("Hi, O!")
    ['h', 'i', ' ', 'o']
    """

    def __init__(self, lower: bool = False, punctuation: str = "keep") -> None:
        _check("CharTokenizer", punctuation, ("keep", "drop"))
        self.lower, self.punctuation = lower, punctuation
        self._drop = re.compile(_PUNCT) if punctuation == "drop" else None

    def __call__(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer: expected a str, got {type(text).__name__}")
        if self.lower:
            text = text.lower()
        if self._drop is not None:
            text = self._drop.sub("", text)
        return list(text)

    def __repr__(self) -> str:
        return f"CharTokenizer(lower={self.lower}, punctuation={self.punctuation!r})"


def _basic_english(text: str) -> list[str]:
    # torchtext's "basic_english": lower-case, pad some punctuation with spaces, drop
    # quotes, semicolons and colons, split on whitespace
    text = text.lower()
    for pat, rep in ((r"\'", " '  "), (r"\"", ""), (r"\.", " . "), (r"<br \/>", " "),
                     (r",", " , "), (r"\(", " ( "), (r"\)", " ) "), (r"\!", " ! "),
                     (r"\?", " ? "), (r"\;", " "), (r"\:", " "), (r"\s+", " ")):
        text = re.sub(pat, rep, text)
    return text.split()


def get_tokenizer(tokenizer: str | None = "word", **kwargs):
    """A tokenizer by name: ``'word'`` (``WordTokenizer(**kwargs)``), ``'char'``
    (``CharTokenizer(**kwargs)``), ``'basic_english'`` (torchtext's rules) or ``None``
    (split on whitespace, torchtext's meaning). A callable is returned unchanged.

    >>> from shendu.text import get_tokenizer
    >>> get_tokenizer("basic_english")("Hello, World!")
    ['hello', ',', 'world', '!']
    """
    if callable(tokenizer):
        return tokenizer
    if tokenizer is None:
        return str.split
    makers = {"word": WordTokenizer, "char": CharTokenizer}
    if tokenizer in makers:
        return makers[tokenizer](**kwargs)
    if tokenizer == "basic_english":
        return _basic_english
    raise ValueError(f"get_tokenizer: unknown tokenizer {tokenizer!r}; expected 'word', "
                     "'char', 'basic_english', None or a callable")
