"""SyncBatchNorm: 2 ranks on parts of a batch against BatchNorm on the whole batch in one
process (float64), alone in a world of one, ``convert_sync_batchnorm``, and its errors."""
import numpy as np
import pytest
from mpijob import needs_mpi, rank_lines

import shendu as sd
from shendu import nn

LAYER = """
import numpy as np
import shendu as sd
import shendu.distributed as dist
from shendu import nn

dist.init_process_group("mpi")
r = dist.get_rank()
rng = np.random.default_rng(0)
for shape, split in [((8, 3), 4), ((7, 3, 5), 4), ((6, 2, 3, 2), 1)]:   # uneven splits too
    full = rng.standard_normal(shape) * 3 + 1
    upstream = rng.standard_normal(shape)
    lo, hi = (0, split) if r == 0 else (split, shape[0])
    bn, ref = nn.SyncBatchNorm(shape[1]).double(), nn.BatchNorm1d(shape[1]).double()
    if len(shape) == 4:
        ref = nn.BatchNorm2d(shape[1]).double()
    w, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    for layer in (bn, ref):
        with sd.no_grad():
            layer.weight.copy_(sd.tensor(w))
            layer.bias.copy_(sd.tensor(b))
    x = sd.tensor(full[lo:hi], requires_grad=True)
    xf = sd.tensor(full, requires_grad=True)
    for step in range(2):                       # the running statistics move twice
        x.grad = xf.grad = None
        y, yf = bn(x), ref(xf)
        (y * sd.tensor(upstream[lo:hi])).sum().backward()
        (yf * sd.tensor(upstream)).sum().backward()
    wgrad = bn.weight.grad.clone()
    dist.all_reduce(wgrad)                      # weight grads stay local: their sum is the total
    errs = [np.abs(y.detach().numpy() - yf.detach().numpy()[lo:hi]).max(),
            np.abs(x.grad.numpy() - xf.grad.numpy()[lo:hi]).max(),
            np.abs(wgrad.numpy() - ref.weight.grad.numpy()).max(),
            np.abs(bn.running_mean.numpy() - ref.running_mean.numpy()).max(),
            np.abs(bn.running_var.numpy() - ref.running_var.numpy()).max()]
    assert max(errs) < 1e-10, (shape, errs)
    bn.eval(), ref.eval()                       # eval: running statistics, no collective
    assert np.abs(bn(x).detach().numpy() - ref(xf).detach().numpy()[lo:hi]).max() < 1e-12
    print("layer ok", shape)
try:
    nn.SyncBatchNorm(2 + r)(sd.randn(4, 2 + r))
except ValueError as e:
    assert "different channel counts" in str(e), e
    print("mismatch caught")
dist.destroy_process_group()
"""


def test_sync_batchnorm_layer_matches_batchnorm_on_the_whole_batch(run_job):
    res = run_job(LAYER)
    assert res.returncode == 0, res.stdout + res.stderr
    want = ["layer ok (8, 3)", "layer ok (7, 3, 5)", "layer ok (6, 2, 3, 2)", "mismatch caught"]
    for rank in (0, 1):
        assert rank_lines(res.stdout, rank) == want, res.stdout + res.stderr


TRAINING = """
import numpy as np
import shendu as sd
import shendu.distributed as dist
from shendu import nn
from shendu.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
r, world = dist.get_rank(), dist.get_world_size()

def build():
    sd.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2)).double()

ref = build()                                   # one process, whole batches, plain BatchNorm
model = DDP(nn.SyncBatchNorm.convert_sync_batchnorm(build()))
assert type(model.module[1]).__name__ == "SyncBatchNorm"
opt = sd.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
ref_opt = sd.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
rng = np.random.default_rng(3)
worst = 0.0
for step in range(6):
    X = sd.tensor(rng.standard_normal((12, 4)) * 2 + 0.5)
    Y = sd.tensor(rng.standard_normal((12, 2)))
    part = slice(6 * r, 6 * r + 6)
    opt.zero_grad()
    ((model(X[part]) - Y[part]) ** 2).mean().backward()
    opt.step()
    ref_opt.zero_grad()
    ((ref(X) - Y) ** 2).mean().backward()
    ref_opt.step()
    mine = model.module.state_dict()
    for k, v in ref.state_dict().items():  # params and running stats
        worst = max(worst, float(np.abs(mine[k].numpy() - v.numpy()).max()))
assert worst < 1e-10, worst
model.eval(), ref.eval()
X = sd.tensor(rng.standard_normal((5, 4)))
assert np.abs(model(X).detach().numpy() - ref(X).detach().numpy()).max() < 1e-10
print(f"training ok {int(model.module[1].num_batches_tracked)}")
dist.destroy_process_group()
"""


def test_ddp_with_sync_batchnorm_trains_like_one_process(run_job):
    res = run_job(TRAINING)
    assert res.returncode == 0, res.stdout + res.stderr
    for rank in (0, 1):
        assert rank_lines(res.stdout, rank) == ["training ok 6"], res.stdout + res.stderr


def _pair(seed=0):
    sd.manual_seed(seed)
    a = nn.BatchNorm1d(3).double()
    sd.manual_seed(seed)
    return a, nn.SyncBatchNorm(3).double()


def test_without_process_group_it_is_batchnorm():
    ref, bn = _pair()
    x = sd.randn(6, 3, 4).double()
    for training in (True, False):
        ref.train(training), bn.train(training)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ref(xa), bn(xb)
        np.testing.assert_array_equal(ya.detach().numpy(), yb.detach().numpy())
        (ya ** 3).sum().backward()
        (yb ** 3).sum().backward()
        np.testing.assert_array_equal(xa.grad.numpy(), xb.grad.numpy())
        np.testing.assert_array_equal(ref.weight.grad.numpy(), bn.weight.grad.numpy())
    np.testing.assert_array_equal(ref.running_var.numpy(), bn.running_var.numpy())


@needs_mpi
def test_world_of_one_is_batchnorm():
    import shendu.distributed as dist
    dist.init_process_group("mpi")
    try:
        ref, bn = _pair()
        x = sd.randn(5, 3).double()
        np.testing.assert_array_equal(ref(x).detach().numpy(), bn(x).detach().numpy())
        np.testing.assert_array_equal(ref.running_mean.numpy(), bn.running_mean.numpy())
    finally:
        dist.destroy_process_group()


def test_convert_sync_batchnorm_keeps_state_and_skips_instance_norm():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.InstanceNorm2d(2),
                        nn.Sequential(nn.Flatten(), nn.BatchNorm1d(8, affine=False)))
    net(sd.randn(4, 1, 4, 4))                   # move the running statistics
    net[1].eval()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    weight = net[1].weight
    out = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    assert out is net
    assert type(net[1]) is nn.SyncBatchNorm and type(net[3][1]) is nn.SyncBatchNorm
    assert type(net[2]) is nn.InstanceNorm2d
    assert net[1].weight is weight and not net[1].training and net[3][1].training
    assert net[3][1].weight is None
    after = net.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        np.testing.assert_array_equal(after[k].numpy(), v)
    single = nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm3d(2, momentum=None))
    assert type(single) is nn.SyncBatchNorm and single.momentum is None


def test_sync_batchnorm_bad_input():
    with pytest.raises(ValueError, match=r"SyncBatchNorm\(3\): expected at least 2-D"):
        nn.SyncBatchNorm(3)(sd.randn(4))
    with pytest.raises(ValueError, match="C=3"):
        nn.SyncBatchNorm(3)(sd.randn(4, 2))
