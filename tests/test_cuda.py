"""The same ops on a GPU (CuPy) give the CPU's values and gradients; skipped without one."""
import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F

pytestmark = pytest.mark.skipif(not sd.cuda.is_available(), reason="needs CuPy and a CUDA GPU")

rng = np.random.default_rng(0)

CASES = [
    ("add_mul_bcast", lambda a, b: (a * b + a - b / (b.abs() + 1)).sum(), [(3, 4), (4,)]),
    ("unary", lambda a: (a.exp() + a.tanh() + a.sigmoid() + F.gelu(a) + a.relu()).sum(),
     [(5, 6)]),
    ("reductions", lambda a: a.var(1).sum() + a.amax() + a.logsumexp(0).sum() + a.norm(),
     [(4, 5)]),
    ("indexing", lambda a: a[[0, 2, 2], 1:].sum() + a.T.reshape(-1)[3] + a.flip(0)[0].sum(),
     [(3, 4)]),
    ("matmul", lambda a, b: (a @ b).sum(), [(2, 3, 4), (4, 5)]),
    ("conv_pool", lambda x, w: F.max_pool2d(F.conv2d(x, w, padding=1), 2).sum(),
     [(2, 3, 8, 8), (4, 3, 3, 3)]),
    ("cross_entropy", lambda x: F.cross_entropy(x, sd.tensor([0, 2, 1]).to(x.device)),
     [(3, 4)]),
    ("norms", lambda x, w, b: F.layer_norm(x, (4,), w, b).sum()
     + F.batch_norm(x, None, None, training=True).sum(), [(3, 4), (4,), (4,)]),
]


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_gpu_matches_cpu(name, fn, shapes):
    arrays = [rng.standard_normal(s) for s in shapes]
    outs, grads = [], []
    for device in ("cpu", "cuda"):
        xs = [sd.tensor(a, dtype=sd.float64, device=device, requires_grad=True) for a in arrays]
        out = fn(*xs)
        assert out.device.type == device
        out.backward()
        outs.append(out.item())
        grads.append([x.grad.cpu().numpy() for x in xs])
    assert outs[0] == pytest.approx(outs[1], rel=1e-9)
    for g_cpu, g_gpu in zip(*grads):
        np.testing.assert_allclose(g_gpu, g_cpu, rtol=1e-8, atol=1e-10)


def test_mixing_devices_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"add: expected both tensors on the same device, "
                                           r"got cpu and cuda:0"):
        sd.ones(2) + sd.ones(2, device="cuda")
    with pytest.raises(RuntimeError, match=r"mul: expected both tensors on the same device, "
                                           r"got cuda:0 and cpu"):
        sd.ones(2, device="cuda") * sd.ones(2)
