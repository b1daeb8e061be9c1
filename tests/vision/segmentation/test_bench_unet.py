"""The U-Net bench workload is the library's UNet with deep scores, and its step runs."""
import os
import sys

import numpy as np

import shendu as sd
import shendu.bench
from shendu.vision.segmentation import UNet

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "benchmarks")


def _bench_unet(monkeypatch):
    # a registry of its own: `shendu bench` tests may have loaded the same file already
    monkeypatch.setattr(shendu.bench, "REGISTRY", {})
    monkeypatch.syspath_prepend(BENCH)
    monkeypatch.delitem(sys.modules, "bench_unet", raising=False)
    import _bench_util
    import bench_unet
    return bench_unet, _bench_util


def test_bench_unet_is_the_library_model(monkeypatch):
    bench_unet, util = _bench_unet(monkeypatch)
    widths = (4, 8, 16)
    net = bench_unet.unet(util.shendu_fw(), num_classes=5, widths=widths)
    lib = UNet(1, 5, widths=widths, deep_scores=True)
    shapes = {k: tuple(v.shape) for k, v in lib.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == shapes
    lib.load_state_dict(net.state_dict())
    x = sd.randn(2, 1, 16, 16)
    with sd.no_grad():
        np.testing.assert_allclose(net.eval()(x).numpy(), lib.eval()(x).numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_bench_unet_step_lowers_its_loss(monkeypatch):
    bench_unet, _ = _bench_unet(monkeypatch)
    step = shendu.bench.REGISTRY["unet_train"].setup()
    first = float(step())
    for _ in range(4):
        last = float(step())
    assert np.isfinite(first) and last < first
