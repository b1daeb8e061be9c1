"""The training loop: fit reaches stated accuracies, history is complete and JSON-ready,
evaluate/predict restore the model's mode, progress output, scheduler and clipping."""
import json
import math
import sys

import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.data import DataLoader, TensorDataset
from shendu.data.datasets import make_blobs, make_spirals
from shendu.nn.layers import Dropout, Linear, ReLU
from shendu.train import History, Trainer, evaluate, fit, predict


def _blobs(n=300, batch=32, shuffle=True):
    X, y = make_blobs(n, centers=3, seed=0)
    X = (X - X.mean(0)) / X.std(0)
    return DataLoader(TensorDataset(sd.tensor(X), sd.tensor(y)), batch_size=batch,
                      shuffle=shuffle)


def _mlp(n_in=2, n_out=3, hidden=16, p=0.0):
    return sd.nn.Sequential(Linear(n_in, hidden), ReLU(), Dropout(p), Linear(hidden, n_out))


def test_fit_softmax_blobs_reaches_accuracy_and_history_is_complete():
    model = _mlp()
    opt = sd.optim.Adam(model.parameters(), lr=0.05)
    hist = fit(model, F.cross_entropy, opt, _blobs(), epochs=8, val_loader=_blobs(shuffle=False),
               progress=False)
    assert isinstance(hist, History) and hist.epochs == 8
    for key in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time"):
        assert len(hist[key]) == 8, key
    assert hist["epoch"] == list(range(1, 9))
    assert hist["train_acc"][-1] >= 0.95 and hist["val_acc"][-1] >= 0.95
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert all(isinstance(v, float) for v in hist["train_loss"] + hist["val_acc"])
    assert json.loads(json.dumps(hist)) == dict(hist)  # JSON-serialisable as it is


def test_fit_spirals_mlp_learns_nonlinear_boundary():
    X, y = make_spirals(300, n_classes=3, noise=0.1, seed=0)
    loader = DataLoader(TensorDataset(sd.tensor(X), sd.tensor(y)), batch_size=32, shuffle=True)
    model = _mlp(hidden=64)
    hist = fit(model, F.cross_entropy, sd.optim.Adam(model.parameters(), lr=0.02), loader,
               epochs=40, progress=False)
    assert hist["train_acc"][-1] >= 0.9


def test_evaluate_matches_manual_computation_and_restores_mode():
    loader = _blobs(shuffle=False, batch=50)
    model = _mlp(p=0.5)
    model.train()
    res = evaluate(model, loader, F.cross_entropy)
    assert model.training  # mode restored
    X, y = loader.dataset.tensors
    with sd.no_grad():
        out = model.eval()(X)
    assert res["loss"] == pytest.approx(F.cross_entropy(out, y).item(), rel=1e-5)
    assert res["acc"] == pytest.approx(float((out.numpy().argmax(1) == y.numpy()).mean()))
    model.eval()
    evaluate(model, loader, F.cross_entropy)
    assert not model.training


def test_predict_shapes_modes_and_no_graph():
    model = _mlp(p=0.5)
    out = predict(model, _blobs(n=70, batch=32, shuffle=False))  # (x, y) batches
    assert out.shape == (70, 3) and not out.requires_grad and model.training
    X = sd.randn(10, 2)
    a, b = predict(model, X, batch_size=3), predict(model, X.numpy())
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)  # eval mode: no dropout
    model.eval()
    predict(model, X)
    assert not model.training


def test_metrics_topk_and_callable():
    def half(out, target):
        return 0.5
    model = _mlp()
    t = Trainer(model, F.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1),
                metrics=("accuracy", "top3", half), progress=False)
    res = t.evaluate(_blobs())
    assert res["top3"] == 1.0 and res["half"] == 0.5 and 0 <= res["acc"] <= 1
    with pytest.raises(ValueError, match="unknown metric"):
        Trainer(model, F.cross_entropy, metrics=("f2",))


def test_binary_logits_accuracy_with_bce():
    X = sd.randn(200, 2)
    y = (X[:, 0] + X[:, 1] > 0).float()
    model = Linear(2, 1)

    def loss(out, t):
        return F.binary_cross_entropy_with_logits(out.reshape(-1), t)
    loader = DataLoader(TensorDataset(X, y), batch_size=50, shuffle=True)
    hist = fit(model, loss, sd.optim.SGD(model.parameters(), lr=0.5), loader, 20,
               progress=False)
    assert hist["train_acc"][-1] >= 0.95


def test_scheduler_is_stepped_per_epoch_and_lr_is_recorded():
    model = _mlp()
    opt = sd.optim.SGD(model.parameters(), lr=0.1)
    sched = sd.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    hist = fit(model, F.cross_entropy, opt, _blobs(), 3, scheduler=sched, progress=False)
    assert hist["lr"] == pytest.approx([0.1, 0.05, 0.025])
    opt2 = sd.optim.SGD(model.parameters(), lr=0.1)
    plateau = sd.optim.lr_scheduler.ReduceLROnPlateau(opt2, patience=0, factor=0.5,
                                                      threshold=10.0)  # never "improves"
    hist = fit(model, F.cross_entropy, opt2, _blobs(), 3, val_loader=_blobs(),
               scheduler=plateau, progress=False)
    assert hist["lr"][-1] < 0.1


def test_grad_clip_limits_the_step():
    model = Linear(2, 3)
    before = [p.detach().numpy().copy() for p in model.parameters()]
    x, y = sd.randn(16, 2) * 100, sd.zeros(16).long()
    fit(model, F.cross_entropy, sd.optim.SGD(model.parameters(), lr=1.0), [(x, y)], 1,
        grad_clip=1e-3, progress=False, metrics=())
    step = math.sqrt(sum(((p.detach().numpy() - b) ** 2).sum()
                         for p, b in zip(model.parameters(), before)))
    assert 0 < step <= 1e-3 * 1.001
    with pytest.raises(ValueError, match="grad_clip"):
        Trainer(model, F.cross_entropy, grad_clip=0)


def test_start_epoch_and_history_continue_a_run():
    model = _mlp()
    opt = sd.optim.SGD(model.parameters(), lr=0.1)
    h = fit(model, F.cross_entropy, opt, _blobs(), 2, progress=False)
    h = fit(model, F.cross_entropy, opt, _blobs(), 5, start_epoch=2, history=h, progress=False)
    assert h["epoch"] == [1, 2, 3, 4, 5]


def test_progress_bar_and_line_fallback(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    model = _mlp()
    opt = sd.optim.SGD(model.parameters(), lr=0.1)
    fit(model, F.cross_entropy, opt, _blobs(), 1, val_loader=_blobs(), progress="bar")
    err = capsys.readouterr().err
    assert "Epoch 1/1" in err and "loss" in err and "acc" in err
    # True with no terminal (capsys, a log file, CI): one line per epoch, no \r fragments
    fit(model, F.cross_entropy, opt, _blobs(), 2, progress=True)
    cap = capsys.readouterr()
    assert "\r" not in cap.err + cap.out and len(cap.out.splitlines()) == 2
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    fit(model, F.cross_entropy, opt, _blobs(), 2, progress=True)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("Epoch 2/2: train_loss=")
    fit(model, F.cross_entropy, opt, _blobs(), 1, progress=False)
    assert capsys.readouterr() == ("", "")


def test_progress_bar_shows_the_numbers_of_the_batches_it_counts(monkeypatch):
    """Every redraw shows the running loss of exactly the batches counted so far."""
    import types

    from shendu.train._loop import EpochStats, Progress

    shown = []

    class FakeBar:
        def __init__(self, **kw):
            self.n, self.postfix = 0, None

        def set_postfix(self, d, refresh=True):
            self.postfix = dict(d)

        def update(self, k):
            self.n += k
            shown.append((self.n, self.postfix))

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "tqdm.auto", types.SimpleNamespace(tqdm=FakeBar))
    bar = Progress("bar", range(6), "Epoch 1/1", refresh_s=0.0)
    stats = EpochStats(())
    losses = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    for i, value in enumerate(losses):
        stats.update(sd.tensor(value), sd.zeros(1, 1), sd.zeros(1).long())
        bar.step(stats)
        n, post = shown[-1]
        assert n == i + 1 and float(post["loss"]) == pytest.approx(np.mean(losses[:i + 1]))


def test_clear_errors():
    model = _mlp()
    with pytest.raises(ValueError, match="loss_fn and an optimizer"):
        Trainer(model, F.cross_entropy).fit(_blobs(), 1)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, F.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1), _blobs(), -1)
    with pytest.raises(TypeError, match="dict batches"):
        fit(model, F.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1),
            [{"x": sd.randn(2, 2)}], 1, progress=False)
    with pytest.raises(ValueError, match=r"\(inputs, targets\)"):
        fit(model, F.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1),
            [sd.randn(2, 2)], 1, progress=False)
    with pytest.raises(TypeError, match="Module"):
        Trainer(lambda x: x, F.cross_entropy)


def test_history_helpers_roundtrip_with_nan(tmp_path):
    h = History()
    h.append({"epoch": 1, "train_loss": 1.0, "val_loss": 0.9})
    h.append({"epoch": 2, "train_loss": float("nan"), "val_loss": 0.7})
    h.record("grad_norm/fc", 3.0)
    assert h["grad_norm/fc"] == [None, 3.0] and h.epochs == 2
    assert h.best("val_loss") == (2, 0.7) and h.best("train_loss") == (1, 1.0)
    path = tmp_path / "h.json"
    h.to_json(path)
    back = History.from_json(path)
    assert math.isnan(back["train_loss"][1]) and back["val_loss"] == [0.9, 0.7]
    assert History.from_json(json.dumps({"history": {"a": [1]}})) == {"a": [1]}
    with pytest.raises(KeyError, match="no finite values"):
        h.best("missing")


def test_one_cycle_schedule_is_stepped_per_batch():
    model = _mlp()
    opt = sd.optim.SGD(model.parameters(), lr=0.1)
    loader = _blobs(n=64, batch=16)  # 4 batches per epoch
    sched = sd.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=8)
    fit(model, F.cross_entropy, opt, loader, 2, scheduler=sched, progress=False)
    assert sched.last_epoch == 8
