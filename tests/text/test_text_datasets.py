"""The packaged Shakespeare corpus and the user-file loader."""
import gzip
import hashlib

import pytest

import shendu as sd
from shendu.text import load_shakespeare, load_text, shakespeare_path, split_text
from shendu.text.datasets import SHAKESPEARE_SHA256


def test_shakespeare_is_shipped_intact():
    path = shakespeare_path()
    assert path.is_file() and path.stat().st_size < 600_000  # compressed copy stays small
    text = load_shakespeare()
    assert len(text) == 1_115_394
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == SHAKESPEARE_SHA256
    assert text.startswith("First Citizen:\nBefore we proceed any further")
    assert len(text.splitlines()) == 40_000
    assert (path.parent / "README.md").is_file()
    assert sd.text.load_shakespeare is load_shakespeare  # reachable lazily from sd


def test_user_files(tmp_path):
    p = tmp_path / "mine.txt"
    p.write_text("Hello, wörld.\nLine two\n", encoding="utf-8")
    assert load_text(p) == "Hello, wörld.\nLine two\n"
    g = tmp_path / "mine.txt.gz"
    with gzip.open(g, "wt", encoding="utf-8") as f:
        f.write("zipped\r\n")
    assert load_text(g) == "zipped\r\n"
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_text(tmp_path / "empty.txt")


def test_split_text():
    train, val = split_text("x" * 95 + "y" * 5, 0.05)
    assert train == "x" * 95 and val == "y" * 5
    assert split_text("abc", 0.0) == ("abc", "")
    with pytest.raises(ValueError, match="val_fraction"):
        split_text("abc", 1.0)
