"""The parts of a training loop around the model: optimizer steps and the data loader."""
import numpy as np
from _bench_util import rand, twin_benchmark

SHAPES = [(100, 1000)] * 10  # 1M parameters in 10 tensors: bandwidth and per-tensor cost


def _optimizer_step(fw, make):
    params = [fw.nn.Parameter(rand(fw, *s, seed=i)) for i, s in enumerate(SHAPES)]
    for i, p in enumerate(params):
        p.grad = rand(fw, *p.shape, seed=100 + i)  # a fixed gradient, reused every step
    opt = make(fw.optim, params)

    def step():
        opt.step()
    return step


@twin_benchmark("sgd_momentum_1m", "micro", items_per_iter=1, unit="steps/s")
def sgd_momentum(fw):
    """SGD with momentum 0.9: one step over 1M parameters (10 tensors of 100k)."""
    return _optimizer_step(fw, lambda optim, ps: optim.SGD(ps, lr=0.01, momentum=0.9))


@twin_benchmark("adam_1m", "micro", items_per_iter=1, unit="steps/s")
def adam(fw):
    """Adam: one step over 1M parameters (10 tensors of 100k)."""
    return _optimizer_step(fw, lambda optim, ps: optim.Adam(ps, lr=1e-3))


@twin_benchmark("dataloader_epoch", "data", items_per_iter=60_000)
def dataloader_epoch(fw):
    """One shuffled epoch of a 60k x 784 TensorDataset in batches of 128 (no model)."""
    rng = np.random.default_rng(0)
    x = fw.tensor(rng.standard_normal((60_000, 784), dtype=np.float32))
    y = fw.tensor(rng.integers(0, 10, 60_000, dtype=np.int64))
    if fw.name == "torch":
        from torch.utils.data import DataLoader, TensorDataset
    else:
        from shendu.data import DataLoader, TensorDataset
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)

    def step():
        n = 0
        for xb, _ in loader:
            n += xb.shape[0]
        assert n == 60_000, n
    return step
