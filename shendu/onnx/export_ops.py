"""One exporter per traced primitive: ``EXPORTERS[op](builder, node)`` emits ONNX nodes.

``node`` is a ``shendu.jit`` Node (op, inputs, attrs, outputs); the builder names values,
adds initializers and nodes. Shapes seen while tracing are static; with ``dynamic_axes``
a Reshape keeps the input's leading sizes symbolic (0 = copy that size).
"""
from __future__ import annotations

import numpy as np

from .export import host

EXPORTERS: dict = {}


def exporter(*ops):
    def wrap(fn):
        for op in ops:
            EXPORTERS[op] = fn
        return fn
    return wrap


def _in(node, key=None, index=0):
    """The traced input passed as keyword ``key``, or the ``index``-th positional one."""
    if key is not None:
        for v, k in zip(node.inputs, node.input_keys):
            if k == key:
                return v
        return None
    pos = [v for v, k in zip(node.inputs, node.input_keys) if k is None]
    return pos[index] if index < len(pos) else None


def _pos(node):
    return [v for v, k in zip(node.inputs, node.input_keys) if k is None]


def _emit(b, node, op_type, inputs, **attrs):
    """An ONNX node whose single output is the traced node's output (an Identity just
    renames: the traced output is the ONNX value already made)."""
    if op_type == "Identity":
        b.names[id(node.outputs[0])] = inputs[0]
        return
    out = node.outputs[0].name
    b.add(op_type, inputs, outputs=[out], **attrs)
    b.bind(node.outputs[0], out)


def _scalar(b, value, dtype):
    return b.const(np.asarray(value, dtype=dtype), "scalar")


def _dtype(v):
    return np.dtype(v.dtype)


# ------------------------------------------------------------------ elementwise
_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "log": "Log",
          "sqrt": "Sqrt", "abs": "Abs", "neg": "Neg", "erf": "Erf", "sin": "Sin", "cos": "Cos",
          "reciprocal": "Reciprocal", "floor": "Floor", "ceil": "Ceil", "copy": "Identity",
          "sign": "Sign"}
for _op, _onnx in _UNARY.items():
    EXPORTERS[_op] = lambda b, node, _t=_onnx: _emit(b, node, _t, [b.name(_in(node))])

_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
           "maximum": "Max", "minimum": "Min", "matmul": "MatMul"}
for _op, _onnx in _BINARY.items():
    EXPORTERS[_op] = lambda b, node, _t=_onnx: _emit(
        b, node, _t, [b.name(v) for v in _pos(node)[:2]])

_SCALAR = {"add_scalar": ("Add", False), "mul_scalar": ("Mul", False),
           "pow_scalar": ("Pow", False), "r_sub_scalar": ("Sub", True),
           "r_div_scalar": ("Div", True), "r_pow_scalar": ("Pow", True)}


@exporter(*_SCALAR)
def _scalar_op(b, node):
    op, reverse = _SCALAR[node.op]
    x = _in(node)
    c = _scalar(b, node.attrs["c"], _dtype(x))
    _emit(b, node, op, [c, b.name(x)] if reverse else [b.name(x), c])


@exporter("rsqrt")
def _rsqrt(b, node):
    _emit(b, node, "Reciprocal", [b.add("Sqrt", [b.name(_in(node))])])


@exporter("leaky_relu")
def _leaky_relu(b, node):
    _emit(b, node, "LeakyRelu", [b.name(_in(node))], alpha=float(node.attrs["negative_slope"]))


@exporter("elu")
def _elu(b, node):
    _emit(b, node, "Elu", [b.name(_in(node))], alpha=float(node.attrs["alpha"]))


@exporter("gelu")
def _gelu(b, node):
    x = _in(node)
    xn, dt = b.name(x), _dtype(x)
    approximate = node.attrs.get("approximate", "none")
    if b.opset >= 20:
        return _emit(b, node, "Gelu", [xn], approximate=approximate)
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = b.add("Mul", [b.add("Mul", [xn, xn]), xn])
        inner = b.add("Add", [xn, b.add("Mul", [cube, _scalar(b, 0.044715, dt)])])
        t = b.add("Tanh", [b.add("Mul", [inner, _scalar(b, np.sqrt(2 / np.pi), dt)])])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = b.add("Erf", [b.add("Mul", [xn, _scalar(b, 1 / np.sqrt(2), dt)])])
    half = b.add("Mul", [xn, _scalar(b, 0.5, dt)])
    _emit(b, node, "Mul", [half, b.add("Add", [t, _scalar(b, 1.0, dt)])])


@exporter("softplus")
def _softplus(b, node):
    x = _in(node)
    beta = float(node.attrs.get("beta", 1.0))
    if beta == 1.0:
        return _emit(b, node, "Softplus", [b.name(x)])
    scaled = b.add("Mul", [b.name(x), _scalar(b, beta, _dtype(x))])
    _emit(b, node, "Div", [b.add("Softplus", [scaled]), _scalar(b, beta, _dtype(x))])


@exporter("clamp")
def _clamp(b, node):
    x = _in(node)
    lo, hi = node.attrs.get("lo"), node.attrs.get("hi")
    ins = [b.name(x), "" if lo is None else _scalar(b, lo, _dtype(x)),
           "" if hi is None else _scalar(b, hi, _dtype(x))]
    while ins[-1] == "":
        ins.pop()
    _emit(b, node, "Clip", ins)


@exporter("where")
def _where(b, node):
    a, c = _pos(node)[:2]
    cond = _in(node, "cond")
    cn = b.name(cond) if cond is not None else b.const(np.asarray(node.attrs["cond"], bool))
    _emit(b, node, "Where", [cn, b.name(a), b.name(c)])


@exporter("cast")
def _cast(b, node):
    from ._proto import onnx_elem_type

    _emit(b, node, "Cast", [b.name(_in(node))], to=onnx_elem_type(node.attrs["dtype"]))


# ------------------------------------------------------------------ reductions, softmax
_REDUCE = {"sum": ("ReduceSum", 13), "mean": ("ReduceMean", 18), "prod": ("ReduceProd", 18)}


def _reduce(b, node, op_type, axes_input_since):
    x = _in(node)
    axes = node.attrs.get("axes")
    axes = list(range(len(x.shape))) if axes is None else [int(a) for a in np.atleast_1d(axes)]
    keep = int(bool(node.attrs.get("keepdims", False)))
    if b.opset >= axes_input_since:
        _emit(b, node, op_type, [b.name(x), b.ints(axes, "axes")], keepdims=keep)
    else:
        _emit(b, node, op_type, [b.name(x)], axes=axes, keepdims=keep)


@exporter(*_REDUCE)
def _reduce_op(b, node):
    _reduce(b, node, *_REDUCE[node.op])


@exporter("amax")
def _amax(b, node):
    _reduce(b, node, "ReduceMax" if node.attrs.get("largest", True) else "ReduceMin", 18)


@exporter("softmax", "log_softmax")
def _softmax(b, node):
    _emit(b, node, "Softmax" if node.op == "softmax" else "LogSoftmax", [b.name(_in(node))],
          axis=int(node.attrs["axis"]))


# ------------------------------------------------------------------ movement
@exporter("reshape")
def _reshape(b, node):
    x = _in(node)
    target = list(node.attrs["shape"])
    if b.dynamic:  # keep the leading sizes the input shares symbolic (0 = copy)
        for i, (s, t) in enumerate(zip(x.shape, target)):
            if s != t:
                break
            target[i] = 0
    _emit(b, node, "Reshape", [b.name(x), b.ints(target)])


@exporter("permute")
def _permute(b, node):
    _emit(b, node, "Transpose", [b.name(_in(node))], perm=[int(d) for d in node.attrs["dims"]])


@exporter("expand")
def _expand(b, node):
    _emit(b, node, "Expand", [b.name(_in(node)), b.ints(node.attrs["shape"])])


@exporter("tile")
def _tile(b, node):
    _emit(b, node, "Tile", [b.name(_in(node)), b.ints(node.attrs["reps"])])


@exporter("cat")
def _cat(b, node):
    _emit(b, node, "Concat", [b.name(v) for v in _pos(node)], axis=int(node.attrs["axis"]))


@exporter("stack")
def _stack(b, node):
    axis = int(node.attrs["axis"])
    parts = [b.add("Unsqueeze", [b.name(v), b.ints([axis], "axes")]) for v in _pos(node)]
    _emit(b, node, "Concat", parts, axis=axis)


@exporter("flip")
def _flip(b, node):
    axes = [int(a) for a in node.attrs["axes"]]
    big = np.iinfo(np.int64).max
    _emit(b, node, "Slice", [b.name(_in(node)), b.ints([-1] * len(axes)),
                             b.ints([-big] * len(axes)), b.ints(axes), b.ints([-1] * len(axes))])


@exporter("pad")
def _pad(b, node):
    x = _in(node)
    width = node.attrs["width"]
    mode = {"constant": "constant", "reflect": "reflect", "edge": "edge",
            "wrap": "wrap"}[node.attrs["mode"]]
    pads = [int(lo) for lo, _ in width] + [int(hi) for _, hi in width]
    ins = [b.name(x), b.ints(pads, "pads")]
    if mode == "constant":
        ins.append(_scalar(b, node.attrs.get("value", 0), _dtype(x)))
    _emit(b, node, "Pad", ins, mode=mode)


@exporter("split")
def _split(b, node):
    outs = [o.name for o in node.outputs]
    b.add("Split", [b.name(_in(node)), b.ints(node.attrs["sizes"], "split")], outputs=outs,
          axis=int(node.attrs["axis"]))
    for o, name in zip(node.outputs, outs):
        b.bind(o, name)


@exporter("scaled_dot_product_attention")
def _attention(b, node):
    """``Softmax(q k^T * scale + mask) v`` (a causal mask as a constant of 0 and -inf)."""
    q, k, v = _pos(node)[:3]
    dt, rank = _dtype(q), len(q.shape)
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    kt = b.add("Transpose", [b.name(k)], perm=perm)
    s = b.add("Mul", [b.add("MatMul", [b.name(q), kt]), _scalar(b, node.attrs["scale"], dt)])
    lq, lk = q.shape[-2], k.shape[-2]
    masks = [] if node.attrs["mask"] is None else [np.asarray(host(node.attrs["mask"]), dt)]
    if node.attrs["causal"]:
        masks.append(np.where(np.tril(np.ones((lq, lk), bool)), 0, -np.inf).astype(dt))
    for m in masks:
        s = b.add("Add", [s, b.const(m, "attn_mask")])
    _emit(b, node, "MatMul", [b.add("Softmax", [s], axis=-1), b.name(v)])


@exporter("get_item")
def _get_item(b, node):
    """Basic indexing (ints, slices, None, ...) as Slice/Squeeze/Unsqueeze; one index
    array on one axis as Gather."""
    x = _in(node)
    index = node.attrs["index"]
    index = index if isinstance(index, tuple) else (index,)
    ndim = len(x.shape)
    n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
    expanded = []
    for i in index:
        if i is Ellipsis:
            expanded += [slice(None)] * (ndim - n_real)
        else:
            expanded.append(i)
    name = b.name(x)
    starts, ends, axes, steps, squeeze, unsqueeze, gathers = [], [], [], [], [], [], []
    axis = 0
    out_axis = 0
    for i in expanded:
        if i is None:
            unsqueeze.append(out_axis)
            out_axis += 1
            continue
        if isinstance(i, (int, np.integer)):
            k = int(i) + (x.shape[axis] if i < 0 else 0)
            starts.append(k)
            ends.append(k + 1)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        elif isinstance(i, slice):
            if i != slice(None):
                s, e, st = i.indices(x.shape[axis])
                if st < 0 and e < 0:
                    e = -np.iinfo(np.int64).max
                starts.append(s)
                ends.append(e)
                axes.append(axis)
                steps.append(st)
            out_axis += 1
        else:
            gathers.append((axis, np.asarray(i._data if hasattr(i, "_data") else i)))
            out_axis += 1
        axis += 1
    if len(gathers) > 1:
        raise NotImplementedError(f"onnx.export: indexing with {len(gathers)} index arrays "
                                  f"(node {node.name}, {node.source}) has no conversion")
    if starts:
        name = b.add("Slice", [name, b.ints(starts), b.ints(ends), b.ints(axes), b.ints(steps)])
    if gathers:
        ax, idx = gathers[0]
        name = b.add("Gather", [name, b.const(idx.astype(np.int64), "index")], axis=ax)
        squeeze = [s if s < ax else s + idx.ndim - 1 for s in squeeze]
    if squeeze:
        name = b.add("Squeeze", [name, b.ints(squeeze, "axes")])
    if unsqueeze:
        name = b.add("Unsqueeze", [name, b.ints(unsqueeze, "axes")])
    _emit(b, node, "Identity", [name])


@exporter("index_select")
def _index_select(b, node):
    x, idx = _in(node), _in(node, "index")
    iname = b.name(idx) if idx is not None else b.const(
        np.asarray(node.attrs["index"], np.int64), "index")
    _emit(b, node, "Gather", [b.name(x), iname], axis=int(node.attrs["axis"]))


@exporter("embedding")
def _embedding(b, node):
    w = _in(node)
    idx = _in(node, "idx")
    iname = b.name(idx) if idx is not None else b.const(np.asarray(node.attrs["idx"]), "idx")
    _emit(b, node, "Gather", [b.name(w), iname], axis=0)


@exporter("einsum")
def _einsum(b, node):
    eq = ",".join(node.attrs["ins"]) + "->" + node.attrs["out"]
    _emit(b, node, "Einsum", [b.name(v) for v in _pos(node)], equation=eq)


# ------------------------------------------------------------------ layers
@exporter("linear", "linear_relu")
def _linear(b, node):
    x, w, *bias = _pos(node)
    if len(x.shape) == 2:
        y = b.add("Gemm", [b.name(x), b.name(w)] + [b.name(v) for v in bias], transB=1)
    else:
        y = b.add("MatMul", [b.name(x), b.add("Transpose", [b.name(w)], perm=[1, 0])])
        if bias:
            y = b.add("Add", [y, b.name(bias[0])])
    _emit(b, node, "Relu" if node.op == "linear_relu" else "Identity", [y])


def _pads(pads):
    """((top, bottom), (left, right)) -> ONNX's [top, left, bottom, right]."""
    return [int(p[0]) for p in pads] + [int(p[1]) for p in pads]


@exporter("conv2d")
def _conv2d(b, node):
    x, w, *bias = _pos(node)
    a = node.attrs
    y = b.add("Conv", [b.name(x), b.name(w)] + [b.name(v) for v in bias],
              strides=list(a["stride"]), pads=_pads(a["pads"]), dilations=list(a["dilation"]),
              group=int(a["groups"]), kernel_shape=list(w.shape[2:]))
    _emit(b, node, "Relu" if a.get("relu") else "Identity", [y])


@exporter("conv_transpose2d")
def _conv_transpose2d(b, node):
    x, w, *bias = _pos(node)
    a = node.attrs
    pads = _pads(a["pads"])
    full = [(x.shape[2 + i] - 1) * a["stride"][i] + a["dilation"][i] * (w.shape[2 + i] - 1) + 1
            - pads[i] - pads[i + 2] for i in range(2)]
    out_pad = [int(o - f) for o, f in zip(a["out_hw"], full)]
    _emit(b, node, "ConvTranspose", [b.name(x), b.name(w)] + [b.name(v) for v in bias],
          strides=list(a["stride"]), pads=pads, dilations=list(a["dilation"]),
          group=int(a["groups"]), output_padding=out_pad, kernel_shape=list(w.shape[2:]))


def _ceil_mode(x, k, stride, pad, dilation, out_hw):
    floor = [(x.shape[2 + i] + 2 * pad[i] - dilation[i] * (k[i] - 1) - 1) // stride[i] + 1
             for i in range(2)]
    return int(any(o > f for o, f in zip(out_hw, floor)))


@exporter("max_pool2d")
def _max_pool2d(b, node):
    x, a = _in(node), node.attrs
    k, s, p, d = a["k"], a["stride"], a["pad"], a["dilation"]
    _emit(b, node, "MaxPool", [b.name(x)], kernel_shape=list(k), strides=list(s),
          pads=list(p) * 2, dilations=list(d), ceil_mode=_ceil_mode(x, k, s, p, d, a["out_hw"]))


@exporter("repeat_nearest2d")
def _repeat_nearest2d(b, node):
    """``F.interpolate(mode='nearest')`` by whole factors, as the broadcast it is: Reshape
    to (N, C, H, 1, W, 1), Expand, Reshape (0 keeps N and C as they come)."""
    x, fh, fw = _in(node), node.attrs["fh"], node.attrs["fw"]
    h, w = x.shape[2:]
    split = b.add("Reshape", [b.name(x), b.ints([0, 0, h, 1, w, 1])])
    wide = b.add("Expand", [split, b.ints([1, 1, h, fh, w, fw])])
    _emit(b, node, "Reshape", [wide, b.ints([0, 0, h * fh, w * fw])])


@exporter("avg_pool2d")
def _avg_pool2d(b, node):
    x, a = _in(node), node.attrs
    if a.get("divisor_override"):
        raise NotImplementedError(f"onnx.export: avg_pool2d with divisor_override "
                                  f"({node.source}) has no ONNX form")
    k, s, p = a["k"], a["stride"], a["pad"]
    _emit(b, node, "AveragePool", [b.name(x)], kernel_shape=list(k), strides=list(s),
          pads=list(p) * 2, count_include_pad=int(bool(a["count_include_pad"])),
          ceil_mode=_ceil_mode(x, k, s, p, (1, 1), a["out_hw"]))


@exporter("adaptive_avg_pool2d", "adaptive_max_pool2d")
def _adaptive_pool(b, node):
    x, out_hw = _in(node), tuple(node.attrs["out_hw"])
    is_max = node.op == "adaptive_max_pool2d"
    if out_hw == (1, 1):
        return _emit(b, node, "GlobalMaxPool" if is_max else "GlobalAveragePool", [b.name(x)])
    hw = x.shape[2:]
    if not any(n % o for n, o in zip(hw, out_hw)):  # even windows: one pooling op
        k = [n // o for n, o in zip(hw, out_hw)]
        return _emit(b, node, "MaxPool" if is_max else "AveragePool", [b.name(x)],
                     kernel_shape=k, strides=k)
    # Uneven (or overlapping, or upsampling) windows: PyTorch's bins
    # [floor(i n / o), ceil((i + 1) n / o)), reduced one axis at a time and concatenated.
    name = b.name(x)
    reduce = "ReduceMax" if is_max else "ReduceMean"
    for axis, (n, o) in zip((2, 3), zip(hw, out_hw)):
        if n == o:
            continue
        parts = []
        for i in range(o):
            lo, hi = (i * n) // o, -(-((i + 1) * n) // o)
            piece = b.add("Slice", [name, b.ints([lo]), b.ints([hi]), b.ints([axis], "axes")])
            if b.opset >= 18:
                parts.append(b.add(reduce, [piece, b.ints([axis], "axes")], keepdims=1))
            else:
                parts.append(b.add(reduce, [piece], axes=[axis], keepdims=1))
        name = b.add("Concat", parts, axis=axis)
    _emit(b, node, "Identity", [name])


@exporter("batch_norm")
def _batch_norm(b, node):
    a = node.attrs
    if a.get("training"):
        raise NotImplementedError(f"onnx.export: batch_norm in training mode "
                                  f"({node.module}): export the model in eval mode")
    x = _in(node, "input") or _in(node)
    mean, var = _in(node, "running_mean"), _in(node, "running_var")
    w, bias = _in(node, "weight"), _in(node, "bias")
    c = x.shape[1]
    dt = _dtype(x)
    ins = [b.name(x),
           b.name(w) if w is not None else b.const(np.ones(c, dt), "bn_scale"),
           b.name(bias) if bias is not None else b.const(np.zeros(c, dt), "bn_bias"),
           b.name(mean), b.name(var)]
    # ONNX's momentum weights the running value, PyTorch's the batch (only used in training)
    _emit(b, node, "BatchNormalization", ins, epsilon=float(a.get("eps", 1e-5)),
          momentum=1.0 - float(a.get("momentum") or 0.1))


@exporter("layer_norm")
def _layer_norm(b, node):
    x, *wb = _pos(node)
    n_axes = int(node.attrs["n_axes"])
    shape, dt = x.shape[len(x.shape) - n_axes:], _dtype(x)
    w = b.name(wb[0]) if wb else b.const(np.ones(shape, dt), "ln_scale")
    bias = b.name(wb[1]) if len(wb) > 1 else b.const(np.zeros(shape, dt), "ln_bias")
    _emit(b, node, "LayerNormalization", [b.name(x), w, bias], axis=-n_axes,
          epsilon=float(node.attrs["eps"]))


# ------------------------------------------------------------------ recurrent layers
_GATES = {"lstm_layer": ("LSTM", [0, 3, 1, 2]),  # PyTorch i f g o -> ONNX i o f c
          "gru_layer": ("GRU", [1, 0, 2]),       # PyTorch r z n -> ONNX z r h
          "rnn_layer": ("RNN", [0])}


def _weight(v, order, node):
    if v.kind not in ("param", "buffer", "const"):
        raise NotImplementedError(f"onnx.export: {node.op} weights computed inside the "
                                  f"graph ({v.name}, {node.source}) have no conversion")
    w = host(v.tensor)
    chunks = np.split(w, len(order), axis=0)
    return np.concatenate([chunks[i] for i in order], axis=0)


def _zero_state(v):
    """Is ``v`` an all-zero initial state (ONNX's default; omitting it keeps batch free)?"""
    while v.kind == "node" and v.node.op == "get_item":
        v = v.node.inputs[0]
    return v.kind == "const" and not host(v.tensor).any()


@exporter(*_GATES)
def _recurrent(b, node):
    op_type, order = _GATES[node.op]
    ins = _pos(node)
    n_states = 2 if op_type == "LSTM" else 1
    x, states = ins[0], ins[1:1 + n_states]
    w_ih, w_hh = ins[1 + n_states], ins[2 + n_states]
    bias = ins[3 + n_states:5 + n_states] if node.attrs.get("bias", True) else []
    hidden = w_hh.shape[1]
    w = b.const(_weight(w_ih, order, node)[None], f"{op_type}_W")
    r = b.const(_weight(w_hh, order, node)[None], f"{op_type}_R")
    bn = ""
    if bias:
        bn = b.const(np.concatenate([_weight(bias[0], order, node),
                                     _weight(bias[1], order, node)])[None], f"{op_type}_B")
    init = []
    for s in states:
        init.append("" if _zero_state(s) else b.add("Unsqueeze", [b.name(s),
                                                                   b.ints([0], "axes")]))
    inputs = [b.name(x), w, r, bn, ""] + init
    while inputs[-1] == "":
        inputs.pop()
    attrs = {"hidden_size": int(hidden),
             "direction": "reverse" if node.attrs.get("reverse") else "forward"}
    if op_type == "GRU":
        attrs["linear_before_reset"] = 1  # PyTorch's GRU
    if op_type == "RNN":
        act = node.attrs.get("nonlinearity", "tanh")
        attrs["activations"] = ["Relu" if act == "relu" else "Tanh"]
    outs = b.add(op_type, inputs, n_outputs=1 + n_states, **attrs)
    y = b.add("Squeeze", [outs[0], b.ints([1], "axes")], outputs=[node.outputs[0].name])
    b.bind(node.outputs[0], y)
    for k in range(n_states):
        name = node.outputs[1 + k].name
        b.add("Squeeze", [outs[1 + k], b.ints([0], "axes")], outputs=[name])
        b.bind(node.outputs[1 + k], name)
