"""The ResNet-18 bench workload is the zoo's small-input ResNet-18, and its step runs."""
import os
import sys

import numpy as np

import shendu as sd
import shendu.bench
from shendu.vision.models import resnet18

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "benchmarks")


def test_bench_resnet18_is_the_zoo_model(monkeypatch):
    # a registry of its own: `shendu bench` tests may have loaded the same file already
    monkeypatch.setattr(shendu.bench, "REGISTRY", {})
    monkeypatch.syspath_prepend(BENCH)
    monkeypatch.delitem(sys.modules, "bench_resnet", raising=False)
    import bench_resnet
    net = bench_resnet.resnet18_small(sd.nn)
    zoo = resnet18(num_classes=10, small_input=True)
    shapes = {k: tuple(v.shape) for k, v in zoo.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == shapes
    zoo.load_state_dict(net.state_dict())
    x = sd.randn(2, 3, 8, 8)
    with sd.no_grad():
        np.testing.assert_allclose(net.eval()(x).numpy(), zoo.eval()(x).numpy(),
                                   rtol=1e-5, atol=1e-5)
