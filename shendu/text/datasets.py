"""Text corpora: the Shakespeare plays shipped with shendu, and any user text file."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

__all__ = ["load_text", "load_shakespeare", "shakespeare_path", "split_text"]

_ASSETS = Path(__file__).resolve().parent / "_assets"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def shakespeare_path() -> Path:
    """Path of the packaged corpus (gzip; origin and licence in ``_assets/README.md``)."""
    return _ASSETS / "tinyshakespeare.txt.gz"


def load_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """Read a whole text file (plain, or gzip when the name ends in ``.gz``).

    >>> from shendu.text import load_text, shakespeare_path
    >>> load_text(shakespeare_path())[:14]
    'First Citizen:'
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_text: no such file: {os.fspath(path)!r}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding=encoding, newline="") as f:
        text = f.read()
    if not text:
        raise ValueError(f"load_text: {os.fspath(path)!r} is empty")
    return text


def load_shakespeare() -> str:
    """The Shakespeare corpus (about 1.1 million characters, 40,000 lines) as one str.

    >>> from shendu.text import load_shakespeare
    >>> len(load_shakespeare())
    1115394
    """
    return load_text(shakespeare_path())


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Split a text into a contiguous training head and held-out tail.

    >>> from shendu.text import split_text
    >>> split_text("abcdefghij", 0.2)
    ('abcdefgh', 'ij')
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"split_text: val_fraction must be in [0, 1), got {val_fraction!r}")
    cut = len(text) - int(round(len(text) * val_fraction))
    return text[:cut], text[cut:]
