"""Variable-length sequences: pad/pack utilities and packed input to RNN/LSTM/GRU, checked
against hand-computed layouts and against PyTorch with the same weights in float64."""
import numpy as np
import pytest

import shendu as sd
from shendu import nn
from shendu.nn.utils.rnn import (
    PackedSequence,
    pack_padded_sequence,
    pack_sequence,
    pad_packed_sequence,
    pad_sequence,
    unpack_sequence,
    unpad_sequence,
)

try:
    import torch
except ImportError:  # pragma: no cover - the oracle is optional
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")


def t64(a, grad=False):
    return sd.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# ---------------------------------------------------------------- layouts by hand
def test_pad_sequence_layouts():
    a, b = sd.tensor([1, 2, 3]), sd.tensor([4])
    assert pad_sequence([a, b]).tolist() == [[1, 4], [2, 0], [3, 0]]
    assert pad_sequence([a, b], batch_first=True, padding_value=9).tolist() == [[1, 2, 3],
                                                                                 [4, 9, 9]]
    assert pad_sequence([a, b], True, padding_side="left").tolist() == [[1, 2, 3], [0, 0, 4]]
    x = pad_sequence([sd.ones(2, 3), sd.ones(1, 3)], batch_first=True)
    assert x.shape == (2, 2, 3) and x.numpy()[1, 1].tolist() == [0, 0, 0]


def test_pack_layout_sorted_and_unsorted():
    x = sd.tensor([[1, 2, 0], [3, 4, 5], [6, 0, 0]])
    p = pack_padded_sequence(x, [2, 3, 1], batch_first=True, enforce_sorted=False)
    # sorted by length: rows 1 (3), 0 (2), 2 (1)
    assert p.sorted_indices.tolist() == [1, 0, 2]
    assert p.unsorted_indices.tolist() == [1, 0, 2]
    assert p.batch_sizes.tolist() == [3, 2, 1]
    assert p.data.tolist() == [3, 1, 6, 4, 2, 5]
    q = pack_padded_sequence(sd.tensor([[1, 3], [2, 0]]), sd.tensor([2, 1]))
    assert q.sorted_indices is None and q.data.tolist() == [1, 3, 2]
    assert isinstance(q, tuple) and q._fields == ("data", "batch_sizes", "sorted_indices",
                                                  "unsorted_indices")


def test_round_trip_and_total_length():
    seqs = [sd.tensor([1., 2.]), sd.tensor([3., 4., 5.]), sd.tensor([6.])]
    p = pack_sequence(seqs, enforce_sorted=False)
    x, lens = pad_packed_sequence(p, batch_first=True, padding_value=-1, total_length=4)
    assert lens.tolist() == [2, 3, 1]
    assert x.tolist() == [[1, 2, -1, -1], [3, 4, 5, -1], [6, -1, -1, -1]]
    assert [s.tolist() for s in unpack_sequence(p)] == [s.tolist() for s in seqs]
    assert p.double().data.dtype == sd.float64 and p.double().float().data.dtype == sd.float32
    assert p.cpu().batch_sizes.tolist() == [3, 2, 1] and not p.is_cuda
    assert [s.tolist() for s in unpad_sequence(x, lens, batch_first=True)] == \
        [s.tolist() for s in seqs]


def test_pack_unpack_gradients_flow():
    x = t64(np.arange(12).reshape(3, 4), grad=True)  # (T=3, B=4)
    p = pack_padded_sequence(x, [3, 1, 2, 2], enforce_sorted=False)
    y, _ = pad_packed_sequence(p)
    (y * t64(np.arange(12).reshape(3, 4) + 1)).sum().backward()
    mask = np.arange(3)[:, None] < np.array([3, 1, 2, 2])[None, :]
    np.testing.assert_array_equal(x.grad.numpy(), np.where(mask, np.arange(12).reshape(3, 4)
                                                            + 1, 0))


def test_errors():
    x = sd.zeros(3, 2)
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        pack_padded_sequence(x, [1, 3])
    with pytest.raises(RuntimeError, match="positive"):
        pack_padded_sequence(x, [3, 0], enforce_sorted=False)
    with pytest.raises(ValueError, match="exceeds"):
        pack_padded_sequence(x, [4, 1])
    with pytest.raises(ValueError, match="expected 2 lengths"):
        pack_padded_sequence(x, [3])
    with pytest.raises(ValueError, match="total_length"):
        pad_packed_sequence(pack_padded_sequence(x, [3, 1]), total_length=2)
    with pytest.raises(ValueError, match="empty list"):
        pad_sequence([])
    with pytest.raises(ValueError, match="sequence 1 has shape"):
        pad_sequence([sd.zeros(2, 3), sd.zeros(2, 4)])


# ---------------------------------------------------------------- vs PyTorch
@needs_torch
def test_utils_match_torch():
    rng = np.random.default_rng(0)
    lens = [3, 5, 1, 4]
    seqs = [rng.standard_normal((n, 2)) for n in lens]
    for side in ("right", "left"):
        ours = pad_sequence([t64(s) for s in seqs], True, 0.5, side).numpy()
        ref = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs], True, 0.5,
                                              side).numpy()
        np.testing.assert_array_equal(ours, ref)
    pad = rng.standard_normal((5, 4, 2))
    ours = pack_padded_sequence(t64(pad), lens, enforce_sorted=False)
    ref = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(pad), lens,
                                                  enforce_sorted=False)
    np.testing.assert_array_equal(ours.data.numpy(), ref.data.numpy())
    for f in ("batch_sizes", "sorted_indices", "unsorted_indices"):
        assert getattr(ours, f).tolist() == getattr(ref, f).tolist(), f


def _copy_weights(ours, ref):
    for name, p in ref.named_parameters():
        getattr(ours, name).data[...] = p.detach().numpy()


CASES = [(mode, layers, bidir, bf) for mode in ("RNN", "LSTM", "GRU") for layers in (1, 2)
         for bidir in (False, True) for bf in (False, True)]


@needs_torch
@pytest.mark.parametrize("mode,layers,bidir,batch_first", CASES)
def test_packed_rnn_matches_torch(mode, layers, bidir, batch_first):
    rng = np.random.default_rng(layers * 7 + bidir * 3 + batch_first)
    I, H, lens = 3, 4, [2, 5, 1, 4]  # unsorted, with a length-1 sequence
    T, B, D = max(lens), len(lens), 2 if bidir else 1
    kw = dict(num_layers=layers, bidirectional=bidir, batch_first=batch_first)
    ref = getattr(torch.nn, mode)(I, H, **kw).double()
    ours = getattr(nn, mode)(I, H, **kw).double()
    _copy_weights(ours, ref)
    xs = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    h0 = rng.standard_normal((layers * D, B, H))
    c0 = rng.standard_normal((layers * D, B, H))

    xr = torch.tensor(xs, requires_grad=True)
    hr = torch.tensor(h0, requires_grad=True)
    cr = torch.tensor(c0, requires_grad=True)
    pr = torch.nn.utils.rnn.pack_padded_sequence(xr, lens, batch_first, enforce_sorted=False)
    outr, str_ = ref(pr, (hr, cr) if mode == "LSTM" else hr)
    yr, lr = torch.nn.utils.rnn.pad_packed_sequence(outr, batch_first)

    xo, ho, co = t64(xs, True), t64(h0, True), t64(c0, True)
    po = pack_padded_sequence(xo, lens, batch_first, enforce_sorted=False)
    outo, sto = ours(po, (ho, co) if mode == "LSTM" else ho)
    assert isinstance(outo, PackedSequence)
    np.testing.assert_allclose(outo.data.detach().numpy(), outr.data.detach().numpy(), atol=1e-12)
    yo, lo = pad_packed_sequence(outo, batch_first)
    assert lo.tolist() == lr.tolist()
    np.testing.assert_allclose(yo.detach().numpy(), yr.detach().numpy(), atol=1e-12)
    finals_r = str_ if mode == "LSTM" else (str_,)
    finals_o = sto if mode == "LSTM" else (sto,)
    for a, b in zip(finals_o, finals_r):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-12)

    # one scalar touching the output and every final state, with fixed random weights
    wy = rng.standard_normal(yr.shape)
    ws = [rng.standard_normal(f.shape) for f in finals_r]
    lossr = (yr * torch.tensor(wy)).sum() + sum((f * torch.tensor(w)).sum()
                                                for f, w in zip(finals_r, ws))
    losso = (yo * t64(wy)).sum() + sum((f * t64(w)).sum() for f, w in zip(finals_o, ws))
    lossr.backward()
    losso.backward()
    np.testing.assert_allclose(xo.grad.numpy(), xr.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(ho.grad.numpy(), hr.grad.numpy(), atol=1e-10)
    if mode == "LSTM":
        np.testing.assert_allclose(co.grad.numpy(), cr.grad.numpy(), atol=1e-10)
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(getattr(ours, name).grad.numpy(), p.grad.numpy(),
                                   atol=1e-10, err_msg=name)


def test_packed_equals_per_sequence_runs():
    """Without PyTorch too: each sequence of a packed batch gives what it gives alone."""
    sd.manual_seed(0)
    gru = nn.GRU(2, 3, bidirectional=True).double()
    rng = np.random.default_rng(1)
    seqs = [t64(rng.standard_normal((n, 2))) for n in (3, 1, 4)]
    with sd.no_grad():
        out, h = gru(pack_sequence(seqs, enforce_sorted=False))
        padded, _ = pad_packed_sequence(out)
    for b, s in enumerate(seqs):
        with sd.no_grad():
            o1, h1 = gru(s.unsqueeze(1))
        np.testing.assert_allclose(padded.numpy()[:s.shape[0], b], o1.numpy()[:, 0],
                                   atol=1e-12)
        np.testing.assert_allclose(h.numpy()[:, b], h1.numpy()[:, 0], atol=1e-12)


def test_packed_rnn_errors():
    lstm = nn.LSTM(3, 4)
    p = pack_sequence([sd.zeros(2, 5)])
    with pytest.raises(ValueError, match="packed data must have shape"):
        lstm(p)
    p = pack_sequence([sd.zeros(2, 3), sd.zeros(1, 3)])
    with pytest.raises(ValueError, match="initial state"):
        lstm(p, (sd.zeros(1, 3, 4), sd.zeros(1, 3, 4)))
