"""save_checkpoint / load_checkpoint: everything round-trips, RNG streams are restored,
files are pickle-free zip archives, and bad files fail clearly."""
import json
import random
import zipfile

import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.data import DataLoader, TensorDataset
from shendu.nn.layers import Linear
from shendu.serialization import save
from shendu.train import (
    EarlyStopping,
    get_rng_states,
    load_checkpoint,
    save_checkpoint,
    set_rng_states,
)


def _setup():
    model = Linear(3, 2)
    opt = sd.optim.Adam(model.parameters(), lr=0.01)
    sched = sd.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1)
    F.cross_entropy(model(sd.randn(4, 3)), sd.tensor([0, 1, 0, 1])).backward()
    opt.step()
    sched.step(0.5)
    return model, opt, sched


def test_roundtrip_model_optimizer_scheduler_history_extra(tmp_path):
    model, opt, sched = _setup()
    path = tmp_path / "ck.sd"
    hist = {"train_loss": [1.0, float("nan")], "grad_norm/x": [None, 2.0]}
    save_checkpoint(path, model, opt, sched, epoch=2, history=hist,
                    extra={"config": {"lr": 0.01, "model": "linear"}})
    m2, o2, s2 = Linear(3, 2), None, None
    o2 = sd.optim.Adam(m2.parameters(), lr=0.5)
    s2 = sd.optim.lr_scheduler.ReduceLROnPlateau(o2, patience=7)
    state = load_checkpoint(path, m2, o2, s2)
    for a, b in zip(model.parameters(), m2.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert o2.param_groups[0]["lr"] == 0.01 and s2.patience == 1 and s2.best == 0.5
    np.testing.assert_array_equal(o2.state_dict()["state"][0]["exp_avg"].numpy(),
                                  opt.state_dict()["state"][0]["exp_avg"].numpy())
    assert state["epoch"] == 2 and state["extra"]["config"]["model"] == "linear"
    assert np.isnan(state["history"]["train_loss"][1])
    assert state["history"]["grad_norm/x"] == [None, 2.0]


def test_rng_streams_restored():
    sd.manual_seed(1)
    gen = sd.Generator().manual_seed(5)
    loader = DataLoader(TensorDataset(sd.arange(10)), batch_size=2, shuffle=True,
                        generator=gen)
    states = get_rng_states(loader)
    json.dumps(states)  # plain data only
    draws = (sd.rand(3).numpy(), np.random.rand(3), random.random(),
             [b[0].tolist() for b in loader])
    sd.manual_seed(2)
    np.random.seed(2)
    random.seed(2)
    gen.manual_seed(9)
    set_rng_states(states, loader)
    again = (sd.rand(3).numpy(), np.random.rand(3), random.random(),
             [b[0].tolist() for b in loader])
    np.testing.assert_array_equal(draws[0], again[0])
    np.testing.assert_array_equal(draws[1], again[1])
    assert draws[2:] == again[2:]
    with pytest.raises(ValueError, match="generator state"):
        set_rng_states(states, None)


def test_file_is_a_pickle_free_zip_and_callback_state_is_kept(tmp_path):
    model, opt, _ = _setup()
    es = EarlyStopping(patience=3)
    es.best, es.wait, es.best_epoch = 0.25, 2, 4
    path = tmp_path / "ck.sd"
    save_checkpoint(path, model, opt, epoch=5, callbacks=[es])
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert names[0] == "shendu.json" and all(n.endswith((".npy", ".json")) for n in names)
    es2 = EarlyStopping(patience=3)
    load_checkpoint(path, Linear(3, 2), callbacks=[es2])
    assert (es2.best, es2.wait, es2.best_epoch) == (0.25, 2, 4)


def test_clear_errors(tmp_path):
    model, opt, _ = _setup()
    bare = tmp_path / "weights.sd"
    save(model.state_dict(), bare)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        load_checkpoint(bare, model)
    path = tmp_path / "ck.sd"
    save_checkpoint(path, model)
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(path, model, opt)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_checkpoint(path, Linear(4, 2))
    garbage = tmp_path / "junk.sd"
    garbage.write_bytes(b"\x80\x04 not a zip")
    with pytest.raises(ValueError, match="not a shendu checkpoint"):
        load_checkpoint(garbage)
    with pytest.raises(TypeError, match="Module"):
        save_checkpoint(path, {"w": 1})
    with pytest.raises(FileNotFoundError):
        save_checkpoint(tmp_path / "missing" / "ck.sd", model)
