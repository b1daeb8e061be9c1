"""Entity task and the BiLSTM-CRF tagger."""
import numpy as np

import shendu as sd
from shendu.metrics import get_entities, span_f1_score
from shendu.text.tagging import BiLSTMCRF, word_shapes
from shendu.text.tasks import entity_lines


def test_entity_lines_are_valid_bio_with_inserted_spans():
    rows = entity_lines(200, seed=0, lines=slice(0, 1000))
    assert rows == entity_lines(200, seed=0, lines=slice(0, 1000))
    kinds = set()
    for words, tags in rows:
        assert len(words) == len(tags)
        spans = get_entities(tags)
        assert 1 <= len(spans) <= 3
        for kind, s, e in spans:
            kinds.add(kind)
            if kind == "NUM" and s == e:
                assert words[s].isdigit()
            if kind == "PER":
                assert all(w[0].isupper() for w in words[s:e + 1])
    assert kinds == {"PER", "DATE", "NUM"}


def test_word_shapes():
    assert word_shapes(["the", "Romeo", "ROME", "1979", "5/3/79", "--", "I"]) == \
        [0, 1, 2, 3, 4, 5, 1]


def test_bilstm_crf_learns_to_tag():
    sd.manual_seed(0)
    rows = entity_lines(64, seed=3, lines=slice(0, 2000))
    vocab = {w: i + 1 for i, w in enumerate(sorted({w.lower() for ws, _ in rows for w in ws}))}
    tagset = ["O", "B-PER", "I-PER", "B-DATE", "I-DATE", "B-NUM", "I-NUM"]
    T = max(len(w) for w, _ in rows)
    W = np.zeros((64, T), np.int64)
    S = np.full((64, T), 6, np.int64)
    Y = np.zeros((64, T), np.int64)
    M = np.zeros((64, T), bool)
    for i, (ws, ts) in enumerate(rows):
        W[i, :len(ws)] = [vocab[w.lower()] for w in ws]
        S[i, :len(ws)] = word_shapes(ws)
        Y[i, :len(ws)] = [tagset.index(t) for t in ts]
        M[i, :len(ws)] = True
    W, S, Y, M = (sd.tensor(a) for a in (W, S, Y, M))
    m = BiLSTMCRF(len(vocab) + 1, 7, embed_dim=16, hidden_size=16, dropout=0.0)
    opt = sd.optim.Adam(m.parameters(), lr=0.02)
    first = None
    for _ in range(40):
        loss = m.loss(W, S, Y, M)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    pred = [[tagset[i] for i in p] for p in m.eval().decode(W, S, M)]
    assert [len(p) for p in pred] == [len(ws) for ws, _ in rows]
    assert span_f1_score([t for _, t in rows], pred)[2] > 0.8  # fits its training lines
