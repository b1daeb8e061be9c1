"""Seq2seq with attention, greedy and beam search (against exhaustive search), tasks."""
import datetime as dt
import itertools

import numpy as np
import pytest

import shendu as sd
from shendu.text.decoding import beam_search, beam_search_core, greedy_search
from shendu.text.seq2seq import BahdanauAttention, LuongAttention, Seq2Seq, TransformerSeq2Seq
from shendu.text.tasks import date_pairs, number_pairs, number_to_words, pad_batch


def _model(V, seed):
    """Next-token log-probs that depend on the whole history fed so far (bos = V, eos = 0);
    the state is that history, so a beam that mixed up its rows would score wrongly."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(97, V)) * 1.5
    table -= np.log(np.exp(table).sum(-1, keepdims=True))

    def logp(history):
        return table[hash(tuple(history)) % 97]

    def step(toks, st, t):
        assert len(st) == len(toks)
        st = [h + [int(k)] for h, k in zip(st, toks)]
        return np.stack([logp(h) for h in st]), st

    return logp, step


def _exhaustive(logp, V, T, lp):
    out = []
    for L in range(1, T + 1):
        for body in itertools.product(range(1, V), repeat=L - 1):
            ends = [[*body, 0]] + ([[*body, c] for c in range(1, V)] if L == T else [])
            for seq in ends:
                hist, s = [V], 0.0
                for c in seq:
                    s += logp(hist)[c]
                    hist = hist + [c]
                out.append((seq, s / len(seq) ** lp))
    out.sort(key=lambda x: -x[1])
    return out


def _select(st, rows):
    return [st[r] for r in rows]


@pytest.mark.parametrize("lp", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_with_a_wide_beam_is_exhaustive(lp, seed):
    V, T = 4, 4
    logp, step = _model(V, seed)
    want = _exhaustive(logp, V, T, lp)
    got = beam_search_core(step, [[]], _select, bos=V, eos=0, beam_size=V ** T,
                           max_len=T, length_penalty=lp, n_best=6)
    assert [s for s, _ in got] == [s for s, _ in want[:6]]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want[:6]], rtol=1e-12)


def test_narrow_beam_keeps_width_and_scores_its_own_outputs():
    V, T = 5, 5
    logp, step = _model(V, 3)
    widths = []

    def counting(toks, st, t):
        widths.append(len(toks))
        return step(toks, st, t)

    got = beam_search_core(counting, [[]], _select, bos=V, eos=0, beam_size=2, max_len=T,
                           n_best=3)
    assert max(widths) == 2
    scores = dict((tuple(s), v) for s, v in _exhaustive(logp, V, T, 1.0))
    for seq, v in got:  # each returned score is the true score of the returned tokens
        assert v == pytest.approx(scores[tuple(seq)], rel=1e-12)
    assert got[0][1] <= max(scores.values()) + 1e-12
    with pytest.raises(ValueError, match="beam_size"):
        beam_search_core(step, [[]], _select, bos=V, eos=0, beam_size=0, max_len=T)


def test_attention_weights_and_masks():
    sd.manual_seed(0)
    q, k = sd.randn(2, 4), sd.randn(2, 5, 6)
    mask = sd.tensor(np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool))
    att = BahdanauAttention(4, 6, 3)
    ctx, w = att(q, k, mask)
    w = w.detach().numpy()
    np.testing.assert_allclose(w.sum(1), 1, rtol=1e-6)
    assert (w[0, 3:] == 0).all()
    # NumPy reference of v . tanh(Wq q + Wk k + b)
    Wq, Wk = att.query_proj.weight.detach().numpy(), att.key_proj.weight.detach().numpy()
    b, v = att.key_proj.bias.detach().numpy(), att.v.weight.detach().numpy()[0]
    s = np.tanh((q.numpy() @ Wq.T)[:, None] + k.numpy() @ Wk.T + b) @ v
    s[0, 3:] = -np.inf
    ref = np.exp(s - s.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    np.testing.assert_allclose(w, ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ctx.detach().numpy(), np.einsum("bs,bsk->bk", ref, k.numpy()),
                               rtol=1e-5, atol=1e-6)
    ctx, w = LuongAttention(6, 6, "dot")(sd.randn(2, 6), k, mask)
    assert (w.detach().numpy()[0, 3:] == 0).all()
    with pytest.raises(ValueError, match="query_size == key_size"):
        LuongAttention(4, 6, "dot")


@pytest.mark.parametrize("attention", ["bahdanau", "luong", None])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padding_does_not_change_a_row(attention, cell):
    sd.manual_seed(1)
    m = Seq2Seq(9, 7, embed_dim=5, hidden_size=6, attention=attention, cell=cell).eval()
    alone = m(sd.tensor([[4, 5, 6]]), sd.tensor([[2, 4, 5]])).detach().numpy()
    batched = m(sd.tensor([[4, 5, 6, 0, 0], [7, 8, 4, 5, 6]]),
                sd.tensor([[2, 4, 5], [2, 6, 4]])).detach().numpy()
    np.testing.assert_allclose(batched[0], alone[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        m.encode(sd.tensor([[0, 0], [4, 5]]))


def test_transformer_seq2seq_step_matches_forward():
    sd.manual_seed(2)
    m = TransformerSeq2Seq(9, 7, d_model=8, nhead=2, num_layers=1, max_len=6).eval()
    src, tgt = sd.tensor([[4, 5, 6, 0]]), sd.tensor([[2, 4, 5]])
    full = m(src, tgt).detach().numpy()
    mem, mask, proj, st = m.encode(src)
    for t in range(3):
        lt, st, _ = m.decode_step(tgt[:, t], st, mem, mask, proj)
        np.testing.assert_allclose(lt.detach().numpy(), full[:, t], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="max_len=6"):
        m(src, sd.tensor([[2] * 7]))


def test_seq2seq_learns_to_reverse_and_beam_agrees():
    sd.manual_seed(0)
    rng = np.random.default_rng(0)
    m = Seq2Seq(9, 9, embed_dim=16, hidden_size=32, attention="bahdanau")
    opt = sd.optim.Adam(m.parameters(), lr=0.01)
    for _ in range(150):
        seqs = [list(rng.integers(4, 9, rng.integers(2, 5))) for _ in range(32)]
        src = pad_batch(seqs)
        x, y = pad_batch([s[::-1] for s in seqs], bos=2, eos=3)
        loss = sd.nn.functional.cross_entropy(m(src, x).reshape(-1, 9), y.reshape(-1),
                                              ignore_index=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    tests = [[4, 5, 6], [8, 7, 6, 5], [5, 5, 8]]
    got = greedy_search(m, pad_batch(tests), bos=2, eos=3, max_len=8)
    assert got == [s[::-1] + [3] for s in tests]
    beams = beam_search(m, pad_batch(tests), bos=2, eos=3, beam_size=3, max_len=8, n_best=2)
    assert [b[0][0] for b in beams] == got
    assert all(b[0][1] >= b[1][1] for b in beams)


def test_tasks():
    assert number_to_words(342) == "three hundred and forty two"
    assert number_to_words(1_000_017) == "one million and seventeen"
    assert number_to_words(20_100) == "twenty thousand one hundred"
    with pytest.raises(ValueError, match="10\\*\\*9"):
        number_to_words(10**9)
    assert number_pairs(5, seed=1) == number_pairs(5, seed=1)
    for src, tgt in number_pairs(50, seed=2):
        assert number_to_words(int(src)) == tgt
    for src, tgt in date_pairs(300, seed=0):
        d = dt.date.fromisoformat(tgt)
        s = src.lower()
        if "." in s:  # dd.mm.yyyy read back
            assert dt.datetime.strptime(s, "%d.%m.%Y").date() == d
        elif "/" in s and len(s.split("/")[0]) == 4:
            assert dt.datetime.strptime(s, "%Y/%m/%d").date() == d
        else:
            assert str(d.day) in s
    with pytest.raises(ValueError, match="empty"):
        pad_batch([[1], []])
