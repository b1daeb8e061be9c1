"""``trace``: run a function once on example inputs and record the primitives it calls.

Tracing runs the function eagerly. While it runs, ``Function.apply`` (every
differentiable primitive) and ``Module.__call__`` are swapped for recording versions on
this thread (see ``shendu.autograd.tracing``), so each primitive call becomes a ``Node``
whose inputs are the ``Value`` of each tensor argument: a traced input, an earlier node's
output, a parameter or buffer of the traced module (named as in its ``state_dict``), or a
constant (any other tensor, kept by reference).

Python control flow runs once and is specialised: an ``if`` on a shape or a loop over a
Python range unrolls into the graph. A decision on tensor *data* cannot be recorded, so
``bool(t)``, ``t.item()``, ``t.numpy()``, ``float(t)`` and friends on a traced tensor raise
``TraceError`` naming the op and the source line.
"""
from __future__ import annotations

import inspect
import os
import re
import sys
import threading

import numpy as np

from ..autograd import tracing
from ..autograd.function import Function
from ..autograd.grad_mode import _State
from ..backend import device_of
from ..nn.module import Module
from ..tensor import Tensor
from .graph import Graph, Node, Value


class TraceError(RuntimeError):
    """Something a trace cannot record (a data-dependent decision, a non-tensor output,
    mixed devices), with the op and the source line."""


# ---------------------------------------------------------------------- names and lines
_SPECIAL = {"MatMul": "matmul", "Conv2d": "conv2d", "ConvTranspose2d": "conv_transpose2d",
            "MaxPool2d": "max_pool2d", "AvgPool2d": "avg_pool2d", "_Recurrence": "recurrence",
            "AdaptiveAvgPool2d": "adaptive_avg_pool2d", "Im2Col": "im2col",
            "AdaptiveMaxPool2d": "adaptive_max_pool2d", "Col2Im": "col2im",
            "LinearReLU": "linear_relu", "BCEWithLogits": "bce_with_logits", "NLL": "nll"}


def op_name(cls) -> str:
    """``Function`` subclass name in snake case: ``AddScalar`` -> ``add_scalar``."""
    name = cls.__name__
    if name in _SPECIAL:
        return _SPECIAL[name]
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name.lstrip("_"))
    return name.lower()


_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INTERNAL = tuple(os.path.join(_PKG, p) for p in (
    "jit", "autograd", "ops", "tensor.py", "_tensor_methods.py", "nn" + os.sep + "functional",
    "nn" + os.sep + "module.py", "nn" + os.sep + "_hooks.py"))


def user_line() -> str:
    """``file:line`` of the innermost frame outside shendu's engine (the layer or user code
    that called the op)."""
    f = sys._getframe(1)
    while f is not None:
        fn = os.path.abspath(f.f_code.co_filename)
        if not fn.startswith(_INTERNAL):
            return f"{fn}:{f.f_lineno}"
        f = f.f_back
    return "<unknown>"


# ---------------------------------------------------------------------- the tracer
class Tracer:
    """Records nodes for one trace on one thread."""

    def __init__(self, names: dict):
        self.graph = Graph()
        self.by_tensor: dict = {}   # id(tensor) -> Value
        self.by_array: dict = {}    # id(array) -> Value, for arrays passed as attributes
        self.keep: list = []        # keeps ids valid while tracing
        self.state_names = names    # id(param or buffer) -> (kind, state_dict name)
        self.module_paths: dict = {}
        self.stack: list = []       # (path, type name) of the modules being called
        self.counts: dict = {}
        self.paused = 0
        self.dynamic: set = set()   # id(Value) of values that depend on the traced inputs

    def _fresh(self, base: str) -> str:
        k = self.counts.get(base, 0)
        self.counts[base] = k + 1
        return f"{base}_{k}"

    def bind(self, t: Tensor, v: Value) -> Value:
        self.by_tensor[id(t)] = v
        self.by_array[id(t._data)] = v
        self.keep.append(t)
        return v

    def value_of(self, t: Tensor) -> Value:
        v = self.by_tensor.get(id(t))
        if v is not None:
            return v
        kind, name = self.state_names.get(id(t), ("const", None))
        if name is None:
            same = self.by_array.get(id(t._data))
            if same is not None and same.kind != "const":
                # t.detach() / t.data: the same array cut from the graph, recorded as such
                node = self.add_node("detach", _detach, [same], [None], (), {}, t, leaf=True)
                return node.outputs[0]
            base = getattr(t._data, "base", None)
            if base is not None and (self.traced_array(base) or self.traced_array(
                    getattr(base, "base", None))):
                raise TraceError(
                    f"a tensor of shape {t.shape} viewing traced data was made outside the "
                    f"recorded ops (from raw arrays) and used at {user_line()}; a trace would "
                    "freeze its contents. Use tensor ops for it")
            name = self._fresh("const")
        return self.bind(t, Value(name, t._data.shape, t._data.dtype, kind, tensor=t))

    def traced_array(self, a) -> bool:
        v = self.by_array.get(id(a)) if a is not None else None
        return v is not None and id(v) in self.dynamic

    def traced(self, t) -> Value | None:
        """The value of ``t`` if it depends on the traced inputs, else None."""
        v = self.by_tensor.get(id(t)) if isinstance(t, Tensor) else None
        return v if v is not None and id(v) in self.dynamic else None

    def refuse(self, op, t):
        v = self.traced(t)
        if v is not None:
            raise TraceError(
                f"{op} on traced tensor %{v.name} ({v.dtype.name}{list(v.shape)}) at "
                f"{user_line()}: its result's shape depends on the data, which a graph "
                "cannot hold; use a mask (sd.where) or run this part eagerly")

    def where(self):
        return self.stack[-1] if self.stack else ("", "")

    def add_node(self, op, function, inputs, keys, arrays, attrs, out, leaf=False):
        module, mtype = self.where()
        node = Node(self._fresh(op), op, function, inputs, attrs, input_keys=keys,
                    array_keys=arrays, leaf=leaf, multi=isinstance(out, tuple),
                    module=module, module_type=mtype, source=user_line())
        outs = out if isinstance(out, tuple) else (out,)
        dynamic = any(id(v) in self.dynamic for v in inputs)
        for i, t in enumerate(outs):
            name = node.name if len(outs) == 1 else f"{node.name}.{i}"
            v = self.bind(t, Value(name, t._data.shape, t._data.dtype, "node", node, i))
            node.outputs.append(v)
            if dynamic:
                self.dynamic.add(id(v))
        self.graph.append(node)
        return node

    def split_args(self, op, items):
        """``(key, value)`` pairs -> tensor inputs, their keys, raw-array keys, attrs."""
        inputs, keys, arrays, attrs = [], [], [], {}
        devices = set()
        for key, a in items:
            if isinstance(a, Tensor):
                inputs.append(self.value_of(a))
                keys.append(key)
                devices.add(device_of(a._data))
            elif isinstance(a, np.ndarray) and id(a) in self.by_array:
                inputs.append(self.by_array[id(a)])
                keys.append(key)
                arrays.append(key)
            else:
                attrs[key] = a
        if len(devices) > 1:
            names = ", ".join(sorted(map(str, devices)))
            raise TraceError(f"{op}: inputs on different devices ({names}) at {user_line()}; "
                             "move them to one device with .to(device) first")
        return inputs, keys, arrays, attrs

    # -------------------------------------------------------------- hooks
    def apply(self, cls, inputs, params):
        op = op_name(cls)
        ins, keys, arrays, attrs = self.split_args(
            op, [(None, t) for t in inputs] + list(params.items()))
        self.paused += 1
        try:
            out = _orig_apply.__func__(cls, *inputs, **params)
        finally:
            self.paused -= 1
        self.add_node(op, cls, ins, keys, arrays, attrs, out)
        return out

    def leaf_call(self, op, fn, args, kwargs):
        if callable(op):
            op = op(*args, **kwargs)
        bound = inspect.signature(fn).bind(*args, **kwargs)
        items = []
        for name, a in bound.arguments.items():
            p = bound.signature.parameters[name]
            if p.kind is p.VAR_POSITIONAL:
                items += [(None, x) for x in a]
            elif p.kind is p.VAR_KEYWORD:
                items += list(a.items())
            else:
                items.append((None if p.kind is p.POSITIONAL_ONLY else name, a))
        ins, keys, arrays, attrs = self.split_args(op, items)
        self.paused += 1
        try:
            out = fn(*args, **kwargs)
        finally:
            self.paused -= 1
        outs = out if isinstance(out, tuple) else (out,)
        if not all(isinstance(t, Tensor) for t in outs):
            raise TraceError(f"{op}: a leaf op returned a non-tensor at {user_line()}")
        if len(outs) == 1 and id(out) in self.by_tensor:
            return out  # an identity (dropout in eval mode): nothing to record
        self.add_node(op, fn, ins, keys, arrays, attrs, out, leaf=True)
        return out


def _detach(input):
    """The replay of ``t.detach()``."""
    return input.detach()


# ---------------------------------------------------------------------- swapping hooks in
_orig_apply = Function.__dict__["apply"]
_orig_call = Module.__call__
_lock = threading.Lock()
_active = 0
_SAVED: dict = {}


def _traced_apply(cls, *inputs, **params):
    tracer = tracing._local.__dict__.get("tracer")
    if tracer is None or tracer.paused:
        return _orig_apply.__func__(cls, *inputs, **params)
    return tracer.apply(cls, inputs, params)


def _traced_call(self, *args, **kwargs):
    tracer = tracing._local.__dict__.get("tracer")
    if tracer is None or tracer.paused:
        return _orig_call(self, *args, **kwargs)
    path = tracer.module_paths.get(id(self))
    if path is None:
        parent = tracer.stack[-1][0] if tracer.stack else ""
        path = (parent + "." if parent else "") + type(self).__name__
    tracer.stack.append((path, type(self).__name__))
    try:
        return _orig_call(self, *args, **kwargs)
    finally:
        tracer.stack.pop()


def _refuse(method, what):
    orig = getattr(Tensor, method)

    def guarded(self, *args, **kwargs):
        tracer = tracing._local.__dict__.get("tracer")
        if tracer is not None and not tracer.paused:
            v = tracer.traced(self)
            if v is not None:
                raise TraceError(
                    f"{what} on traced tensor %{v.name} ({v.dtype.name}{list(v.shape)}) at "
                    f"{user_line()}: the value depends on the traced inputs, so a trace cannot "
                    "specialise on it. Keep the computation in tensor ops (sd.where instead "
                    "of if, masks instead of indexing by data), or run this part eagerly")
        return orig(self, *args, **kwargs)
    guarded.__name__ = method
    return orig, guarded


_REFUSED = {"__bool__": "bool() (a Python branch on tensor data)", "item": ".item()",
            "numpy": ".numpy()", "tolist": ".tolist()", "__float__": "float()",
            "__int__": "int()", "__index__": "using a tensor as a Python index",
            "__array__": "converting to a NumPy array"}


def _inplace_traced(orig):
    def method(self, fn, *others, op=None):
        tracer = tracing._local.__dict__.get("tracer")
        if tracer is None or tracer.paused or tracer.traced(self) is None:
            return orig(self, fn, *others, op=op)
        # graph values are never overwritten: record the out-of-place op and let the
        # tensor object stand for its result from here on
        new = fn(self, *others)
        self._data, self.grad_fn, self._out_idx = new._data, new.grad_fn, new._out_idx
        self.requires_grad = new.requires_grad
        self._version[0] += 1
        tracer.bind(self, tracer.by_tensor[id(new)])
        return self
    return method


def _arith_traced(orig):
    def method(self, ufunc, fn, other, op=None):
        tracer = tracing._local.__dict__.get("tracer")
        if tracer is None or tracer.paused or tracer.traced(self) is None:
            return orig(self, ufunc, fn, other, op=op)
        return Tensor._inplace(self, fn, other, op=op)
    return method


def _install():
    global _active
    with _lock:
        if _active == 0:
            _SAVED["apply"] = Function.__dict__["apply"]
            Function.apply = classmethod(_traced_apply)
            Module.__call__ = _traced_call
            for m, what in _REFUSED.items():
                orig, guarded = _refuse(m, what)
                _SAVED[m] = orig
                setattr(Tensor, m, guarded)
            for m, wrap in (("_inplace", _inplace_traced), ("_arith_", _arith_traced)):
                _SAVED[m] = Tensor.__dict__[m]
                setattr(Tensor, m, wrap(_SAVED[m]))
        _active += 1


def _uninstall():
    global _active
    with _lock:
        _active -= 1
        if _active == 0:
            Function.apply = _SAVED.pop("apply")
            Module.__call__ = _orig_call
            for m in list(_SAVED):
                setattr(Tensor, m, _SAVED.pop(m))


# ---------------------------------------------------------------------- trace()
def _flatten(obj, where):
    """Structure spec of a returned object, the tensors found, in order."""
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(_flatten(o, where) for o in obj)
    if isinstance(obj, dict):
        return {k: _flatten(o, where) for k, o in obj.items()}
    raise TraceError(f"{where}: the traced function returned a {type(obj).__name__} "
                     f"({obj!r:.60}); a traced function must return tensors (or tuples, "
                     "lists, dicts of tensors). Return it as a tensor (sd.tensor(...)) or "
                     "compute it outside the traced function")


def _spec_map(spec, f):
    if isinstance(spec, (tuple, list)):
        return type(spec)(_spec_map(s, f) for s in spec)
    if isinstance(spec, dict):
        return {k: _spec_map(s, f) for k, s in spec.items()}
    return f(spec)


def _arg_names(fn, n):
    target = fn.forward if isinstance(fn, Module) else fn
    try:
        params = [p.name for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"input_{i}" for i in range(n)]


def record(fn, example_inputs) -> Graph:
    """Run ``fn(*example_inputs)`` once and return the recorded ``Graph``."""
    if isinstance(example_inputs, Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    for i, a in enumerate(example_inputs):
        if not isinstance(a, Tensor):
            raise TraceError(f"trace: example input {i} is a {type(a).__name__}; pass tensors "
                             "(bind other arguments with functools.partial or a lambda)")
    names = {}
    if isinstance(fn, Module):
        names.update({id(t): ("param", n) for n, t in fn.named_parameters()})
        names.update({id(t): ("buffer", n) for n, t in fn.named_buffers()})
    tracer = Tracer(names)
    recording = _State.enabled  # (the graph's grad_inputs: will it have a backward?)
    if isinstance(fn, Module):
        tracer.module_paths = {id(m): n for n, m in fn.named_modules()}
        tracer.module_paths[id(fn)] = ""
    if tracing._local.__dict__.get("tracer") is not None:
        raise TraceError("trace: already tracing on this thread (nested traces are not "
                         "supported)")
    # fresh tensor objects for the inputs, so that an input passed twice is two inputs
    ins = [Tensor._wrap(a._data) for a in example_inputs]
    for t, a, nm in zip(ins, example_inputs, _arg_names(fn, len(ins))):
        t.requires_grad = a.requires_grad
        tracer.dynamic.add(id(tracer.bind(t, Value(nm, a._data.shape, a._data.dtype, "input"))))
    tracer.graph.inputs = [tracer.by_tensor[id(t)] for t in ins]
    _install()
    tracing._local.tracer = tracer
    try:
        out = fn(*ins)
        spec = _flatten(out, getattr(fn, "__name__", type(fn).__name__))
    finally:
        tracing._local.tracer = None
        _uninstall()
    g = tracer.graph
    if recording:
        g.grad_inputs = tuple(a.requires_grad for a in example_inputs)
    g.output_spec = _spec_map(spec, tracer.value_of)
    outs = []
    _spec_map(g.output_spec, outs.append)
    g.outputs = outs
    return g
