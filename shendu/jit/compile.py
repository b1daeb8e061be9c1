"""``sd.compile``: trace once per input signature, optimise the graph, run it.

The signature is the inputs' shapes, dtypes and ``requires_grad``, whether autograd is
recording, and the train/eval mode of every submodule (so dropout and batch norm follow
``model.train()``/``model.eval()``). Each signature is traced on its first call, passed
through ``passes.DEFAULT`` (and the memory plan), and cached.
"""
from __future__ import annotations

from ..autograd.grad_mode import _State
from ..nn.module import Module
from ..tensor import Tensor
from . import passes as _passes
from .module import Program
from .trace import TraceError, record


class CompiledFunction:
    """``fn`` (a function of tensors, or a module) run as optimised graphs; see
    ``sd.compile``. ``graphs`` maps each signature seen to its optimised graph."""

    def __init__(self, fn, passes=None):
        self.fn = fn
        self.passes = tuple(_passes.DEFAULT if passes is None else passes)
        self.graphs: dict = {}
        self._programs: dict = {}
        self._modules = list(fn.modules()) if isinstance(fn, Module) else []

    def signature(self, args) -> tuple:
        try:
            sig = tuple((a._data.shape, a._data.dtype, a.requires_grad) for a in args)
        except AttributeError:
            bad = next(a for a in args if not isinstance(a, Tensor))
            raise TraceError(f"compile: inputs must be tensors, got {type(bad).__name__} (bind "
                             "other arguments with functools.partial)") from None
        return sig, _State.enabled, tuple(m.training for m in self._modules)

    def optimise(self, graph):
        for p in self.passes:
            graph = p(graph)
        return _passes.plan_memory(graph)

    def __call__(self, *args):
        key = self.signature(args)
        prog = self._programs.get(key)
        if prog is None:
            graph = self.optimise(record(self.fn, args))
            self.graphs[key] = graph
            prog = self._programs[key] = Program(graph, arena=True)
        return prog.run(args)


class CompiledModule(Module):
    """A module whose calls run through ``CompiledFunction``; parameters, ``state_dict``,
    ``train()``/``eval()`` are the original module's (``_orig_mod``)."""

    def __init__(self, module: Module, passes=None):
        super().__init__()
        self._orig_mod = module
        self.__dict__["_compiled"] = CompiledFunction(module, passes)

    def forward(self, *args):
        return self._compiled(*args)

    @property
    def graphs(self) -> dict:
        return self._compiled.graphs

    def __repr__(self):
        return f"CompiledModule({self._orig_mod!r})"


def compile(model_or_fn, *, passes=None):  # noqa: A001 - PyTorch's name
    """Run ``model_or_fn`` as optimised graphs (``torch.compile``'s role).

    The first call with a new input signature (shapes, dtypes, ``requires_grad``, grad
    mode, train/eval mode) traces it (``sd.jit.trace``), runs the optimisation passes
    (dead code, constant folding, common subexpressions, Linear/Conv+ReLU fusion, Linear
    chains as one node in inference graphs, elementwise fusion, memory plan) and caches
    the result; later calls run the cached graph. Autograd works through it:
    ``loss.backward()`` reaches the parameters. Python control flow is fixed at trace time
    (see ``sd.jit.trace``).

    Args:
        model_or_fn: an ``nn.Module`` or a function of tensors.
        passes: the graph passes to run (default ``shendu.jit.passes.DEFAULT``).

    >>> import shendu as sd
    >>> net = sd.nn.Sequential(sd.nn.Linear(4, 8), sd.nn.ReLU(), sd.nn.Linear(8, 2))
    >>> fast = sd.compile(net)
    >>> x = sd.randn(3, 4)
    >>> bool(sd.allclose(fast(x), net(x)))
    True
    >>> [n.op for n in next(iter(fast.graphs.values()))]
    ['linear_relu', 'linear']
    """
    if isinstance(model_or_fn, Module):
        return CompiledModule(model_or_fn, passes)
    if not callable(model_or_fn):
        raise TypeError(f"compile: expected a module or a function, got "
                        f"{type(model_or_fn).__name__}")
    return CompiledFunction(model_or_fn, passes)
