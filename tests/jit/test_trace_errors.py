"""What a trace cannot record is refused with the op and the user's source line."""
import importlib

import numpy as np
import pytest

import shendu as sd
from shendu import nn
from shendu.jit import TraceError

trace_mod = importlib.import_module("shendu.jit.trace")  # the module, not sd.jit.trace


def _line_of(fn, text):
    import inspect

    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, s in enumerate(lines) if text in s)


def branchy(x):
    y = x * 2
    if y.sum() > 0:  # data-dependent branch
        return y
    return -y


def test_python_branch_on_data_names_the_op_and_line():
    with pytest.raises(TraceError) as e:
        sd.jit.trace(branchy, sd.ones(3))
    msg = str(e.value)
    assert "bool()" in msg and "%greater_0" in msg
    assert f"test_trace_errors.py:{_line_of(branchy, 'if y.sum()')}" in msg


@pytest.mark.parametrize("call, what", [
    (lambda x: sd.tensor(x.sum().item()), ".item()"),
    (lambda x: sd.tensor(x.numpy()), ".numpy()"),
    (lambda x: sd.tensor(float(x.sum())), "float()"),
    (lambda x: sd.tensor(x.tolist()), ".tolist()"),
    (lambda x: sd.tensor(np.asarray(x)), "converting to a NumPy array"),
])
def test_leaving_the_graph_is_refused(call, what):
    with pytest.raises(TraceError, match=r"traced tensor %\w+ .*test_trace_errors.py:\d+"):
        sd.jit.trace(call, sd.ones(3))
    with pytest.raises(TraceError, match=what.replace("(", r"\(").replace(")", r"\)")):
        sd.jit.trace(call, sd.ones(3))


def test_specialising_on_shapes_and_parameters_is_allowed():
    lin = nn.Linear(3, 3)

    def f(x):
        if x.shape[0] > 1 and lin.weight.sum().item() != 12345:  # not traced data: fine
            return lin(x)
        return x

    assert [n.op for n in sd.jit.trace(f, sd.ones(2, 3)).graph] == ["sum", "linear"]


def test_non_tensor_output_is_refused():
    with pytest.raises(TraceError, match=r"returned a int \(3\).*must return tensors"):
        sd.jit.trace(lambda x: (x * 2, 3), sd.ones(2))
    with pytest.raises(TraceError, match="example input 1 is a float"):
        sd.jit.trace(lambda x, y: x * y, (sd.ones(2), 2.0))


def test_views_made_from_raw_traced_arrays_are_refused():
    with pytest.raises(TraceError, match=r"viewing traced data.*test_trace_errors.py"):
        sd.jit.trace(lambda x: x + sd.Tensor._wrap((x * 1)._data[:1]), sd.ones(2))


def test_mixing_devices_names_the_op_and_devices(monkeypatch):
    # a second device is simulated by labelling one array as living elsewhere (the
    # stand-in array module that really is a second device comes with the device tests)
    other = sd.ones(3)
    real = trace_mod.device_of
    monkeypatch.setattr(trace_mod, "device_of",
                        lambda a: "cuda:0" if a is other._data else real(a))
    with pytest.raises(TraceError, match=r"mul: inputs on different devices \(cpu, cuda:0\)"):
        sd.jit.trace(lambda x: x * other, sd.ones(3))


def test_detach_is_recorded_not_frozen():
    gm = sd.jit.trace(lambda x: x * x.detach(), sd.ones(2))
    assert [n.op for n in gm.graph] == ["detach", "mul"]
    x = sd.tensor([2.0, 3.0], requires_grad=True)
    y = gm(x)
    y.sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), [4.0, 9.0])
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 3.0])  # detached factor gets none


def test_comparisons_and_integer_casts_are_recorded():
    gm = sd.jit.trace(lambda x: sd.where(x > 0, x, 0.5 * x).long(), sd.ones(3))
    assert [n.op for n in gm.graph] == ["greater", "mul_scalar", "where", "cast"]
    np.testing.assert_array_equal(gm(sd.tensor([-4.0, 2.0, 3.0])).numpy(), [-2, 2, 3])
