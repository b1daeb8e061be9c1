"""The thread count that follows the load (``backend/thread_tuner.py``, on by default)
changes no result: MKL's products run in strict reproducible mode, and the kernels cut
their work into ``runtime.kernel_parts()`` parts, the count chosen for them, whatever
count the tuner runs. Each case runs forward and backward at the chosen count and again
with the counts set as the tuner sets one thread (``runtime.counts_as_tuned(1)``), and
asks for the same bits."""
import contextlib

import numpy as np
import pytest

import shendu as sd
from shendu import nn
from shendu.backend import runtime
from shendu.nn import functional as F


def _cores() -> int:
    if not (runtime.kernels_on() and runtime.mkl_loaded()):
        return 1
    import numba

    return numba.config.NUMBA_NUM_THREADS


pytestmark = pytest.mark.skipif(
    _cores() < 2, reason="the kernels run on one thread here (no numba, no MKL, or one "
                         "core): the tuner has no count to change")
needs_strict = pytest.mark.skipif(
    _cores() >= 2 and not runtime._mkl_strict,
    reason=f"MKL is not in strict mode here ({runtime.info()['mkl_reproducible']}), so the "
           "tuner stays off: there is no tuned count to check")


@pytest.fixture(autouse=True)
def _two_threads():
    """The session runs BLAS (a thread-local MKL count) and the kernels on one thread;
    these tests choose two, as a training script's process has by default."""
    from shendu.backend import blas, jit

    mkl_before, jit_before = blas.get_num_threads(), jit.num_threads()
    local_before = runtime.mkl().MKL_Set_Num_Threads_Local(0)   # 0: the global count rules
    blas.set_num_threads(2)
    jit.set_num_threads(2)
    assert runtime.kernel_parts() == 2 and runtime.mkl_threads() == 2
    try:
        yield
    finally:
        blas.set_num_threads(mkl_before)
        jit.set_num_threads(jit_before)
        runtime.mkl().MKL_Set_Num_Threads_Local(local_before)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(32, 4, batch_first=True)

    def forward(self, x):
        return self.mha(x, x, x)[0]


def _cross_entropy():
    target = sd.tensor(np.arange(256) % 10)
    return lambda x: F.cross_entropy(x, target)


CASES = {  # name: (module factory, input shape); sizes large enough for the kernels
    "conv 3x3 (wide)": (lambda: nn.Conv2d(16, 32, 3, padding=1), (32, 16, 24, 24)),
    "conv 3x3 64 channels (winograd)": (lambda: nn.Conv2d(64, 64, 3, padding=1),
                                        (16, 64, 16, 16)),
    "conv one channel": (lambda: nn.Conv2d(1, 8, 3, padding=1), (8, 1, 96, 96)),
    "conv stride 2": (lambda: nn.Conv2d(16, 32, 3, 2, 1), (32, 16, 24, 24)),
    "conv 5x5": (lambda: nn.Conv2d(6, 16, 5), (128, 6, 14, 14)),
    "conv + relu + pool": (lambda: nn.Sequential(nn.Conv2d(6, 16, 5, padding=2), nn.ReLU(),
                                                 nn.MaxPool2d(2)), (64, 6, 28, 28)),
    "transposed conv": (lambda: nn.ConvTranspose2d(16, 8, 2, 2), (16, 16, 16, 16)),
    "batch norm": (lambda: nn.BatchNorm2d(16), (32, 16, 16, 16)),
    "layer norm": (lambda: nn.LayerNorm(256), (64, 32, 256)),
    "linear": (lambda: nn.Linear(784, 512), (256, 784)),
    "linear on 3-d input": (lambda: nn.Linear(256, 256), (32, 64, 256)),
    "lstm": (lambda: nn.LSTM(64, 256), (64, 32, 64)),
    "gru": (lambda: nn.GRU(32, 64, batch_first=True), (16, 20, 32)),
    "log_softmax": (lambda: nn.LogSoftmax(-1), (512, 1000)),
    "cross_entropy": (_cross_entropy, (256, 10)),
    "gelu": (lambda: nn.GELU(), (512, 1000)),
    "attention": (Attention, (8, 32, 32)),
}


def _run(make, shape, counts):
    """Output, input gradient and parameter gradients, under ``counts`` (a context)."""
    with counts:
        sd.manual_seed(0)
        module = make()
        rng = np.random.default_rng(0)
        x = sd.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
        y = module(x)
        y = y[0] if isinstance(y, tuple) else y
        weights = sd.tensor(rng.standard_normal(y.shape).astype(np.float32))
        (y * weights).sum().backward()
        params = module.parameters() if isinstance(module, nn.Module) else []
        return [y.detach().numpy().copy(), x.grad.numpy().copy(),
                *(p.grad.numpy().copy() for p in params)]


@needs_strict
@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "numpy+mkl"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_count_the_tuner_sets_gives_the_same_bits(name, kernels):
    make, shape = CASES[name]
    with runtime.use(kernels=kernels):
        chosen = _run(make, shape, contextlib.nullcontext())
        tuned = _run(make, shape, runtime.counts_as_tuned(1))
    assert len(chosen) == len(tuned)
    for i, (a, b) in enumerate(zip(chosen, tuned)):
        assert np.array_equal(a, b), (
            f"{name}: result {i} differs in {int((a != b).sum())} of {a.size} values when "
            f"the tuner's count runs (1 thread, {runtime.kernel_parts()} parts)")


def _lenet():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def _train(switch: bool):
    """Six Adam steps of LeNet-5 on a seeded batch; with ``switch`` every other step runs
    on one thread, as the tuner's trials do."""
    sd.manual_seed(0)
    model = _lenet()
    opt = sd.optim.Adam(model.parameters(), lr=1e-3)
    x, y = sd.randn(128, 1, 28, 28), sd.randint(0, 10, (128,))
    for step in range(6):
        counts = runtime.counts_as_tuned(1) if switch and step % 2 else contextlib.nullcontext()
        with counts:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [p.detach().numpy().copy() for p in model.parameters()]


@needs_strict
@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "numpy+mkl"])
def test_training_through_the_tuners_switches_repeats_the_bits(kernels):
    with runtime.use(kernels=kernels):
        for a, b in zip(_train(False), _train(True)):
            assert np.array_equal(a, b)


def test_the_parts_are_the_chosen_count_not_the_tuners():
    parts = runtime.kernel_parts()
    with runtime.counts_as_tuned(1):
        assert runtime.kernel_threads() == 1 and runtime.kernel_parts() == parts
    assert runtime.kernel_threads() == parts


def test_info_says_whether_mkl_is_strict():
    # strict, or the user's own MKL_CBWR, or an MKL that refused: never left unset
    said = sd.backend.info()["mkl_reproducible"]
    assert said.startswith(("strict", "as MKL_CBWR", "not strict: this MKL refused"))
    assert said.startswith("strict") == runtime._mkl_strict
