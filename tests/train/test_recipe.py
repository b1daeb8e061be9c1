"""The recipe behind ``shendu train``: every option reaches the object it names."""
import numpy as np
import pytest

import shendu as sd
from shendu.data.datasets import Digits
from shendu.nn.layers.activation import ReLU, Tanh
from shendu.nn.layers.dropout import Dropout
from shendu.nn.layers.linear import Linear
from shendu.nn.layers.pool import AvgPool2d, MaxPool2d
from shendu.train import blas_threads
from shendu.train import recipe as R


def _types(model):
    return [type(m) for m in model.modules()]


@pytest.mark.parametrize("name, act, pool", [("lenet5", ReLU, MaxPool2d),
                                             ("lenet5-classic", Tanh, AvgPool2d)])
def test_model_option_builds_lenet_forms_and_dropout(name, act, pool):
    net = R.build_model(R.resolve_config({"model": name, "dropout": 0.25}), (1, 28, 28), 10)
    kinds = _types(net)
    assert act in kinds and pool in kinds
    assert (ReLU if act is Tanh else Tanh) not in kinds
    drops = [m for m in net.modules() if isinstance(m, Dropout)]
    assert len(drops) == 2 and all(m.p == 0.25 for m in drops)
    assert net(sd.zeros(2, 1, 28, 28)).shape == (2, 10)
    plain = R.build_model(R.resolve_config({"model": name, "dropout": 0.0}), (1, 28, 28), 10)
    assert Dropout not in _types(plain)


@pytest.mark.parametrize("name, default", [("alexnet", 0.5), ("nin", 0.5), ("vgg11", 0.5),
                                           ("googlenet", 0.2)])
def test_zoo_models_keep_their_dropout_unless_given(name, default):
    # the recorded setting is the one the model trains with, and --dropout reaches it
    shape = (1, 67, 67) if name in ("alexnet", "nin") else (1, 32, 32)
    cfg = R.resolve_config({"model": name})
    assert cfg["dropout"] == default
    probs = {m.p for m in R.build_model(cfg, shape, 10).modules() if isinstance(m, Dropout)}
    assert probs == {default}
    cfg = R.resolve_config({"model": name, "dropout": 0.1})
    probs = {m.p for m in R.build_model(cfg, shape, 10).modules() if isinstance(m, Dropout)}
    assert probs == {0.1}


def test_dropout_for_a_model_without_dropout_is_refused():
    assert R.resolve_config({"model": "resnet18"})["dropout"] is None
    assert R.resolve_config({"model": "lenet5"})["dropout"] == R.OWN_DROPOUT
    with pytest.raises(ValueError, match="resnet18 has no dropout"):
        R.resolve_config({"model": "resnet18", "dropout": 0.2})


def test_model_option_mlp_uses_hidden_widths():
    net = R.build_model(R.resolve_config({"model": "mlp", "hidden": "32,16", "dropout": 0.5}),
                        (1, 28, 28), 10)
    shapes = [tuple(m.weight.shape) for m in net.modules() if isinstance(m, Linear)]
    assert shapes == [(32, 784), (16, 32), (10, 16)]
    assert [m.p for m in net.modules() if isinstance(m, Dropout)] == [0.5, 0.5]
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        R.build_model(R.resolve_config({"model": "vgg"}), (1, 28, 28), 10)


@pytest.mark.parametrize("name", sorted(R.OPTIMIZERS))
def test_optimizer_lr_and_weight_decay_reach_the_optimizer(name):
    model = Linear(3, 2)
    cls = getattr(sd.optim, R.OPTIMIZERS[name][0])
    default = R.build_optimizer(R.resolve_config({"optimizer": name}), model)
    assert type(default) is cls and default.param_groups[0]["lr"] == R.OPTIMIZERS[name][1]
    opt = R.build_optimizer(R.resolve_config({"optimizer": name, "lr": 0.0123,
                                              "weight_decay": 3e-4, "momentum": 0.5}), model)
    group = opt.param_groups[0]
    assert group["lr"] == 0.0123 and group["weight_decay"] == 3e-4
    if name in ("sgd", "rmsprop"):
        assert group["momentum"] == 0.5
    if name == "sgd":
        assert group["nesterov"] is True
    with pytest.raises(ValueError, match="unknown optimizer"):
        R.resolve_config({"optimizer": "lbfgs"})


def test_schedule_option():
    opt = sd.optim.SGD(Linear(2, 1).parameters(), lr=1.0)
    cfg = R.resolve_config({"epochs": 6})
    cos = R.build_scheduler(cfg, opt)
    assert type(cos).__name__ == "CosineAnnealingLR" and cos.T_max == 6
    step = R.build_scheduler({**cfg, "schedule": "step"}, opt)
    assert type(step).__name__ == "StepLR" and step.step_size == 2
    assert R.build_scheduler({**cfg, "schedule": "none"}, opt) is None


def test_loaders_split_batch_size_normalisation_and_augment():
    train, test = Digits("train"), Digits("test")
    cfg = R.resolve_config({"limit": 400, "batch_size": 24, "val_fraction": 0.25,
                            "augment": False})
    d = R.make_loaders(cfg, train, test)
    n_tr, n_dev, n_te = d["sizes"]
    assert (n_tr, n_dev, n_te) == (300, 100, 400)
    x, y = next(iter(d["train"]))
    assert x.shape == (24, 1, 28, 28) and y.shape == (24,)
    # the dev split is stratified: each digit's share of the dev set is its share of the
    # 400 drawn images (to within rounding), and train and dev do not overlap
    images, labels = train.arrays()
    tr_idx = np.asarray(d["train"].dataset.indices)
    dev_idx = np.asarray(d["dev"].dataset.indices)
    assert not set(tr_idx) & set(dev_idx)
    pool = np.bincount(labels[np.concatenate([tr_idx, dev_idx])], minlength=10)
    assert np.abs(np.bincount(labels[dev_idx], minlength=10) - 0.25 * pool).max() <= 1
    # normalisation statistics come from the training part only
    assert np.isclose(d["normalize"]["mean"][0], (images[tr_idx] / 255.0).mean(), atol=1e-5)
    assert np.isclose(d["normalize"]["std"][0], (images[tr_idx] / 255.0).std(), rtol=1e-4)

    batch = images[tr_idx[:16]]
    eval_view = d["dev"].transform(batch).numpy()
    assert np.array_equal(d["train"].transform(batch).numpy(), eval_view)  # --no-augment
    aug = R.make_loaders({**cfg, "augment": True}, train, test)
    sd.manual_seed(0)
    shifted = aug["train"].transform(batch).numpy()
    assert shifted.shape == eval_view.shape and not np.array_equal(shifted, eval_view)


def _tiny(**kw):
    return R.resolve_config({"model": "mlp", "hidden": "16", "limit": 120, "epochs": 2,
                             "batch_size": 20, **kw})


def test_seed_makes_runs_repeatable_and_different_seeds_differ():
    run = lambda seed: R.run_training(_tiny(seed=seed), None, progress=False,  # noqa: E731
                                      log=lambda s: None)["history"]
    a, b, c = run(1), run(1), run(2)
    assert a["train_loss"] == b["train_loss"] and a["val_acc"] == b["val_acc"]
    assert a["train_loss"] != c["train_loss"]
    assert a["epoch"] == [1, 2]


def test_epochs_and_threads_options(monkeypatch):
    seen = []
    real = R._run_training

    def spy(cfg, out, **kw):
        from threadpoolctl import threadpool_info
        seen.append([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"])
        return real(cfg, out, **kw)

    pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(R, "_run_training", spy)
    res = R.run_training(_tiny(epochs=3, threads=1), None, progress=False, log=lambda s: None)
    assert len(res["history"]["train_loss"]) == 3
    assert seen[0] and set(seen[0]) == {1}


def test_blas_threads_sets_and_restores(monkeypatch):
    import sys
    tpc = pytest.importorskip("threadpoolctl")

    def blas(api="blas"):
        return [p["num_threads"] for p in tpc.threadpool_info()
                if api in (p["user_api"], p["internal_api"])]
    before = blas()
    if not before:
        pytest.skip("NumPy has no BLAS library threadpoolctl can see")
    with blas_threads(1) as n:
        assert n == 1 and set(blas()) == {1}
    assert blas() == before
    with blas_threads(0) as n:  # 0/None: leave the library alone
        assert n is None and blas() == before
    with pytest.raises(ValueError, match="blas_threads"), blas_threads(-1):
        pass
    # without threadpoolctl the block still runs, leaving BLAS alone
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    with blas_threads(1) as n:
        assert n is None and blas.__name__  # ran
    monkeypatch.undo()
    assert blas() == before
