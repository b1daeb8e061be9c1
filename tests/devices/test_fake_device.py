"""The device contract, proven on the CPU: everything runs on the CuPy stand-in
(``fakecupy``, installed as device 'cuda') and gives the CPU's numbers.

The op tests run there too, through the shared helper: ``test_op_suite_on_the_stand_in``
below runs a part of tests/ops with ``SHENDU_TEST_DEVICE=fake``; all of it:
``SHENDU_TEST_DEVICE=fake pytest tests/ops``.
"""
from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import fakecupy
import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu import nn

TESTS = Path(__file__).resolve().parents[1]


def _host(t):
    return None if t is None else t.detach().cpu().numpy()


# ----------------------------------------------------------------------------- the stand-in
def test_the_stand_in_refuses_what_cupy_refuses():
    cp = fakecupy.module
    a = cp.arange(6.0).reshape(2, 3)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(a)
    for mix in (lambda: a + np.ones(3), lambda: np.ones(3) * a,
                lambda: cp.concatenate([a, np.ones((1, 3))]),
                lambda: cp.where(a > 1, a, np.ones(3))):
        with pytest.raises(TypeError, match="Unsupported type"):
            mix()
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
        a[:] = np.ones(3)
    with pytest.raises(TypeError, match="where"):
        cp.maximum(a, 0, where=a > 1)
    with pytest.raises(AttributeError):
        a.ctypes  # noqa: B018 - no host pointer for compiled kernels
    numba = pytest.importorskip("numba", reason="numba: the CPU kernels' compiler")

    @numba.njit
    def total(x):
        return x.sum()
    with pytest.raises(Exception, match="(?i)typ"):  # numba cannot read device memory
        total(a)


def test_the_stand_in_computes_like_numpy():
    cp = fakecupy.module
    a = cp.arange(6.0).reshape(2, 3)
    assert isinstance(a.sum(), cp.ndarray) and a.sum().ndim == 0  # 0-d, not a host scalar
    assert isinstance(np.exp(a), cp.ndarray)  # NumPy functions dispatch to the device
    np.testing.assert_array_equal(cp.asnumpy(np.exp(a) * 2.0 + a[0]),
                                  np.exp(np.arange(6.0).reshape(2, 3)) * 2 + [0, 1, 2])
    b = a.copy()
    b[np.array([0, 0])] = np.zeros((2, 3))  # advanced-index values may come from the host
    assert b.get().sum() == 12
    before = dict(fakecupy.transfers)
    float(a[0, 1])
    assert fakecupy.transfers["to_host"] == before["to_host"] + 1


def test_installed_as_cuda_and_removed_again(fake_cuda):
    assert sd.cuda.is_available() and sd.cuda.device_count() == 1
    x = sd.ones(3, device="cuda")
    assert x.device == sd.device("cuda:0") and x.is_cuda
    assert isinstance(x._data, fake_cuda.ndarray)
    np.testing.assert_array_equal(np.asarray(x), np.ones(3))  # Tensor.__array__ copies back


def test_after_uninstall_cuda_is_what_it_was():
    assert not isinstance(sd.ones(1)._data, fakecupy.ndarray)
    from shendu.backend import cuda

    assert cuda.ndarray_type is not fakecupy.ndarray


# ----------------------------------------------------------------------------- the op tests
def test_op_suite_on_the_stand_in():
    """A part of tests/ops through check_op with every input on the stand-in device."""
    env = dict(os.environ, SHENDU_TEST_DEVICE="fake", PYTHONPATH=str(TESTS.parent))
    files = ["ops/test_elementwise.py", "ops/test_reduce.py", "ops/test_indexing.py",
             "ops/test_nn_functional.py", "ops/test_conv_pool.py", "ops/test_conv_fft.py"]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        "-k", "not torch_", *[str(TESTS / f) for f in files]],
                       env=env, capture_output=True, text=True, cwd=TESTS.parent, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and " failed" not in r.stdout


# ----------------------------------------------------------------------------- layers
def _every_layer_rows():
    spec = importlib.util.spec_from_file_location("_every_layer_rows",
                                                  TESTS / "nn" / "test_every_layer.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # (dataclasses look their module up there)
    spec.loader.exec_module(mod)
    return mod


_EL = _every_layer_rows()
_RNN_INPUTS = {"RNN": [(5, 2, 3)], "LSTM": [(5, 2, 3)], "GRU": [(5, 2, 3)]}
LAYER_ROWS = [r for r in _EL.ROWS if r.inputs or r.name in _RNN_INPUTS]


def _layer_run(row, layer, xs, gs, device):
    sd.manual_seed(7)  # the same dropout masks on both devices (drawn on the host)
    ts = [sd.tensor(x, device=device, requires_grad=x.dtype.kind == "f") for x in xs]
    outs = _EL._outputs(_EL._call(row, layer, ts))
    outs = [o for o in outs if isinstance(o, sd.Tensor)]
    for o in outs:
        assert o.device.type == device, f"{row.name}: an output is on {o.device}"
    if gs:
        sum((o * sd.tensor(g, device=device)).sum() for o, g in zip(outs, gs)).backward()
    grads = {n: _host(p.grad) for n, p in layer.named_parameters()}
    for n, p in layer.named_parameters():
        assert p.device.type == device and (p.grad is None or p.grad.device.type == device), n
        p.grad = None
    return ([_host(o) for o in outs], [_host(t.grad) for t in ts], grads,
            {k: _host(v) for k, v in layer.state_dict().items()})


@pytest.mark.parametrize("row", LAYER_ROWS, ids=[r.name for r in LAYER_ROWS])
def test_every_layer_on_the_stand_in_equals_the_cpu(row, fake_cuda):
    rng = np.random.default_rng(0)
    if row.name in _RNN_INPUTS:
        row = copy.copy(row)
        row.inputs = _RNN_INPUTS[row.name]
    sd.manual_seed(0)
    cpu_layer = getattr(nn, row.name)(*row.args, **row.kwargs).double()
    dev_layer = copy.deepcopy(cpu_layer).to("cuda")
    for training in (True, False):
        cpu_layer.train(training)
        dev_layer.train(training)
        xs = _EL._inputs(row, rng)
        cpu_outs = _layer_run(row, cpu_layer, xs, [], "cpu")[0]
        gs = [rng.standard_normal(o.shape) for o in cpu_outs]
        # both from the same state (BatchNorm's statistics moved in the first call)
        cpu_layer.load_state_dict({k: sd.tensor(v) for k, v in dev_layer.state_dict().items()})
        want = _layer_run(row, cpu_layer, xs, gs, "cpu")
        got = _layer_run(row, dev_layer, xs, gs, "cuda")
        for what, a, b in [("output", got[0], want[0]), ("input grad", got[1], want[1])]:
            for i, (x, y) in enumerate(zip(a, b)):
                if y is not None:
                    np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12,
                                               err_msg=f"{row.name} {what} {i}")
        for name in want[2]:
            if want[2][name] is not None:
                np.testing.assert_allclose(got[2][name], want[2][name], rtol=1e-10,
                                           atol=1e-12, err_msg=f"{row.name} grad of {name}")
        for name in want[3]:
            np.testing.assert_allclose(got[3][name], want[3][name], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{row.name} state {name}")


# ----------------------------------------------------------------------------- training
class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)  # (a bias before batch norm
        # gets rounding noise for a gradient, which Adam's steps would amplify)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(self.drop(x.flatten(1)))


def _train(device, opt_cls, steps=3, dtype=sd.float64, **opt_kw):
    sd.manual_seed(0)
    model = SmallNet().to(dtype).to(device)
    opt = opt_cls(model.parameters(), **opt_kw)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        x = sd.tensor(rng.standard_normal((6, 3, 8, 8)), dtype=dtype, device=device)
        y = sd.tensor(rng.integers(0, 5, 6), device=device)

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss
        sd.manual_seed(1)
        losses.append(float(opt.step(closure)))
    return model, opt, losses


def test_training_step_on_the_stand_in_equals_the_cpu(fake_cuda):
    cpu_model, _, cpu_losses = _train("cpu", sd.optim.SGD, lr=0.1, momentum=0.9)
    with sd.backend.trace_paths() as paths:
        dev_model, _, dev_losses = _train("cuda", sd.optim.SGD, lr=0.1, momentum=0.9)
    np.testing.assert_allclose(dev_losses, cpu_losses, rtol=1e-10)
    for (name, p), q in zip(dev_model.state_dict().items(), cpu_model.state_dict().values()):
        assert p.device.type == "cuda", name
        np.testing.assert_allclose(_host(p), _host(q), rtol=1e-10, atol=1e-12, err_msg=name)
    # device arrays never take the CPU's compiled kernels (numba, MKL)
    assert {path for _, path in paths} <= {"numpy"}, sorted(set(paths))


def test_a_training_step_crosses_to_the_host_only_for_what_it_must(fake_cuda):
    model, opt, _ = _train("cuda", sd.optim.Adam, steps=1, lr=1e-3)
    x = sd.randn(6, 3, 8, 8, dtype=sd.float64, device="cuda")
    y = sd.randint(0, 5, (6,), device="cuda")
    fakecupy.transfers.update(to_host=0, to_device=0)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    # Each crossing to the host is a GPU sync. What remains are data-dependent checks:
    # max-pool's NaN test (1), cross-entropy's target checks (ignored rows, range: 3) and
    # its softmax overflow test (2); and one crossing to the device, dropout's mask (drawn
    # on the host so that a seed gives the same mask everywhere).
    assert fakecupy.transfers == {"to_host": 6, "to_device": 1}
    for cls, kw in OPTIMIZERS[:-1]:  # every optimizer's step: no crossing at all
        step = cls(model.parameters(), **kw)
        fakecupy.transfers.update(to_host=0, to_device=0)
        step.step()
        step.step()
        assert fakecupy.transfers == {"to_host": 0, "to_device": 0}, cls.__name__


# ----------------------------------------------------------------------------- optimizers
OPTIMIZERS = [
    (sd.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    (sd.optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=1e-2)),
    (sd.optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    (sd.optim.Adadelta, dict(lr=1.0, weight_decay=1e-2)),
    (sd.optim.Adam, dict(lr=0.01, amsgrad=True)),
    (sd.optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
    (sd.optim.NAdam, dict(lr=0.01)),
    (sd.optim.RAdam, dict(lr=0.01)),
    (sd.optim.LBFGS, dict(lr=0.5, max_iter=4)),
]


@pytest.mark.parametrize("cls,kw", OPTIMIZERS, ids=[c.__name__ for c, _ in OPTIMIZERS])
def test_optimizer_on_the_stand_in_equals_the_cpu(cls, kw, fake_cuda, tmp_path):
    cpu_model, cpu_opt, cpu_losses = _train("cpu", cls, steps=6, **kw)
    dev_model, dev_opt, dev_losses = _train("cuda", cls, steps=6, **kw)
    np.testing.assert_allclose(dev_losses, cpu_losses, rtol=1e-9)
    for (name, p), q in zip(dev_model.state_dict().items(), cpu_model.state_dict().values()):
        np.testing.assert_allclose(_host(p), _host(q), rtol=1e-9, atol=1e-12, err_msg=name)
    # the optimizer's state lives beside the parameters, and round-trips through a file
    state = dev_opt.state_dict()
    for slots in state["state"].values():
        for k, v in slots.items():
            if isinstance(v, sd.Tensor) and v.ndim > 0:
                assert v.device.type == "cuda", k
    sd.save(state, tmp_path / "opt.sd")
    again = cls(dev_model.parameters(), **kw)
    again.load_state_dict(sd.load(tmp_path / "opt.sd"))
    for a, b in zip(again.state_dict()["state"].values(), state["state"].values()):
        for k in b:
            if isinstance(b[k], sd.Tensor):
                assert a[k].device == b[k].device, k
                np.testing.assert_array_equal(_host(a[k]), _host(b[k]), err_msg=k)


# ----------------------------------------------------------------------------- save / load
def test_save_and_load_from_the_stand_in(fake_cuda, tmp_path):
    sd.manual_seed(0)
    model = SmallNet().to("cuda")
    state = model.state_dict()
    sd.save(state, tmp_path / "m.sd")
    on_gpu = sd.load(tmp_path / "m.sd")  # where it was saved (the GPU is there)
    on_cpu = sd.load(tmp_path / "m.sd", map_location="cpu")
    for k, v in state.items():
        assert on_gpu[k].device.type == "cuda" and on_cpu[k].device.type == "cpu", k
        np.testing.assert_array_equal(_host(on_gpu[k]), _host(v))
        np.testing.assert_array_equal(on_cpu[k].numpy(), _host(v))
    fresh = SmallNet().to("cuda")
    fresh.load_state_dict(on_cpu)  # CPU weights into a GPU model: they stay on the GPU
    for k, v in fresh.state_dict().items():
        assert v.device.type == "cuda", k
        np.testing.assert_array_equal(_host(v), _host(state[k]))
    sd.serialization.save_safetensors({k: v for k, v in state.items()}, tmp_path / "m.safetensors")
    loaded = sd.serialization.load_safetensors(tmp_path / "m.safetensors", device="cuda")
    for k, v in state.items():
        assert loaded[k].device.type == "cuda"
        np.testing.assert_array_equal(_host(loaded[k]), _host(v))


# ----------------------------------------------------------------------------- .to(device)
def test_to_device_and_back(fake_cuda):
    x = sd.randn(3, 4, requires_grad=True)
    y = x.to("cuda")
    assert y.device == sd.device("cuda") and y.dtype == x.dtype and y.requires_grad
    (y * y).sum().backward()  # the copy is differentiable: the gradient comes back
    assert x.grad.device.type == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy())
    z = y.to("cpu", sd.float64)
    assert z.device.type == "cpu" and z.dtype == sd.float64
    assert x.cuda().is_cuda and not x.cuda().cpu().is_cuda
    assert x.to(y).device == y.device  # to(other_tensor)
    model = SmallNet()
    model(sd.randn(2, 3, 8, 8)).sum().backward()
    model.cuda()
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        assert t.device.type == "cuda", name
        assert t.grad is None or t.grad.device.type == "cuda", name
    assert isinstance(model.conv.weight, nn.Parameter)
    model.cpu()
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_mixing_devices_is_a_clear_error(fake_cuda):
    a, b = sd.ones(2), sd.ones(2, device="cuda")
    with pytest.raises(RuntimeError, match="add: expected both tensors on the same device, "
                                           "got cpu and cuda:0"):
        a + b
    with pytest.raises(sd.errors.DeviceError, match="Where: expected all tensors on the same "
                                                    "device, got cuda:0 and cpu"):
        sd.where(sd.tensor([True, False]), b, b)
    with pytest.raises(RuntimeError, match="MatMul: expected all tensors on the same device"):
        sd.ones(2, 2) @ sd.ones(2, 2, device="cuda")
    with pytest.raises(RuntimeError, match="cross_entropy: expected all tensors on the same "
                                           "device, got cuda:0 and cpu"):
        F.cross_entropy(sd.ones(2, 3, device="cuda"), sd.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="batch_norm: running_mean is on cpu"):
        F.batch_norm(sd.ones(2, 3, device="cuda"), sd.zeros(3), sd.ones(3))
