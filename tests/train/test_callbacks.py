"""Callbacks: early stopping, checkpoints (atomic, resumable to the identical result), LR
scheduling, CSV/JSON logs, and the gradient monitor's per-layer findings."""
import csv
import json
import os
import random
import warnings

import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.data import DataLoader, TensorDataset
from shendu.data import transforms as T
from shendu.data.datasets import make_blobs
from shendu.nn.layers import Dropout, Linear, ReLU, Sigmoid
from shendu.train import (
    Callback,
    CSVLogger,
    EarlyStopping,
    GradientMonitor,
    GradientWarning,
    JSONLogger,
    LambdaCallback,
    LRSchedulerCallback,
    ModelCheckpoint,
    Trainer,
    fit,
    load_checkpoint,
)


def _loader(n=96, batch=16, generator=None, transform=None):
    X, y = make_blobs(n, centers=3, seed=1)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    return DataLoader(TensorDataset(X, y), batch_size=batch, shuffle=True, generator=generator,
                      transform=transform)


def _model(p=0.0):
    return sd.nn.Sequential(Linear(2, 16), ReLU(), Dropout(p), Linear(16, 3))


class _FakeTrainer:
    def __init__(self):
        self.stop_training = False


class _Feed(Callback):
    """Writes a scripted value into the logs before the other callbacks see them."""

    order = -100

    def __init__(self, values):
        self.values = values

    def on_epoch_end(self, trainer, epoch, logs):
        logs["score"] = self.values[epoch]


# ---------------------------------------------------------------------- early stopping
def test_early_stopping_stops_after_patience():
    es = EarlyStopping(monitor="val_loss", patience=2)
    t = _FakeTrainer()
    es.on_train_begin(t)
    for epoch, v in enumerate([1.0, 0.8, 0.9, 0.85, 0.7]):
        es.on_epoch_end(t, epoch, {"val_loss": v})
        if t.stop_training:
            break
    assert (epoch + 1, es.stopped_epoch, es.best_epoch, es.best) == (4, 4, 2, 0.8)


def test_early_stopping_mode_and_min_delta():
    es = EarlyStopping(monitor="val_acc", patience=1, min_delta=0.05)  # auto -> max
    t = _FakeTrainer()
    es.on_train_begin(t)
    es.on_epoch_end(t, 0, {"val_acc": 0.5})
    es.on_epoch_end(t, 1, {"val_acc": 0.54})  # not better by 0.05
    assert t.stop_training and es.best_epoch == 1
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


def test_early_stopping_in_fit_restores_best_weights():
    snapshots = {}
    keep = LambdaCallback(on_epoch_end=lambda tr, e, logs: snapshots.__setitem__(
        e + 1, {k: v.numpy().copy() for k, v in tr.model.state_dict().items()}))
    es = EarlyStopping(monitor="score", mode="min", patience=2, restore_best_weights=True)
    model = _model()
    hist = fit(model, F.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1), _loader(),
               epochs=10, callbacks=[keep, es, _Feed([5, 3, 1, 2, 4, 0, 0, 0, 0, 0])],
               progress=False)
    assert hist.epochs == 5 and es.stopped_epoch == 5 and es.best_epoch == 3
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), snapshots[3][k])
    assert not np.array_equal(snapshots[3]["0.weight"], snapshots[5]["0.weight"])


def test_early_stopping_warns_on_missing_metric():
    es = EarlyStopping(monitor="val_loss")
    es.on_train_begin(_FakeTrainer())
    with pytest.warns(RuntimeWarning, match="val_loader"):
        es.on_epoch_end(_FakeTrainer(), 0, {"train_loss": 1.0})


# ---------------------------------------------------------------------- checkpoints
def test_model_checkpoint_every_epoch_and_best_only(tmp_path):
    model = _model()
    every = ModelCheckpoint(tmp_path / "ck-{epoch:02d}.sd", every_n_epochs=2)
    best = ModelCheckpoint(tmp_path / "best.sd", monitor="score", mode="max",
                           save_best_only=True)
    fit(model, F.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1), _loader(), 5,
        callbacks=[every, best, _Feed([0.1, 0.5, 0.3, 0.6, 0.2])], progress=False)
    names = sorted(os.listdir(tmp_path))
    assert names == ["best.sd", "ck-02.sd", "ck-04.sd"]  # and no temp files left behind
    state = load_checkpoint(tmp_path / "best.sd", restore_rng=False)
    assert state["epoch"] == 4 and len(state["history"]["train_loss"]) == 4
    assert every.last_path == str(tmp_path / "ck-04.sd")


def test_checkpoint_write_is_atomic_when_a_save_crashes(tmp_path, monkeypatch):
    import shendu.serialization as ser
    path = tmp_path / "ck.sd"
    model = _model()
    fit(model, F.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1), _loader(), 1,
        callbacks=[ModelCheckpoint(path)], progress=False)
    good = path.read_bytes()

    def crash(f, structure, arrays, compress):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")
    monkeypatch.setattr(ser, "_write_archive", crash)
    with pytest.raises(OSError, match="disk full"):
        fit(model, F.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1), _loader(), 1,
            callbacks=[ModelCheckpoint(path)], progress=False)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["ck.sd"]


def _resumable_run(path, epochs, *, stop_after=None, resume=False, own_generator=False):
    """LeNet-sized recipe with every kind of randomness: init, shuffling, dropout,
    random augmentation, Adam state, a step schedule."""
    gen = sd.Generator().manual_seed(7) if own_generator else None
    X = np.random.default_rng(0).random((64, 1, 8, 8)).astype(np.float32)
    y = np.arange(64) % 3
    aug = T.Compose([T.RandomCrop(8, padding=1), T.RandomHorizontalFlip()])
    loader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True, generator=gen,
                        transform=aug)
    model = sd.nn.Sequential(sd.nn.Flatten(), Linear(64, 32), ReLU(), Dropout(0.3),
                             Linear(32, 3))
    opt = sd.optim.Adam(model.parameters(), lr=0.01)
    sched = sd.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    cbs = [ModelCheckpoint(path), EarlyStopping("train_loss", patience=100)]
    if stop_after is not None:
        def stop(tr, epoch, logs):
            if epoch + 1 == stop_after:
                raise KeyboardInterrupt  # the "kill", right after the checkpoint was written
        cbs.append(LambdaCallback(on_epoch_end=stop))
        cbs[-1].order = 200
    trainer = Trainer(model, F.cross_entropy, opt, scheduler=sched, callbacks=cbs,
                      progress=False)
    hist = trainer.fit(loader, epochs, resume=path if resume else None)
    return model, hist


@pytest.mark.parametrize("own_generator", [False, True])
def test_resume_after_kill_gives_identical_weights(tmp_path, own_generator):
    sd.manual_seed(0)
    straight, h_straight = _resumable_run(tmp_path / "a.sd", 4, own_generator=own_generator)

    sd.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        _resumable_run(tmp_path / "b.sd", 4, stop_after=2, own_generator=own_generator)
    # a fresh process: every random stream somewhere else, a differently initialised model
    sd.manual_seed(12345)
    np.random.seed(99)
    random.seed(3)
    resumed, h_resumed = _resumable_run(tmp_path / "b.sd", 4, resume=True,
                                        own_generator=own_generator)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert h_resumed["epoch"] == [1, 2, 3, 4]
    assert h_resumed["train_loss"] == h_straight["train_loss"]
    assert h_resumed["lr"] == h_straight["lr"]


# ---------------------------------------------------------------------- LR and loggers
def test_lr_scheduler_callback_per_step_and_plateau():
    model = _model()
    opt = sd.optim.SGD(model.parameters(), lr=1.0)
    cb = LRSchedulerCallback(sd.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5),
                             interval="step")
    hist = fit(model, F.cross_entropy, opt, _loader(n=32, batch=16), 2, callbacks=[cb],
               progress=False)
    assert hist["lr"] == [1.0, 0.25]  # two steps per epoch
    opt = sd.optim.SGD(model.parameters(), lr=1.0)
    plateau = sd.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=0, factor=0.1)
    cb = LRSchedulerCallback(plateau, monitor="score")
    hist = fit(model, F.cross_entropy, opt, _loader(), 3, callbacks=[cb, _Feed([1, 1, 1])],
               progress=False)
    assert hist["lr"] == pytest.approx([1.0, 1.0, 0.1])  # reduced after one flat epoch
    assert cb.state_dict()["scheduler"]["best"] == 1
    with pytest.raises(ValueError, match="interval"):
        LRSchedulerCallback(plateau, interval="batch")


def test_csv_and_json_logs_parse(tmp_path):
    model = _model()
    cbs = [CSVLogger(tmp_path / "h.csv"), JSONLogger(tmp_path / "h.json")]
    hist = fit(model, F.cross_entropy, sd.optim.SGD(model.parameters(), lr=0.1), _loader(), 3,
               val_loader=_loader(), callbacks=cbs, progress=False)
    with open(tmp_path / "h.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["val_loss"]) for r in rows] == hist["val_loss"]  # exact round trip
    assert json.loads((tmp_path / "h.json").read_text()) == dict(hist)


# ---------------------------------------------------------------------- gradient monitor
class _Named(sd.nn.Module):
    def __init__(self, act=ReLU):
        super().__init__()
        self.fc1, self.act1, self.fc2 = Linear(4, 16), act(), Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.act1(self.fc1(x)))


def _monitor_fit(model, mon, epochs=1, loss=F.cross_entropy, n_out=3):
    X = sd.randn(64, model_in(model))
    y = sd.randint(0, n_out, (64,))
    loader = DataLoader(TensorDataset(X, y), batch_size=16)
    return fit(model, loss, sd.optim.SGD(model.parameters(), lr=0.01), loader, epochs,
               callbacks=[mon], progress=False, metrics=())


def model_in(model):
    return next(iter(model.parameters())).shape[-1]


def test_gradient_monitor_names_layer_with_planted_nan():
    model = _Named()
    model.fc2.weight.data[1, 2] = float("nan")
    mon = GradientMonitor(every_n_batches=1)
    with pytest.warns(GradientWarning, match=r"'fc2' \(Linear\).*NaN/Inf first appeared"):
        hist = _monitor_fit(model, mon, epochs=3)
    nan = [e for e in mon.events if e["kind"] == "nan"]
    assert nan[0]["layer"] == "fc2" and "output" in nan[0]["message"]
    assert hist.epochs == 1  # stop_on_nan ended training in the first epoch


def test_gradient_monitor_names_layer_where_backward_first_made_nan():
    """Forward is finite; sqrt's derivative at 0 is infinite, so fc2's gradients go
    non-finite and the NaN then flows on into fc1's. The origin is fc2, not fc1."""
    class Sqrt(sd.nn.Module):
        def forward(self, x):
            return x.sqrt()

    class Net(sd.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.root, self.fc3 = Linear(4, 8), Linear(8, 8), Sqrt(), \
                Linear(8, 3)

        def forward(self, x):
            return self.fc3(self.root(self.fc2(self.fc1(x))))
    model = Net()
    model.fc2.weight.data = sd.zeros(8, 8)
    model.fc2.bias.data = sd.zeros(8)  # fc2's output is exactly 0: sqrt(0) = 0 forward
    mon = GradientMonitor(every_n_batches=1, warn=False)
    with np.errstate(all="ignore"):  # NumPy's own divide-by-zero warnings are expected
        _monitor_fit(model, mon)
    assert not np.isfinite(model.fc1.weight.grad.numpy()).all()  # the NaN reached fc1
    nan = [e for e in mon.events if e["kind"] == "nan"]
    assert nan[0]["layer"] == "fc2" and "gradient" in nan[0]["message"]


def test_gradient_monitor_detects_dead_relu_layer():
    model = _Named()
    model.fc1.bias.data = sd.full((16,), -100.0)
    mon = GradientMonitor(every_n_batches=1, warn=False)
    hist = _monitor_fit(model, mon)
    dead = [e for e in mon.events if e["kind"] == "dead_relu"]
    assert [e["layer"] for e in dead] == ["act1"] and dead[0]["value"] == 1.0
    assert hist["dead_relu/act1"] == [1.0]
    healthy = GradientMonitor(every_n_batches=1, warn=False)
    _monitor_fit(_Named(), healthy)
    assert not [e for e in healthy.events if e["kind"] == "dead_relu"]


def test_gradient_monitor_dead_units_for_functional_relu():
    class Func(sd.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = Linear(4, 8), Linear(8, 3)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x)))
    model = Func()
    model.fc1.bias.data = sd.full((8,), -100.0)
    mon = GradientMonitor(every_n_batches=1, warn=False)
    _monitor_fit(model, mon)
    assert [e["layer"] for e in mon.events if e["kind"] == "dead_relu"] == ["fc2"]


def test_gradient_monitor_flags_vanishing_gradients_in_deep_sigmoid_stack():
    layers = [Linear(4, 32), Sigmoid()]
    for _ in range(9):
        layers += [Linear(32, 32), Sigmoid()]
    model = sd.nn.Sequential(*layers, Linear(32, 3))
    mon = GradientMonitor(every_n_batches=2, warn=False)
    hist = _monitor_fit(model, mon)
    vanishing = {e["layer"] for e in mon.events if e["kind"] == "vanishing"}
    assert "0" in vanishing and "20" not in vanishing  # first layer yes, output layer no
    norms = [hist[f"grad_norm/{i}"][0] for i in range(0, 21, 2)]
    assert norms[0] < 1e-3 * norms[-1]
    assert GradientMonitor.order < 0


def test_gradient_monitor_exploding_and_quiet_on_healthy_net():
    mon = GradientMonitor(every_n_batches=1, exploding_threshold=1e-6, warn=False)
    _monitor_fit(_Named(), mon)
    assert {e["kind"] for e in mon.events} == {"exploding"}
    quiet = GradientMonitor(every_n_batches=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientWarning)
        hist = _monitor_fit(_Named(), quiet, epochs=2)
    assert quiet.events == [] and len(hist["grad_norm/fc1"]) == 2
    with pytest.raises(ValueError):
        GradientMonitor(every_n_batches=0)


_SCRIPT = """
import sys
import numpy as np
import shendu as sd
import shendu.nn.functional as F
from shendu.data import DataLoader, TensorDataset
from shendu.data import transforms as T
from shendu.nn.layers import Dropout, Linear, ReLU
from shendu.serialization import save
from shendu.train import LambdaCallback, ModelCheckpoint, Trainer

mode, ckpt, out = sys.argv[1:4]
sd.manual_seed(0 if mode != "resume" else 999)  # the resumed process starts elsewhere
X = np.random.default_rng(0).random((48, 1, 6, 6)).astype(np.float32)
loader = DataLoader(TensorDataset(X, np.arange(48) % 3), batch_size=8, shuffle=True,
                    transform=T.RandomCrop(6, padding=1))
model = sd.nn.Sequential(sd.nn.Flatten(), Linear(36, 16), ReLU(), Dropout(0.3), Linear(16, 3))
opt = sd.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
cbs = [ModelCheckpoint(ckpt)]
if mode == "killed":
    def kill(trainer, epoch, logs):
        if epoch == 1:
            sys.exit(3)
    cbs.append(LambdaCallback(on_epoch_end=kill))
    cbs[-1].order = 200
Trainer(model, F.cross_entropy, opt, callbacks=cbs, progress=False).fit(
    loader, 4, resume=ckpt if mode == "resume" else None)
save(model.state_dict(), out)
"""


def test_resume_in_a_fresh_process_matches_uninterrupted_run(tmp_path):
    import subprocess
    import sys
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)

    # the child must import this checkout of shendu even when it is not installed
    root = os.path.dirname(os.path.dirname(os.path.abspath(sd.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p)}

    def run(*args):
        return subprocess.run([sys.executable, str(script), *map(str, args)],
                              capture_output=True, text=True, timeout=120, env=env)
    r = run("straight", tmp_path / "a.sd", tmp_path / "a.w")
    assert r.returncode == 0, r.stderr
    assert run("killed", tmp_path / "b.sd", tmp_path / "unused").returncode == 3
    r = run("resume", tmp_path / "b.sd", tmp_path / "b.w")
    assert r.returncode == 0, r.stderr
    from shendu.serialization import load
    a, b = load(tmp_path / "a.w"), load(tmp_path / "b.w")
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
