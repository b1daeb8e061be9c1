"""Vocab: ordering, min_freq, max_size, specials, lookups both ways, JSON round trip."""
import json

import numpy as np
import pytest

import shendu as sd
from shendu.text import SPECIALS, Vocab, build_vocab_from_iterator

DOCS = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"]]
# counts: the 3, sat 2, cat/dog/mat/on 1


def test_order_and_specials():
    v = Vocab.build(DOCS)
    assert v.get_itos() == list(SPECIALS) + ["the", "sat", "cat", "dog", "mat", "on"]
    assert (v.pad_index, v.unk_index, v.bos_index, v.eos_index) == (0, 1, 2, 3)
    assert v["the"] == 4 and v.get_stoi()["on"] == 9 and len(v) == 10
    assert "cat" in v and "bird" not in v
    assert v.freqs["the"] == 3


def test_min_freq_and_max_size():
    assert Vocab.build(DOCS, min_freq=2).get_itos()[4:] == ["the", "sat"]
    assert Vocab.build(DOCS, max_size=6).get_itos() == list(SPECIALS) + ["the", "sat"]
    assert len(Vocab.build(DOCS, max_size=5)) == 5


def test_unknown_tokens():
    v = Vocab.build(DOCS)
    assert v(["the", "bird", "sat"]) == [4, 1, 5]
    bare = build_vocab_from_iterator(DOCS)  # no specials, no default
    assert bare.get_itos()[:2] == ["the", "sat"]
    with pytest.raises(KeyError, match="unknown token 'bird'"):
        bare["bird"]
    bare.set_default_index(0)
    assert bare["bird"] == 0


def test_lookup_both_ways():
    v = Vocab.build(DOCS)
    ids = v.encode(["dog", "sat"])
    assert v.decode(ids) == ["dog", "sat"]
    assert v.lookup_tokens(sd.tensor(ids)) == ["dog", "sat"]
    assert v.lookup_tokens(np.array(ids)) == ["dog", "sat"]
    assert v.lookup_token(0) == "<pad>"
    with pytest.raises(IndexError, match="out of range"):
        v.lookup_token(10)


def test_save_load_json(tmp_path):
    v = Vocab.build(DOCS, min_freq=1)
    path = tmp_path / "vocab.json"
    v.save(path)
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["itos"] == v.get_itos() and d["default_index"] == 1
    w = Vocab.load(path)
    assert w == v and w["bird"] == 1 and w.freqs == v.freqs
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a shendu vocabulary"):
        Vocab.load(tmp_path / "bad.json")


def test_errors():
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build(DOCS, min_freq=0)
    with pytest.raises(ValueError, match="no room"):
        Vocab.build(DOCS, max_size=2)
    with pytest.raises(TypeError, match="tokenize the text first"):
        Vocab.build(["the cat"])
    with pytest.raises(ValueError, match="appears twice"):
        Vocab(["a", "b", "a"])
    with pytest.raises(TypeError, match="got a str"):
        Vocab.build(DOCS)("the")
