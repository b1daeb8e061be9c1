"""Numericalisation and LM batching against hand-built layouts."""
import numpy as np
import pytest

import shendu as sd
from shendu.text import (
    CharTokenizer,
    LMBatches,
    Vocab,
    WordTokenizer,
    batchify,
    lm_batches,
    numericalize,
)


def test_numericalize():
    v = Vocab.build([["a", "b", "b"]])
    out = numericalize("b a c", v, WordTokenizer(), add_bos=True, add_eos=True)
    assert out.dtype == sd.int64 and out.tolist() == [2, 4, 5, 1, 3]
    assert numericalize(["a"], v).tolist() == [5]
    with pytest.raises(ValueError, match="no tokenizer"):
        numericalize("a", v)
    with pytest.raises(ValueError, match="no <bos>"):
        numericalize(["a"], Vocab(["<unk>", "a"]), add_bos=True)


def test_batchify_columns_are_contiguous_streams():
    out = batchify(np.arange(23), 4)
    assert out.shape == (5, 4)
    np.testing.assert_array_equal(out.numpy(), np.arange(20).reshape(4, 5).T)
    with pytest.raises(ValueError, match="too short"):
        batchify([1, 2], 3)
    with pytest.raises(TypeError, match="integer token ids"):
        batchify([0.5, 1.5], 1)


def test_lm_windows_and_targets():
    ids = np.arange(26)  # 2 streams of 13: 0..12 and 13..25
    b = LMBatches(ids, batch_size=2, bptt=5)
    pairs = list(b)
    assert len(b) == len(pairs) == 3  # 12 input steps -> windows of 5, 5, 2
    assert [x.shape for x, _ in pairs] == [(5, 2), (5, 2), (2, 2)]
    xs = np.concatenate([x.numpy() for x, _ in pairs])
    ys = np.concatenate([y.numpy() for _, y in pairs])
    np.testing.assert_array_equal(xs[:, 0], np.arange(12))
    np.testing.assert_array_equal(xs[:, 1], np.arange(13, 25))
    np.testing.assert_array_equal(ys, xs + 1)  # next-token targets
    x, y = next(iter(lm_batches(ids, 2, 5, batch_first=True)))
    assert x.shape == (2, 5) and x.tolist()[1] == [13, 14, 15, 16, 17]
    assert y.tolist()[0] == [1, 2, 3, 4, 5]


def test_lm_batches_on_characters():
    text = "hello world"
    tok = CharTokenizer()
    v = Vocab.build([tok(text)], specials=())
    x, y = next(iter(LMBatches(numericalize(text, v, tok), batch_size=1, bptt=4)))
    assert "".join(v.lookup_tokens(x[:, 0])) == "hell"
    assert "".join(v.lookup_tokens(y[:, 0])) == "ello"


def test_errors():
    with pytest.raises(ValueError, match="bptt"):
        LMBatches(range(10), 2, 0)
    with pytest.raises(ValueError, match="at least 2"):
        LMBatches(range(3), 2, 4)
