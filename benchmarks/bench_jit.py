"""Graph mode: ``sd.compile`` against eager shendu, eager PyTorch and ``torch.compile``.

The eager baselines are the models as a user writes them (no ``nn.utils.fuse``): fusing
Linear/Conv + ReLU is one of the things ``sd.compile`` does by itself.
"""
from _bench_util import cifar_cnn, labels, lenet5, mlp, rand, shendu_fw, torch_fw, train_step

from shendu.bench import benchmark

CHAIN = 100


def _chain_add(x):
    y = x
    for _ in range(CHAIN):
        y = y + x
    return y


def _chain_mixed(x):
    for _ in range(CHAIN // 4):
        x = (x * 0.99 + 0.01).tanh() - x * 0.5
    return x


def _chain_train_step(fn):
    fw = shendu_fw()
    x = rand(fw, 4, 4, requires_grad=True)

    def step():
        fn(x).sum().backward()
        x.grad = None
    return step


@benchmark("jit_tiny_chain", "micro", items_per_iter=CHAIN + 1, unit="µs/op")
def jit_tiny_chain():
    """sd.compile: 100 adds on a 4x4 tensor, a sum, then backward (µs per op)."""
    import shendu as sd

    return _chain_train_step(sd.compile(_chain_add))


@jit_tiny_chain.twin(label="eager")
def jit_tiny_chain_eager():
    return _chain_train_step(_chain_add)


def _chain_infer_step(fn):
    fw = shendu_fw()
    x = rand(fw, 4, 4)

    def step():
        with fw.no_grad():
            return fn(x)
    return step


@benchmark("jit_tiny_chain_infer", "micro", items_per_iter=CHAIN, unit="µs/op")
def jit_tiny_chain_infer():
    """sd.compile: 100 mixed elementwise ops (mul, add, tanh, sub) on 4x4, no_grad."""
    import shendu as sd

    return _chain_infer_step(sd.compile(_chain_mixed))


@jit_tiny_chain_infer.twin(label="eager")
def jit_tiny_chain_infer_eager():
    return _chain_infer_step(_chain_mixed)


def _mlp_infer(fw, wrap):
    fw.seed(0)
    model = mlp(fw.nn).eval()
    run = wrap(model)
    x = rand(fw, 256, 784)

    def step():
        with fw.no_grad():
            return run(x)
    step()  # compiles (outside the timed region)
    return step


def _sd_compile(model):
    import shendu as sd

    return sd.compile(model)


@benchmark("jit_mlp_infer", "inference", items_per_iter=256)
def jit_mlp_infer():
    """sd.compile MLP 784-512-512-10 forward, batch 256, vs PyTorch eager."""
    return _mlp_infer(shendu_fw(), _sd_compile)


@jit_mlp_infer.twin
def jit_mlp_infer_torch():
    return _mlp_infer(torch_fw(), lambda m: m)


@benchmark("jit_mlp_infer_vs_eager", "inference", items_per_iter=256)
def jit_mlp_infer_vs_eager():
    """sd.compile MLP 784-512-512-10 forward, batch 256, vs shendu eager."""
    return _mlp_infer(shendu_fw(), _sd_compile)


@jit_mlp_infer_vs_eager.twin(label="eager")
def jit_mlp_infer_vs_eager_twin():
    return _mlp_infer(shendu_fw(), lambda m: m)


@benchmark("jit_mlp_infer_vs_torch_compile", "inference", items_per_iter=256)
def jit_mlp_infer_vs_torch_compile():
    """sd.compile MLP forward, batch 256, vs torch.compile (reference; slow first call)."""
    return _mlp_infer(shendu_fw(), _sd_compile)


@jit_mlp_infer_vs_torch_compile.twin(label="torch.compile")
def jit_mlp_infer_torch_compile():
    import torch

    return _mlp_infer(torch_fw(), torch.compile)


def _train(model_fn, shape, wrap):
    fw = shendu_fw()
    fw.seed(0)
    model = model_fn(fw.nn)
    x, y = rand(fw, *shape), labels(fw, shape[0], classes=10)
    step = train_step(fw, _sd_compile(model) if wrap else model, x, y)
    step()  # traces and compiles (outside the timed region)
    return step


@benchmark("jit_lenet5_train", "train", items_per_iter=64)
def jit_lenet5_train():
    """sd.compile LeNet-5 training step (SGD, batch 64) vs shendu eager."""
    return _train(lenet5, (64, 1, 28, 28), True)


@jit_lenet5_train.twin(label="eager")
def jit_lenet5_train_eager():
    return _train(lenet5, (64, 1, 28, 28), False)


@benchmark("jit_cifar_cnn_train", "train", items_per_iter=64)
def jit_cifar_cnn_train():
    """sd.compile CIFAR CNN training step (SGD, batch 64) vs shendu eager: speed, peak memory."""
    return _train(cifar_cnn, (64, 3, 32, 32), True)


@jit_cifar_cnn_train.twin(label="eager")
def jit_cifar_cnn_train_eager():
    return _train(cifar_cnn, (64, 3, 32, 32), False)
