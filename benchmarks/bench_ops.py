"""Micro-benchmarks of single ops, forward and backward, at the sizes the models use.

Each op's backward is driven by a fixed upstream gradient (``out.backward(g)``), so the
timing is the op itself, not a loss on top of it.
"""
from _bench_util import labels, rand, twin_benchmark

CHAIN = 100  # adds in the tiny-op chain


@twin_benchmark("tiny_op_chain", "micro", items_per_iter=CHAIN + 1, unit="µs/op")
def tiny_op_chain(fw):
    """Per-op overhead: 100 adds on a 4x4 tensor, a sum, then backward (µs per op)."""
    x = rand(fw, 4, 4, requires_grad=True)

    def step():
        y = x
        for _ in range(CHAIN):
            y = y + x
        y.sum().backward()
        x.grad = None
    return step


def _conv_step(fw, batch, cin, cout, size, k, pad, input_grad):
    x = rand(fw, batch, cin, size, size, requires_grad=input_grad)
    w = rand(fw, cout, cin, k, k, requires_grad=True, seed=1)
    b = rand(fw, cout, requires_grad=True, seed=2)
    out_size = size + 2 * pad - k + 1
    g = rand(fw, batch, cout, out_size, out_size, seed=3)

    def step():
        out = fw.F.conv2d(x, w, b, padding=pad)
        out.backward(g)
        x.grad = w.grad = b.grad = None
    return step


@twin_benchmark("conv_lenet1", "micro", items_per_iter=64)
def conv_lenet1(fw):
    """conv2d fwd+bwd, LeNet conv1: 1->6, 5x5, pad 2, 28x28, batch 64 (no input grad)."""
    return _conv_step(fw, 64, 1, 6, 28, 5, 2, input_grad=False)


@twin_benchmark("conv_lenet2", "micro", items_per_iter=64)
def conv_lenet2(fw):
    """conv2d fwd+bwd, LeNet conv2: 6->16, 5x5, 14x14, batch 64."""
    return _conv_step(fw, 64, 6, 16, 14, 5, 0, input_grad=True)


@twin_benchmark("conv_cifar", "micro", items_per_iter=64)
def conv_cifar(fw):
    """conv2d fwd+bwd, CIFAR: 32->32, 3x3, pad 1, 32x32, batch 64."""
    return _conv_step(fw, 64, 32, 32, 32, 3, 1, input_grad=True)


@twin_benchmark("maxpool2x2", "micro", items_per_iter=64)
def maxpool2x2(fw):
    """2x2 max-pool fwd+bwd on 64x32x32x32 (after CIFAR conv2)."""
    x = rand(fw, 64, 32, 32, 32, requires_grad=True)
    g = rand(fw, 64, 32, 16, 16, seed=3)

    def step():
        fw.F.max_pool2d(x, 2).backward(g)
        x.grad = None
    return step


def _ce_step(fw, rows, classes):
    logits = rand(fw, rows, classes, requires_grad=True)
    target = labels(fw, rows, classes=classes)

    def step():
        fw.F.cross_entropy(logits, target).backward()
        logits.grad = None
    return step


@twin_benchmark("cross_entropy_128x10", "micro", items_per_iter=128)
def cross_entropy_small(fw):
    """Softmax cross-entropy fwd+bwd, 128 x 10 logits."""
    return _ce_step(fw, 128, 10)


@twin_benchmark("cross_entropy_1120x10k", "micro", items_per_iter=35 * 32)
def cross_entropy_lm(fw):
    """Softmax cross-entropy fwd+bwd, 35*32 x 10000 logits (the LSTM LM's loss)."""
    return _ce_step(fw, 35 * 32, 10_000)
