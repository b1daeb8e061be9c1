"""The one place where shendu touches the process it runs in.

``import shendu`` changes nothing process-wide. Each setting below is applied the first
time something needs it, and each can be refused with an environment variable (read here
and nowhere else in shendu's fast paths):

* MKL (``libmkl_rt``) is loaded and put on GNU OpenMP (libgomp) at the first float product
  on NumPy matrices (or kernel set-up, or ``info()``). Opt-out: ``SHENDU_MKL=0``.
* numba is imported and its kernels put on MKL's OpenMP pool (one thread without MKL) at
  the first compiled kernel call. Opt-out: ``SHENDU_JIT=0``.
* OpenMP's max active levels is set to 1 when numba's OpenMP layer starts (numba turns
  nesting on). Opt-out: ``SHENDU_OMP_NESTING=keep``.
* GNU OpenMP's idle threads spin only briefly before they sleep: ``GOMP_SPINCOUNT`` is set
  to ``OMP_SPIN_COUNT`` just while libgomp loads, before MKL or the kernels first need it
  (``openmp_wait_policy``). Opt-out: ``SHENDU_OMP_WAIT=spin`` (libgomp's default) or
  ``=passive`` (sleep at once), or set ``OMP_WAIT_POLICY`` / ``GOMP_SPINCOUNT`` yourself.
* MKL's products run in strict reproducible mode (``MKL_CBWR=AUTO,STRICT``: the best code
  path for the CPU, each sum in one order however many threads share it), set when MKL
  loads. Opt-out: set ``MKL_CBWR`` yourself.
* The thread count of MKL, the kernels and shendu's pool follows the load: from the first
  fast op, ``backend/thread_tuner.py`` times the step at the default count and at fewer
  threads now and then, and keeps the faster (``threads_follow_load``). A count it picks
  changes no result: MKL is strict, and the kernels cut their work into
  ``kernel_parts()`` parts, the count chosen for them, whatever count runs them. Opt-out:
  ``SHENDU_THREADS_FOLLOW_LOAD=0``; off where MKL is not strict (the user's own
  ``MKL_CBWR``, or an MKL that refuses); never once the user sets a count
  (``sd.set_num_threads``, or ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
  ``NUMBA_NUM_THREADS`` in the environment).
* A ``fork()`` handler is registered when MKL or the kernels are first set up: the child
  runs products on one MKL thread and no kernels (it would hang otherwise). No opt-out.
* glibc keeps freed memory (``mallopt``): opt-in, ``keep_freed_memory(True)`` or
  ``SHENDU_KEEP_FREED_MEMORY=1``.
* The path each fast op took is recorded: opt-in, ``trace_paths()`` or
  ``SHENDU_TRACE_PATHS=1`` (a summary on stderr at exit).

Why each exists: MKL beats NumPy's OpenBLAS on the training-step products, and sharing
its OpenMP pool with numba's kernels keeps two pools from spinning against each other
(see ``backend/blas.py`` and ``backend/jit``). numba turns on nested OpenMP for the whole
process, which made MKL start a thread team inside each kernel thread and PyTorch's Adam
in the same process much slower; one active level undoes that. A process that has used
GNU OpenMP threads cannot use them again in a ``fork()`` child. Keeping freed memory in
the heap spares a training step the page faults of fresh ``mmap`` blocks, but it keeps
memory with the process, so it is the user's choice (``shendu train`` and ``shendu bench``
turn it on).

``info()`` says what this process runs on; ``trace_paths()`` records the path each fast op
took (``backend/cpu.py`` reports to it).

>>> from shendu.backend import runtime
>>> with runtime.trace_paths() as log:
...     runtime.record("example", "numpy")
>>> log
[('example', 'numpy')]
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

__all__ = ["info", "trace_paths", "keep_freed_memory", "mkl", "mkl_loaded", "kernels_on",
           "set_kernels", "use", "kernel_threads", "kernels_parallel", "set_kernel_threads",
           "set_mkl_threads", "mkl_threads", "kernel_parts", "counts_as_tuned",
           "blas_controller", "one_blas_thread", "record",
           "openmp_wait_policy", "openmp_wait_state", "tick", "threads_chosen",
           "threads_follow_load", "tuner_paused", "winograd_on", "set_winograd"]


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


# ---------------------------------------------------------------------- path tracing
trace: list | None = None  # while a list, cpu.py's dispatch functions append (op, path)
_process_log: list | None = None  # SHENDU_TRACE_PATHS=1: every call, summarised at exit


def record(op: str, path: str) -> None:
    """Note that ``op`` ran on ``path`` (``'numba'``, ``'mkl'``, ``'numpy'``, ...)."""
    if trace is not None:
        trace.append((op, path))


@contextlib.contextmanager
def trace_paths() -> Iterator[list]:
    """Record which implementation each fast op call took inside the block.

    Yields a list that fills with ``(op, path)`` pairs (``path`` is ``'numba'``, ``'mkl'``,
    ``'mkl-compiled'`` or ``'numpy'``). Blocks nest: an outer block sees the inner calls too.

    >>> import shendu as sd
    >>> with sd.backend.trace_paths() as log:
    ...     _ = sd.relu(sd.ones(3))
    >>> log[0][0]
    'relu'
    """
    global trace
    outer = trace
    log: list = []
    trace = log
    try:
        yield log
    finally:
        trace = outer
        if outer is not None:
            outer.extend(log)


def _summarise() -> None:
    counts = Counter(_process_log or ())
    lines = [f"  {op:<24} {path:<14} {n}" for (op, path), n in sorted(counts.items())]
    print("shendu paths taken (SHENDU_TRACE_PATHS=1):", *lines, sep="\n", file=sys.stderr)


if _env("SHENDU_TRACE_PATHS") == "1":  # asked for by the user: record the whole run
    trace = _process_log = []
    atexit.register(_summarise)


# ---------------------------------------------------------------------- MKL
_GNU_THREADING = 3  # MKL_THREADING_GNU: libgomp, shared with numba's omp layer
_mkl = None         # the loaded libmkl_rt (ctypes)
_mkl_path: str | None = None
_mkl_tried = False
_mkl_why = "not looked for yet"
_mkl_on = True      # use(mkl=False) turns MKL's products off without unloading it
_mkl_default_threads = 1  # MKL's own thread count when it loaded
_forked = False     # this process is a fork() child of one that may have used OpenMP


def _mkl_candidates():
    """Where ``libmkl_rt`` may be: the environment's lib/ (pip and conda put it there),
    then the system's search path."""
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, _env("CONDA_PREFIX"))):
        if prefix:
            lib = Path(prefix) / "lib"
            yield from sorted(lib.glob("libmkl_rt.so*"), reverse=True)
            yield from sorted(lib.glob("mkl_rt*.dll"))
            yield from sorted(lib.glob("libmkl_rt*.dylib"))
    found = ctypes.util.find_library("mkl_rt")
    if found:
        yield found


def _load_mkl() -> None:
    global _mkl, _mkl_path, _mkl_tried, _mkl_why
    _mkl_tried = True
    if _env("SHENDU_MKL", "1") == "0":
        _mkl_why = "SHENDU_MKL=0 in the environment"
        return
    _mkl_why = "libmkl_rt not found (pip install mkl, or shendu[fast])"
    openmp_wait_policy()  # MKL's GNU OpenMP layer loads libgomp
    for path in _mkl_candidates():
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        lib.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
        if lib.MKL_Set_Threading_Layer(_GNU_THREADING) != _GNU_THREADING:
            _mkl_why = f"{path} has no GNU OpenMP layer (its own would fight numba's)"
            continue
        lib.MKL_Set_Num_Threads_Local.argtypes = [ctypes.c_int]
        lib.MKL_Set_Num_Threads.argtypes = [ctypes.c_int]
        lib.MKL_Get_Max_Threads.restype = ctypes.c_int
        _mkl, _mkl_path, _mkl_why = lib, str(path), ""
        _strict_products(lib)
        global _mkl_default_threads
        _mkl_default_threads = lib.MKL_Get_Max_Threads()
        _watch_fork()
        if _forked:
            _mkl_one_thread()
        _tuner_reapply()
        return


# MKL's products in "strict CNR" mode give the same bits on any number of threads (Intel's
# conditional numerical reproducibility: the code path is still the best for this CPU, but
# each sum is taken in one order however the threads share the work). Without it, one
# seeded run at two threads and one at one thread differ in the last bits, which would
# make the thread count that follows the load change results.
_CBWR_AUTO, _CBWR_STRICT, _CBWR_SUCCESS = 2, 0x10000, 0
_mkl_strict = False       # MKL accepted AUTO,STRICT (the tuner runs only then)
_strict = "not set yet"   # what info() reports about MKL's reproducibility


def _strict_products(lib) -> None:
    """Ask MKL for strict reproducibility (before its first product), unless the user chose
    a mode with ``MKL_CBWR``."""
    global _strict, _mkl_strict
    if "MKL_CBWR" in os.environ:
        _strict = f"as MKL_CBWR={os.environ['MKL_CBWR']} in the environment says"
        return
    try:
        lib.MKL_CBWR_Set.argtypes = [ctypes.c_int]   # (lower case: the Fortran entry)
        ok = lib.MKL_CBWR_Set(_CBWR_AUTO | _CBWR_STRICT) == _CBWR_SUCCESS
    except AttributeError:  # an MKL older than 2019 update 3
        ok = False
    _mkl_strict = ok
    _strict = ("strict: the same bits on any thread count (MKL_CBWR=AUTO,STRICT)" if ok
               else "not strict: this MKL refused MKL_CBWR=AUTO,STRICT")


def mkl():
    """The loaded ``libmkl_rt`` (a ``ctypes.CDLL``), loading it on the first call; None
    when it is not installed, refused (``SHENDU_MKL=0``) or turned off by ``use``."""
    if not _mkl_tried:
        _load_mkl()
    return _mkl if _mkl_on else None


def mkl_loaded() -> bool:
    """Whether products go through MKL (loaded on the first call)."""
    return mkl() is not None


def mkl_path() -> str | None:
    """The ``libmkl_rt`` file loaded (compiled kernels link to it by symbol name)."""
    mkl()
    return _mkl_path


def _mkl_one_thread() -> None:
    _mkl.MKL_Set_Num_Threads(1)
    _mkl.MKL_Set_Num_Threads_Local(1)


def set_mkl_threads(n: int) -> None:
    """MKL's thread count (nothing without MKL; always 1 in a ``fork()`` child). A choice:
    the thread count stops following the load (``threads_follow_load``)."""
    threads_chosen("a thread count was set (set_mkl_threads)")
    if mkl_loaded() and not _forked:
        _mkl.MKL_Set_Num_Threads(int(n))


def mkl_threads() -> int | None:
    """MKL's thread count (None without MKL)."""
    return _mkl.MKL_Get_Max_Threads() if mkl_loaded() else None


def blas_name() -> str:
    """``'MKL <version>'`` or ``'NumPy (<its BLAS>)'``: who multiplies matrices."""
    if mkl_loaded():
        buf = ctypes.create_string_buffer(256)
        _mkl.MKL_Get_Version_String(buf, len(buf))
        text = buf.value.decode(errors="replace")
        version = text.split("Version")[-1].split("-Product")[0].strip()
        return f"MKL {version or text}"
    import numpy as np

    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"NumPy ({cfg['name']} {cfg.get('version', '')})".replace(" )", ")")
    except Exception:  # noqa: BLE001 - older NumPy has no dict mode
        return "NumPy"


# ---------------------------------------------------------------------- fork()
_fork_watched = False


def _after_fork() -> None:
    global _forked, _kernels_on, _kernels_why
    _forked = True
    if _mkl is not None:
        _mkl_one_thread()
    # numba's OpenMP kernels would kill this process: plain NumPy paths from here on
    _kernels_on, _kernels_why = False, "off in a fork() child (GNU OpenMP cannot be reused)"
    global _tuner, _tuner_off
    _tuner, _tuner_off = None, "off in a fork() child (one thread)"


def _watch_fork() -> None:
    global _fork_watched
    if not _fork_watched and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
        _fork_watched = True


# ---------------------------------------------------------------------- OpenMP waiting
_wait_state = "not applied yet"


def _gomp_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return any("/libgomp.so" in line for line in f)
    except OSError:
        return False


def openmp_wait_state() -> str:
    """What ``openmp_wait_policy`` did (``'not applied yet'`` before it ran)."""
    return _wait_state


OMP_SPIN_COUNT = 1000  # spins before an idle libgomp thread sleeps (libgomp's: 300000)


def openmp_wait_policy(default: str = "short") -> str:
    """Make GNU OpenMP's idle threads spin only briefly before they sleep, once, before
    libgomp loads.

    MKL's products and numba's kernels share one libgomp pool. By default an idle libgomp
    thread spins for a long while (300,000 rounds) before it sleeps, betting that the next
    parallel region comes soon and that its core has nothing else to do. On shared cores
    (a laptop, a notebook server, CI) the bet loses: the spinning thread holds a core the
    thread it waits for needs, and ``shendu bench --contend`` measured a 2-thread
    LeNet-5/Adam step many times slower than a 1-thread one. Sleeping at once
    (``OMP_WAIT_POLICY=PASSIVE``) fixes that but pays a wake-up per parallel region, which
    an MKL product has several of: on an idle machine it measured ~20% slower per step than
    spinning. ``OMP_SPIN_COUNT`` rounds (microseconds) cover the gaps inside a product and
    between back-to-back kernels, then give the core back: under load as good as passive
    (``benchmarks/README.md``); on an idle machine close to spinning for the training
    step it was tuned on, but not everywhere: MLP inference at batch 256, many short
    parallel regions, ran ~15% slower than with libgomp's spin (docs/speed.md, "Both libraries
    wait the same way").

    libgomp reads ``GOMP_SPINCOUNT`` once, when it loads: this sets it, loads libgomp and
    puts the environment back, so child processes inherit nothing. Left alone when the user
    chose (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` set; ``SHENDU_OMP_WAIT=spin`` keeps
    libgomp's default, ``SHENDU_OMP_WAIT=passive`` sleeps at once) or when libgomp was
    loaded before (then its setting stays). Returns what was done, as
    ``info()['openmp_wait']`` reports it. ``default``: the choice when
    ``SHENDU_OMP_WAIT`` is not set (``shendu bench`` passes ``'spin'``, so that PyTorch's
    threads, which share libgomp, wait as they do by default).
    """
    global _wait_state
    if _wait_state != "not applied yet":
        return _wait_state
    env = os.environ
    choice = _env("SHENDU_OMP_WAIT", default)
    if choice == "spin":
        _wait_state = "libgomp's default spinning (SHENDU_OMP_WAIT=spin)"
    elif "OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env:
        _wait_state = "as set by the user (" + ", ".join(
            f"{k}={env[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in env) + ")"
    elif _gomp_loaded():
        _wait_state = "libgomp's default (it was loaded before shendu could set it)"
    else:
        name, value, state = (("OMP_WAIT_POLICY", "PASSIVE", "passive (SHENDU_OMP_WAIT=passive)")
                              if choice == "passive" else
                              ("GOMP_SPINCOUNT", str(OMP_SPIN_COUNT),
                               f"short spin ({OMP_SPIN_COUNT} rounds), then sleep"))
        env[name] = value
        try:
            ctypes.CDLL("libgomp.so.1", mode=ctypes.RTLD_GLOBAL)
            _wait_state = state
        except OSError:
            _wait_state = "libgomp's default (libgomp.so.1 not found)"
        finally:
            del env[name]  # read at load time: children inherit nothing
    return _wait_state


# ---------------------------------------------------------------------- numba kernels
_kernels_on = _env("SHENDU_JIT", "1") != "0"
_kernels_why = "" if _kernels_on else "SHENDU_JIT=0 in the environment"
_numba: bool | None = None  # numba importable (None: not looked at yet)
_numba_error = ""
_parallel: bool | None = None  # kernels may use several threads (None: not set up yet)
_kernel_threads = 0  # the count asked for by set_kernel_threads (0: numba's default)


def numba_available() -> bool:
    """Whether numba can be imported (looked up once)."""
    global _numba, _numba_error
    if _numba is None:
        try:
            import numba  # noqa: F401
            _numba = True
        except Exception as e:  # noqa: BLE001 - ImportError, or a numba that fails here
            _numba, _numba_error = False, f"numba not importable: {e}"
    return _numba


def kernels_on() -> bool:
    """Whether ops use the compiled kernels now (numba importable and not turned off)."""
    return _kernels_on and numba_available()


def set_kernels(flag: bool) -> bool:
    """Turn the kernels on or off for the whole process; returns the previous setting."""
    global _kernels_on, _kernels_why
    before, _kernels_on = _kernels_on, bool(flag)
    _kernels_why = "" if _kernels_on else "turned off at run time (set_kernels / use)"
    return before


# Winograd's F(2x2, 3x3) for the forward and input gradient of the 3x3 convolutions it suits
# (``backend.convolution.WINOGRAD_MIN_CHANNELS``); SHENDU_WINOGRAD=0 keeps them on the
# direct kernels
_winograd_on = _env("SHENDU_WINOGRAD", "1") != "0"


def winograd_on() -> bool:
    """Whether 3x3 convolutions may run by Winograd's F(2x2, 3x3) (``set_winograd``)."""
    return _winograd_on


def set_winograd(flag: bool) -> bool:
    """Let 3x3 convolutions run by Winograd's minimal filtering, or keep every
    convolution on the direct kernels (results then repeat the direct sum's rounding);
    returns the previous setting."""
    global _winograd_on
    before, _winograd_on = _winograd_on, bool(flag)
    return before


@contextlib.contextmanager
def use(*, kernels: bool | None = None, mkl: bool | None = None,
        winograd: bool | None = None) -> Iterator[None]:
    """Run the block with the compiled kernels, MKL's products and/or Winograd's
    convolutions on or off (tests compare the paths); ``None`` leaves a setting as it is."""
    global _mkl_on, _kernels_on, _kernels_why, _winograd_on
    before = _kernels_on, _kernels_why, _mkl_on, _winograd_on
    if kernels is not None:
        set_kernels(kernels)
    if mkl is not None:
        _mkl_on = bool(mkl)
    if winograd is not None:
        _winograd_on = bool(winograd)
    try:
        yield
    finally:
        _kernels_on, _kernels_why, _mkl_on, _winograd_on = before


def setup_kernels() -> None:
    """Choose numba's threads before the first kernel runs: on MKL's OpenMP pool when MKL
    is there, else one thread (OpenBLAS keeps its own threads spinning after each product,
    and a second pool fighting them was measured many times slower than either alone)."""
    global _parallel
    if _parallel is not None:
        return
    import numba

    _parallel = mkl_loaded() and not _forked
    if _parallel:
        openmp_wait_policy()  # before numba's OpenMP layer starts (if MKL has not)
        numba.config.THREADING_LAYER = "omp"  # MKL's layer: one pool for both
    _watch_fork()
    _set_kernel_threads(_kernel_threads or (numba.config.NUMBA_NUM_THREADS if _parallel else 1))
    if _parallel and _env("SHENDU_OMP_NESTING") != "keep":
        _no_nested_openmp()
    _tuner_reapply()


def _no_nested_openmp() -> None:
    """Undo the nested parallelism numba's OpenMP layer turns on when it starts
    (``omp_set_nested(1)`` for the whole process): one active level."""
    try:
        ctypes.CDLL("libgomp.so.1").omp_set_max_active_levels(1)  # the copy already loaded
    except (OSError, AttributeError):
        pass


kernels_serial = True  # the kernels run their serial versions (one thread; jit.Kernel)


def set_kernel_threads(n: int) -> None:
    """Threads for the kernels started from this thread (1 beside OpenBLAS's threads).
    At one thread the kernels run their serial versions, which compile several times
    faster than the parallel ones (see ``backend/jit/elementwise.py``). A choice: the
    thread count stops following the load (``threads_follow_load``)."""
    threads_chosen("a thread count was set (jit.set_num_threads)")
    _set_kernel_threads(n)


def _set_kernel_threads(n: int) -> None:
    global _kernel_threads, kernels_serial
    _kernel_threads = int(n)
    if _parallel is None:
        return
    import numba

    count = max(1, min(_kernel_threads, numba.config.NUMBA_NUM_THREADS)) if _parallel else 1
    numba.set_num_threads(count)
    kernels_serial = count == 1


@contextlib.contextmanager
def kernel_threads_at_most(n: int) -> Iterator[None]:
    """The kernels started from this thread use at most ``n`` threads inside the block;
    after it, the count set before (and the tuner's, ``threads_follow_load``) again."""
    if not kernels_on():
        yield
        return
    now = kernel_threads()  # sets the kernels up first
    configured = _kernel_threads
    _set_kernel_threads(min(n, now))
    try:
        yield
    finally:
        _set_kernel_threads(configured)
        _tuner_reapply()


def kernel_threads() -> int:
    """How many threads a kernel started from this thread may use."""
    if not numba_available():
        return 1
    setup_kernels()
    if not _parallel:
        return 1
    import numba

    return numba.get_num_threads()


def kernel_parts() -> int:
    """Into how many parts the kernels cut their work: the thread count chosen for them
    (``set_kernel_threads``, ``sd.set_num_threads``, or numba's default), never the count
    the tuner runs now. A part is a share of the batch, and a sum over the batch (a weight
    gradient) adds the parts' sums in part order, so when the tuner runs the kernels on
    fewer threads each thread takes several parts in turn and the bits do not change."""
    if not numba_available():
        return 1
    setup_kernels()
    if not _parallel:
        return 1
    import numba

    return max(1, min(_kernel_threads, numba.config.NUMBA_NUM_THREADS))


def kernels_parallel() -> bool:
    """Whether the kernels run on several threads (MKL present); False before set-up."""
    return bool(_parallel)


# ---------------------------------------------------------------------- BLAS threads
def blas_controller():
    """threadpoolctl's view of the BLAS libraries (MKL loaded first, so that a limit
    reaches it), or None when threadpoolctl is not installed."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    mkl_loaded()
    return ThreadpoolController().select(user_api="blas")


_first_controller = None
_first_looked = False


def first_blas_controller():
    """``blas_controller()`` from the first call, kept: scanning the loaded libraries costs
    far more than a limit through a kept controller. NumPy's BLAS loads with NumPy, so the
    first scan always finds it."""
    global _first_controller, _first_looked
    if not _first_looked:
        _first_controller, _first_looked = blas_controller(), True
    return _first_controller


def one_blas_thread():
    """A ``with`` block limiting the BLAS libraries found at the first call to one thread,
    without rescanning; a no-op without threadpoolctl."""
    blas = first_blas_controller()
    return contextlib.nullcontext() if blas is None else blas.limit(limits=1)


def blas_threads() -> int | None:
    """The largest BLAS thread count threadpoolctl reads (None without threadpoolctl)."""
    blas = first_blas_controller()
    libs = blas.lib_controllers if blas is not None else ()
    return max((lib.num_threads for lib in libs), default=None)


# ---------------------------------------------------------------------- threads under load
# Which thread count is fastest on a shared machine is measured, not estimated: see
# ``backend/thread_tuner.py`` for why and how. Here: when it runs, and what a count sets.
_USER_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
_tuner = None          # the ThreadTuner once the first op ticked (None: not started / off)
# Why the count does not follow the load ("" = on, or not started). A count chosen from
# timings differs between runs, but no result depends on it (strict MKL, kernel_parts), so
# two runs of one seeded script still give the same numbers.
_tuner_off = ("off (SHENDU_THREADS_FOLLOW_LOAD=0 in the environment)"
              if os.environ.get("SHENDU_THREADS_FOLLOW_LOAD") == "0" else "")
_tuner_thread = None   # the thread it measures and sets counts in (numba's are per thread)
_tuner_paused = 0      # blas_threads blocks open: the caller holds the counts
# shendu's pool (backend/pool.py, which imports this module) hands in how to read its
# thread count and limit it: runtime imports nothing of shendu but the tuner's logic
_pool_threads = None   # () -> the pool's thread count
_pool_limit = None     # (n or None) -> use at most n of the pool's threads for now


def pool_controls(threads, limit) -> None:
    """Called by ``backend/pool.py`` at import: how the tuner reads and limits its threads."""
    global _pool_threads, _pool_limit
    _pool_threads, _pool_limit = threads, limit


def tick(step_end: bool = False) -> None:
    """One unit of work: the fast paths call this once per dispatched op, the optimizers
    with ``step_end`` once per step. It costs a clock read; at the end of a measuring window
    the thread count may change."""
    t = _tuner
    if t is not None:
        if not _tuner_paused and threading.get_ident() == _tuner_thread:
            t.tick(step_end)
    elif not _tuner_off:
        _start_tuner()


def _start_tuner() -> None:
    global _tuner, _tuner_off, _tuner_thread
    from .thread_tuner import ThreadTuner  # a leaf: it imports nothing of shendu

    top = _pool_threads() if _pool_threads is not None else 1

    chosen = [k for k in _USER_THREAD_ENV if k in os.environ]
    if chosen:
        _tuner_off = f"off: {chosen[0]}={os.environ[chosen[0]]} in the environment"
    elif _forked:
        _tuner_off = "off in a fork() child (one thread)"
    elif top < 2:
        _tuner_off = "off: one thread to start with"
    elif mkl_loaded() and not _mkl_strict:
        _tuner_off = ("off: MKL's products are not in strict mode (MKL_CBWR), so a count "
                      "the tuner picked would change results")
    else:
        _tuner_thread = threading.get_ident()
        _tuner = ThreadTuner(top, _apply_count)


def threads_chosen(why: str) -> None:
    """The user set a thread count: from now on the counts are theirs. Puts every library
    back to its untuned count first, so the caller's setting applies to a whole team."""
    global _tuner, _tuner_off
    if _tuner_off:
        return
    if _tuner is not None and _tuner.level != 0:
        _apply_count(_tuner.levels[0])
    _tuner, _tuner_off = None, f"off: {why}"


@contextlib.contextmanager
def tuner_paused() -> Iterator[None]:
    """Hold the tuner inside the block (``blas_threads`` sets counts for a while)."""
    global _tuner_paused
    _tuner_paused += 1
    try:
        yield
    finally:
        _tuner_paused -= 1
        if not _tuner_paused and _tuner is not None:
            _tuner.resume()


def _apply_count(n: int) -> None:
    """Run ``n`` threads in MKL, the kernels (this thread's) and shendu's pool; the top of
    the ladder gives each library back its untuned count."""
    _set_counts(n, _tuner is None or n >= _tuner.levels[0])


@contextlib.contextmanager
def counts_as_tuned(n: int) -> Iterator[None]:
    """Run the block on ``n`` threads set as the tuner sets them (the chosen counts, and
    with them ``kernel_parts``, unchanged): tests check that a count the tuner picks
    changes no result."""
    _set_counts(n, False)
    try:
        yield
    finally:
        _set_counts(n, True)
        _tuner_reapply()


def _set_counts(n: int, top: bool) -> None:
    if _pool_limit is not None:
        _pool_limit(None if top else n)
    if _mkl is not None and not _forked:
        _mkl.MKL_Set_Num_Threads(_mkl_default_threads if top
                                 else min(n, _mkl_default_threads))
    if _parallel:
        import numba

        most = max(1, min(_kernel_threads, numba.config.NUMBA_NUM_THREADS))
        numba.set_num_threads(most if top else min(n, most))  # kernels_serial unchanged:
        # the parallel versions run on fewer threads; the serial ones would compile first


def _tuner_reapply() -> None:
    """MKL or the kernels started after the tuner chose a count: give them that count."""
    if (_tuner is not None and _tuner.level != 0
            and threading.get_ident() == _tuner_thread):
        _apply_count(_tuner.count)


def threads_follow_load_log() -> list[dict]:
    """The tuner's last trials (counts, rates, windows), for benchmarks; [] when off."""
    return list(_tuner.log) if _tuner is not None else []


def threads_follow_load() -> str:
    """Whether the thread count follows the load, and what it chose (``info()``)."""
    if _tuner_off:
        return _tuner_off
    if _tuner is None:
        return "on (starts with the first fast op)"
    return "on: " + _tuner.describe()


# ---------------------------------------------------------------------- allocator
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4
MMAP_THRESHOLD = 32 << 20   # glibc's maximum (used when mmap is turned back on)
TRIM_THRESHOLD = 512 << 20  # free memory at the heap's top kept before giving it back
TOP_PAD = 64 << 20          # grow the heap in steps this big (fewer brk calls)
_GLIBC_DEFAULTS = ((_M_MMAP_THRESHOLD, 128 << 10), (_M_MMAP_MAX, 65536),
                   (_M_TRIM_THRESHOLD, 128 << 10), (_M_TOP_PAD, 128 << 10))
_keeping = False


def _mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    return fn


def keep_freed_memory(flag: bool | None = None) -> bool:
    """Keep freed array memory in the process instead of returning it to the OS (glibc).

    A training step allocates the same activations and gradients every step. glibc serves
    blocks above its mmap threshold with fresh pages and unmaps them on free, so every step
    pays a page fault per page it writes. With ``True`` every block comes from the heap and
    what is freed stays there (up to ``TRIM_THRESHOLD`` at its top), for every library in
    the process; ``False`` restores glibc's defaults. The cost: freed memory stays with the
    process until reused. Off unless asked for (or ``SHENDU_KEEP_FREED_MEMORY=1``).
    Returns whether the setting is in effect; ``None`` only asks.

    >>> import shendu as sd
    >>> sd.backend.keep_freed_memory() in (True, False)   # only asks
    True
    """
    global _keeping
    if flag is None:
        return _keeping
    fn = _mallopt()
    if fn is None:
        return False
    if flag:
        _keeping = all(fn(opt, value) == 1 for opt, value in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_MMAP_MAX, 0),  # no block is mmapped
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
    elif _keeping:
        for opt, value in _GLIBC_DEFAULTS:
            fn(opt, value)
        _keeping = False
    return _keeping


def own_process_defaults() -> None:
    """For programs that own their process (the ``shendu`` command): keep freed memory
    unless ``SHENDU_KEEP_FREED_MEMORY=0``; child processes inherit the choice."""
    if _env("SHENDU_KEEP_FREED_MEMORY") == "0":
        return
    os.environ["SHENDU_KEEP_FREED_MEMORY"] = "1"
    keep_freed_memory(True)


if _env("SHENDU_KEEP_FREED_MEMORY") == "1":  # asked for by the user
    keep_freed_memory(True)


# ---------------------------------------------------------------------- info()
class Info(dict):
    """``info()``'s answer: a dict that prints as a short report."""

    def __str__(self) -> str:
        width = max(map(len, self))
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.items())

    __repr__ = __str__


def info() -> Info:
    """What this process runs on: who multiplies matrices and on how many threads, whether
    the compiled kernels are on (and why not), and the process settings in effect.

    Asking loads MKL and sets numba up when they are there, as the first fast op would.

    >>> import shendu as sd
    >>> info = sd.backend.info()
    >>> info["blas"].startswith(("MKL", "NumPy")), "kernels" in info
    (True, True)
    """
    mkl_loaded()
    on = kernels_on()
    if on:
        setup_kernels()
    why_kernels = _kernels_why or (_numba_error if not numba_available() else "")
    return Info(
        blas=blas_name(),
        blas_threads=mkl_threads() if mkl_loaded() else blas_threads(),
        mkl="loaded from " + str(_mkl_path) if mkl_loaded() else f"off: {_mkl_why}",
        mkl_reproducible=_strict if mkl_loaded() else "-",
        kernels="on (numba)" if on else f"off: {why_kernels}",
        kernel_threads=kernel_threads() if on else 0,
        kernel_parts=kernel_parts() if on else 0,
        kernel_layer=("OpenMP, shared with MKL" if _parallel else "one thread") if on else "-",
        openmp_wait=_wait_state,
        threads_follow_load=threads_follow_load(),
        openmp_nesting=("left as numba set it (SHENDU_OMP_NESTING=keep)"
                        if _env("SHENDU_OMP_NESTING") == "keep" else "one active level"),
        keep_freed_memory=_keeping,
        winograd=("on: the forward and input gradient of 3x3 stride-1 convolutions with "
                  "enough channels "
                  "(backend.convolution.WINOGRAD_MIN_CHANNELS)"
                  if _winograd_on else "off (SHENDU_WINOGRAD=0 or set_winograd(False))"),
        fork_child=_forked,
        tracing=trace is not None,
    )
