"""``Function``: the base of every differentiable primitive.

A primitive is a subclass with three static methods on raw backend arrays, side by side:

* ``forward(ctx, *arrays, **params)`` computes the output (or a tuple of outputs) and keeps
  in ``ctx`` what the derivatives need (``ctx.save_for_backward(...)`` for arrays that an
  in-place write could corrupt, plain attributes for shapes and parameters);
* ``backward(ctx, *grads)`` returns one gradient per tensor input (``None`` where an input
  needs none: ``ctx.needs_input_grad`` says which);
* ``jvp(ctx, *tangents)`` pushes input tangents (``None`` meaning zero) to output tangents,
  which is what forward mode needs.

For ``create_graph=True`` (double backward) the engine needs a backward that is itself
recorded. An op gives it one of two ways:

* ``linear_backward = True``: its backward is linear in the incoming gradient and reads the
  inputs only through constants (shapes, masks, indices, signs), as for add, reshape, sum,
  relu, max pooling. The engine then records the raw ``backward`` as one node whose own
  backward is the op's ``jvp`` (the adjoint of a linear map's transpose), so these ops keep
  their fast array rules at every order;
* ``backward_graph(ctx, *grads)``: the same formula as ``backward`` written with Tensor
  ops on Tensor gradients; ``ctx.input_tensor(i, array)`` and ``ctx.output_tensor(array)``
  turn saved arrays back into tensors that are connected to the graph;
* ``forward_graph(ctx)`` (for fused ops whose backward is long): returns ``(inputs, fn)``,
  the inputs as graph tensors and ``fn`` recomputing the output from them with Tensor ops;
  the engine differentiates that. An input array the derivatives do not depend on (a
  bias, a shift that normalisation removes) may be a stand-in of the right shape.

An op with neither makes ``create_graph=True`` raise, naming the op.

``Function.apply(*tensors, **params)`` runs ``forward`` and, when recording, turns the
``ctx`` instance itself into the graph node: it remembers where each input's gradient must
go (``next``) and which version of each saved array it saw. For a forward that returns a
tuple it also records ``ctx.out_meta`` (shape, dtype, array module of each output), so the
engine can pass zeros for outputs that receive no gradient; ``backward`` always gets one
gradient per output.

>>> import numpy as np
>>> import shendu as sd
>>> class Halves(sd.autograd.Function):
...     @staticmethod
...     def forward(ctx, a):
...         return a[:2] * 2, a[2:] * 3
...     @staticmethod
...     def backward(ctx, g_lo, g_hi):
...         return np.concatenate([g_lo * 2, g_hi * 3])
>>> x = sd.ones(4, requires_grad=True)
>>> lo, hi = Halves.apply(x)
>>> hi.sum().backward()
>>> x.grad
tensor([0., 0., 3., 3.])
"""
from __future__ import annotations

from ..backend import get_array_module
from .grad_mode import _State


class Function:
    __slots__ = ("next", "needs_input_grad", "n_out", "__dict__")

    # ------------------------------------------------------------------ to override
    @staticmethod
    def forward(ctx, *arrays, **params):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError(f"{type(ctx).__name__} has no backward rule")

    @staticmethod
    def jvp(ctx, *tangents):
        raise NotImplementedError(f"{type(ctx).__name__} has no forward-mode (jvp) rule")

    # ------------------------------------------------------------------ create_graph rules
    linear_backward = False
    backward_graph = None
    forward_graph = None

    # ------------------------------------------------------------------ ctx helpers
    def input_tensor(self, i, array):
        """Input ``i`` as a tensor over ``array`` (the saved input array), connected to the
        graph as the input was: the leaf itself, its producer's output, or a constant."""
        e = self.next[i]
        if e is None:
            return _make(array)
        if e.__class__ is tuple:
            return _make(array, e[0], e[1])
        return e  # a leaf: the very tensor, so gradients reaching it are captured

    def output_tensor(self, array, i=0):
        """Output ``i`` of this node as a tensor over ``array`` (a saved output array)."""
        return _make(array, self, i)

    def save_for_backward(self, *arrays):
        self.saved = arrays

    @property
    def saved_tensors(self):
        versions = self.__dict__.get("versions")
        if versions:
            for counter, seen, shape in versions:
                if counter[0] != seen:
                    raise RuntimeError(
                        f"{type(self).__name__}Backward: an array of shape {shape} that backward "
                        f"needs was modified in place after it was used (version {counter[0]}, "
                        f"expected {seen}); use an out-of-place op (x = x + 1, not x += 1) or "
                        "clone() the tensor before modifying it"
                    )
        try:
            return self.saved
        except AttributeError:
            self._raise_freed()

    def _raise_freed(self):
        raise RuntimeError(
            f"{type(self).__name__}Backward: trying to backward through the graph a second time "
            "(its saved arrays were freed by the first backward); pass retain_graph=True to "
            "the first backward() if you need to differentiate the same graph again"
        )

    def release(self):
        """Drop what forward saved, once backward no longer needs it; a later backward
        through this node then raises instead of reading freed arrays.

        The reverse sweep inlines this (one call less per node), so subclasses must not
        override it: an op that wants a buffer back should hand it back in ``backward``.
        """
        d = self.__dict__
        if d:
            d.clear()
            d["backward"] = _freed_backward

    @property
    def name(self) -> str:
        return type(self).__name__ + "Backward"

    def __repr__(self):
        return f"<{self.name}>"

    # ------------------------------------------------------------------ the call
    @classmethod
    def apply(cls, *inputs, **params):
        ctx = _new(cls)
        record = False
        n = len(inputs)
        if _State.enabled:
            # Where each input's gradient must go: its producer node, the leaf itself, or
            # nowhere. Computed before forward so forward can skip saving unneeded arrays.
            # (A tensor with a grad_fn always requires grad. One and two inputs, the
            # common cases, are unrolled: a tiny op's cost is all this bookkeeping.)
            if n == 2:
                a, b = inputs
                if a.requires_grad or b.requires_grad:
                    record = True
                    fa, fb = a.grad_fn, b.grad_fn
                    ctx.next = ((fa, a._out_idx) if fa is not None else
                                a if a.requires_grad else None,
                                (fb, b._out_idx) if fb is not None else
                                b if b.requires_grad else None)
                    ctx.needs_input_grad = (a.requires_grad, b.requires_grad)
            elif n == 1:
                a = inputs[0]
                if a.requires_grad:
                    record = True
                    fa = a.grad_fn
                    ctx.next = ((fa, a._out_idx) if fa is not None else a,)
                    ctx.needs_input_grad = (True,)
            else:
                nxt, needs = [], []
                for t in inputs:
                    fn = t.grad_fn
                    if fn is not None:
                        nxt.append((fn, t._out_idx))
                        needs.append(True)
                        record = True
                    elif t.requires_grad:
                        nxt.append(t)
                        needs.append(True)
                        record = True
                    else:
                        nxt.append(None)
                        needs.append(False)
                if record:
                    ctx.next = tuple(nxt)
                    ctx.needs_input_grad = tuple(needs)
        try:
            if n == 2:
                out = cls.forward(ctx, inputs[0]._data, inputs[1]._data, **params)
            elif n == 1:
                out = cls.forward(ctx, inputs[0]._data, **params)
            else:
                out = cls.forward(ctx, *[t._data for t in inputs], **params)
        except (TypeError, ValueError):
            _check_one_device(cls.__name__, inputs, params)  # a clearer error, if that was it
            raise
        if not record:
            if out.__class__ is tuple:
                return tuple([_make(o) for o in out])
            return _make(out)
        if out.__class__ is tuple:
            ctx.n_out = len(out)
            outs = tuple([_make(o, ctx, i) for i, o in enumerate(out)])
            if "out_meta" not in ctx.__dict__:
                # what the engine needs to stand in zeros for an output that gets no gradient
                ctx.out_meta = [(o.shape, o.dtype, get_array_module(o)) for o in out]
        else:
            ctx.n_out = 1
            outs = _make(out, ctx, 0)
        saved = ctx.__dict__.get("saved")
        if saved:
            ctx.versions = _versions_of(saved, inputs, outs)
        return outs


def _check_one_device(op, inputs, params):
    """Raise a clear error when an op's tensors (or array parameters) live on different
    devices: CuPy refuses to mix them with a TypeError that names neither."""
    import numpy as np

    from ..backend import cuda, device_of

    kinds = (np.ndarray,) if cuda.ndarray_type is None else (np.ndarray, cuda.ndarray_type)
    arrays = [t._data for t in inputs]
    for v in params.values():
        arrays.extend(v if isinstance(v, tuple) else (v,))
    devices = []
    for a in arrays:
        a = getattr(a, "_data", a)  # a Tensor passed as a parameter
        if isinstance(a, kinds):
            d = device_of(a)
            if d not in devices:
                devices.append(d)
    if len(devices) > 1:
        from ..errors import DeviceError

        raise DeviceError(f"{op}: expected all tensors on the same device, got "
                          f"{' and '.join(map(str, devices))}")


def _freed_backward(ctx, *grads):
    ctx._raise_freed()


def _versions_of(saved, inputs, outs):
    """The (counter, version, shape) of every saved array that belongs to a tensor."""
    tensors = inputs + (outs if type(outs) is tuple else (outs,))
    found = []
    for a in saved:
        for t in tensors:
            if t._data is a:
                found.append((t._version, t._version[0], a.shape))
                break
    return found


_new = object.__new__
_make = None  # set by shendu.tensor (avoids a circular import)
