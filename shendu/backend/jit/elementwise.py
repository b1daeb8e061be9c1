"""Elementwise kernels over flat (1-D, contiguous) arrays."""
from __future__ import annotations

import contextlib
import types

from numba import njit, prange
from numba.core import config as _numba_config
from numba.core.compiler_lock import global_compiler_lock as _compiler_lock

from .. import runtime as _runtime  # its ``kernels_serial`` says which version runs

# Every kernel: compiled once per dtype and cached on disk, GIL released, no Python
# exception checks in the arithmetic, loops marked prange split over numba's threads.
KERNEL = dict(nogil=True, cache=True, error_model="numpy", parallel=True)
SERIAL = dict(KERNEL, parallel=False)
# Helpers only kernels call: no wrappers for calls from Python (less to compile)
HELPER = dict(nogil=True, cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
# LLVM optimisation level for shendu's kernels. numba's default (3) costs a fifth more
# compile time on the convolution kernels than 2 for no measurable run time: they spend
# it in MKL's GEMM and in copy loops that both levels vectorise (benchmarks/README.md,
# "First-use compile time"). Applied only while a shendu kernel compiles.
KERNEL_OPT_LEVEL = 2


@contextlib.contextmanager
def kernel_opt_level():
    """numba's optimisation level lowered to ``KERNEL_OPT_LEVEL`` for one compilation.
    Under numba's compiler lock, so no other thread's compilation sees the change."""
    with _compiler_lock:
        before = _numba_config.OPT
        if int(before) <= KERNEL_OPT_LEVEL:  # NUMBA_OPT set lower by the user: keep it
            yield
            return
        _numba_config.OPT = type(before)(KERNEL_OPT_LEVEL)
        try:
            yield
        finally:
            _numba_config.OPT = before


def at_kernel_level(dispatcher):
    """``dispatcher`` compiling (and loading from the disk cache) under
    ``kernel_opt_level``. numba's C dispatcher calls ``_compile_for_args`` on a miss,
    so an instance attribute of that name wraps exactly the compilations."""
    compile_for_args = dispatcher._compile_for_args

    def compile_at_kernel_level(*args, **kws):
        with kernel_opt_level():
            return compile_for_args(*args, **kws)

    dispatcher._compile_for_args = compile_at_kernel_level
    return dispatcher


class Kernel:
    """A kernel compiled two ways, each on first use: ``parallel`` (its ``prange`` loops
    split over numba's threads) and ``serial`` (the same code, ``prange`` run as
    ``range``); a call runs the serial one while the kernels have one thread.

    Why two: numba's parallel compiler takes several times longer than a plain compile
    (the LeNet-5 convolution kernels took most of the first training step's time), and a
    kernel that may use one thread gains nothing from it. ``shendu train`` runs on one
    thread, so it never compiles the parallel versions. The two give the same results:
    the kernels split their work explicitly, never by a parallel reduction.

    ``serial=False`` keeps one build, the parallel one, for every thread count: for
    kernels whose plain compile LLVM does not vectorise. numba marks a parallel loop's
    array arguments as not aliasing each other, which a plain function's are not; with
    many arrays read and written in one loop (the recurrent step kernels), LLVM then keeps
    the loop scalar: the LSTM's forward step took 4.7x longer serial than parallel on one
    thread (``benchmarks/README.md``, "Serial builds that do not vectorise").
    """

    __slots__ = ("parallel", "serial", "__name__", "__wrapped__", "__dict__")

    def __init__(self, fn, serial: bool = True):
        self.parallel = at_kernel_level(njit(**KERNEL)(fn))
        self.serial = self.parallel
        if serial:
            # a copy under its own name, so that numba's disk cache keeps the two apart
            twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                      fn.__defaults__, fn.__closure__)
            twin.__qualname__ = fn.__qualname__ + "_serial"
            twin.__module__ = fn.__module__
            self.serial = at_kernel_level(njit(**SERIAL)(twin))
        self.__doc__, self.__name__, self.__wrapped__ = fn.__doc__, fn.__name__, fn

    def __call__(self, *args):
        return (self.serial if _runtime.kernels_serial else self.parallel)(*args)

    def __repr__(self) -> str:
        return f"<kernel {self.__name__} (parallel and serial)>"


def kernel(fn=None, *, serial: bool = True):
    """Decorator: ``fn`` as a :class:`Kernel` (``@kernel(serial=False)``: the parallel
    build only, see there)."""
    if fn is None:
        return lambda f: Kernel(f, serial)
    return Kernel(fn, serial)


@njit(**HELPER, fastmath={"reassoc", "nsz"})
def vector_sum(a):
    """Sum of a 1-D array, reassociated so that it vectorises (NaN and inf propagate)."""
    total = a.dtype.type(0)
    for j in range(a.size):
        total += a[j]
    return total


@kernel
def relu_forward(x, out):
    """``out = max(x, 0)``; a NaN stays NaN, as with ``np.maximum``."""
    for i in prange(x.size):
        v = x[i]
        out[i] = 0 if v <= 0 else v


@kernel
def add_forward(a, b, out):
    """``out = a + b`` for 1-D arrays of one size (the residual connections' large adds,
    split over the threads where NumPy's add runs on one)."""
    for i in prange(a.size):
        out[i] = a[i] + b[i]


@kernel
def relu_backward(g, y, out):
    """``out = g where y > 0 else 0`` for the ReLU's output ``y`` (PyTorch's rule: a NaN
    gradient at a unit that is off is dropped)."""
    for i in prange(g.size):
        out[i] = g[i] if y[i] > 0 else 0


@kernel
def bias_relu_rows(out, b):
    """``out = max(out + b, 0)`` in place for (M, N) ``out`` with unit-stride rows, ``b`` a
    row vector (or empty: no bias)."""
    m, n = out.shape
    for i in prange(m):
        row = out[i]
        if b.size:
            for j in range(n):
                v = row[j] + b[j]
                row[j] = 0 if v <= 0 else v
        else:
            for j in range(n):
                v = row[j]
                row[j] = 0 if v <= 0 else v


@kernel
def fill_rows(out, b):
    """Every row of (M, N) ``out`` set to the row vector ``b``."""
    m, n = out.shape
    for i in prange(m):
        row = out[i]
        for j in range(n):
            row[j] = b[j]


@kernel
def transpose_into(a, out):
    """``out = a.T`` for C-contiguous (M, N) ``a`` and (N, M) ``out``, in 32 x 32 tiles
    (NumPy's transposing copy of a 1024 x 256 float32 matrix took 270 us, this about a
    fifth of that on two threads)."""
    m, n = a.shape
    tile = 32
    for bi in prange((m + tile - 1) // tile):
        i0 = bi * tile
        i1 = min(i0 + tile, m)
        for j0 in range(0, n, tile):
            j1 = min(j0 + tile, n)
            for j in range(j0, j1):
                for i in range(i0, i1):
                    out[j, i] = a[i, j]


@kernel
def column_sums(a, parts, threads):
    """The column sums of (M, N) ``a``: thread t adds its block of rows into
    ``parts[t]`` (threads, N); the caller sums the parts."""
    m, n = a.shape
    for t in prange(threads):
        acc = parts[t]
        acc[:] = 0
        for i in range(t * m // threads, (t + 1) * m // threads):
            row = a[i]
            for j in range(n):
                acc[j] += row[j]
