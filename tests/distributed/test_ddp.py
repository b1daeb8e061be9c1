"""DistributedDataParallel on 2 ranks against one process on the whole batch (float64),
``no_sync`` accumulation, and the errors; DistributedSampler against PyTorch's."""
import numpy as np
import pytest
from mpijob import needs_mpi, rank_lines

from shendu.data import DistributedSampler

EQUIVALENCE = """
import sys
import numpy as np
import shendu as sd
import shendu.distributed as dist
from shendu import nn
from shendu.data import DataLoader, DistributedSampler, TensorDataset
from shendu.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
r, world = dist.get_rank(), dist.get_world_size()
bucket_mb = float(sys.argv[1])

def build(seed):
    sd.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()

rng = np.random.default_rng(7)
X = sd.tensor(rng.standard_normal((32, 5)))
y = sd.tensor(rng.integers(0, 3, 32))
ds = TensorDataset(X, y)

ref = build(0)                      # one process, whole batches
model = DDP(build(100 * r), bucket_cap_mb=bucket_mb)   # rank 1 starts elsewhere: broadcast
for p, q in zip(model.parameters(), ref.parameters()):
    assert np.array_equal(p.detach().numpy(), q.detach().numpy()), "no broadcast at wrap"
opt = sd.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
ref_opt = sd.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()
sampler = DistributedSampler(ds, seed=3)
worst = 0.0
steps = 0
for epoch in range(5):
    sampler.set_epoch(epoch)
    mine = DataLoader(ds, batch_size=4, sampler=sampler)
    shards = []
    for k in range(world):           # every rank's share of this epoch, for the reference
        s_k = DistributedSampler(ds, world, k, seed=3)
        s_k.set_epoch(epoch)
        shards.append(list(s_k))
    for j, (xb, yb) in enumerate(mine):
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
        full = np.concatenate([np.asarray(s_k[4 * j:4 * j + 4]) for s_k in shards])
        ref_opt.zero_grad()
        loss_fn(ref(X[full]), y[full]).backward()
        ref_opt.step()
        for p, q in zip(model.parameters(), ref.parameters()):
            worst = max(worst, float(np.abs(p.detach().numpy() - q.detach().numpy()).max()))
        steps += 1
assert worst < 1e-10, worst
print(f"steps {steps} ok")
dist.destroy_process_group()
"""


@pytest.mark.parametrize("bucket_mb", ["25", "0.0002"])   # one bucket; several small ones
def test_two_ranks_match_one_process_on_the_whole_batch(run_job, bucket_mb):
    res = run_job(EQUIVALENCE, args=(bucket_mb,))
    assert res.returncode == 0, res.stdout + res.stderr
    assert rank_lines(res.stdout, 0) == ["steps 20 ok"] and \
        rank_lines(res.stdout, 1) == ["steps 20 ok"]


def test_three_ranks_match_one_process(run_job):
    """Three rows summed in rank order (every rank the same bits) in shared memory, with
    more ranks than this machine's cores (the waits nap)."""
    code = EQUIVALENCE.replace('print(f"steps {steps} ok")', """
mine = sd.tensor(np.concatenate([p.detach().numpy().ravel() for p in model.parameters()]))
everyone = [sd.zeros_like(mine) for _ in range(world)]
dist.all_gather(everyone, mine)
print(f"steps {steps} ok, replicas identical:",
      all(np.array_equal(t.numpy(), mine.numpy()) for t in everyone))""")
    res = run_job(code, nproc=3, args=("0.0002",))
    assert res.returncode == 0, res.stdout + res.stderr
    for rank in (0, 1, 2):
        assert rank_lines(res.stdout, rank) == ["steps 15 ok, replicas identical: True"], \
            res.stdout


@pytest.mark.parametrize("shared", ["1", "0"])   # shared-memory buckets; MPI's all-reduce
def test_both_reductions_match_one_process(run_job, shared):
    code = EQUIVALENCE.replace('print(f"steps {steps} ok")',
                               'print(f"steps {steps} ok shared={model._node is not None}")')
    res = run_job(code, args=("0.0002",), env={"SHENDU_DDP_SHARED_MEMORY": shared})
    assert res.returncode == 0, res.stdout + res.stderr
    want = f"steps 20 ok shared={shared == '1'}"
    assert rank_lines(res.stdout, 0) == [want] and rank_lines(res.stdout, 1) == [want]


OVERLAP = """
import numpy as np
import shendu as sd
import shendu.distributed as dist
from shendu import nn
from shendu.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
sd.manual_seed(0)
net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).double()
model = DDP(net, bucket_cap_mb=0.0001)   # a bucket per parameter
sent = []
x = sd.tensor(np.random.default_rng(dist.get_rank()).standard_normal((8, 6)))
# fires when backward reaches the first layer's output, before the first layer's own
# gradients exist: which buckets have started their all-reduce by then?
def watch(module, args, out):
    out.register_hook(lambda g: sent.append([b.request is not None for b in model._buckets]))
net[0].register_forward_hook(watch)
model(x).sum().backward()
last = {id(p) for p in net[2].parameters()}
where = [any(id(model._params[i]) in last for i in b.indices) for b in model._buckets]
print("sent", sent == [where], sum(where))
dist.destroy_process_group()
"""


def test_buckets_start_their_all_reduce_during_backward(run_job):
    """With MPI's all-reduce, the last layer's buckets are sent as soon as its gradients are
    final, while backward still has the first layer to do (the overlap PyTorch's DDP has)."""
    res = run_job(OVERLAP, env={"SHENDU_DDP_SHARED_MEMORY": "0"})
    assert res.returncode == 0, res.stdout + res.stderr
    for rank in (0, 1):
        assert rank_lines(res.stdout, rank) == ["sent True 2"], res.stdout


LATE_RANK = """
import time
import numpy as np
import shendu as sd
import shendu.distributed as dist
from shendu import nn
from shendu.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
r = dist.get_rank()
sd.manual_seed(0)
net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).double()
model = DDP(net)
x = sd.tensor(np.random.default_rng(r).standard_normal((8, 6)))
loss = lambda out: (out ** 2).sum()
own = [g.numpy() for g in sd.autograd.grad(loss(net(x)), list(net.parameters()))]
everyone = [[sd.zeros_like(sd.tensor(g)) for _ in range(2)] for g in own]
for g, slots in zip(own, everyone):
    dist.all_gather(slots, sd.tensor(g))
seen = []
# fires when backward reaches the first layer's output, before its own gradients exist:
# the last layer's .grad is final there; does it hold this rank's gradient or the mean?
def watch(module, args, out):
    out.register_hook(lambda g: seen.append(np.array_equal(net[2].weight.grad.numpy(), own[2])))
net[0].register_forward_hook(watch)
if r == 0:
    time.sleep(0.3)                       # rank 1 reaches the exchange long before
loss(model(x)).backward()
# the mean as the rows hold it: each rank's gradient / 2, summed in rank order
want = [0.5 * a.numpy() + 0.5 * b.numpy() for a, b in everyone]
print("own gradient during backward:", seen, "; the mean after, bit for bit:",
      all(np.array_equal(p.grad.numpy(), w) for p, w in zip(net.parameters(), want)))
dist.destroy_process_group()
"""


def test_shared_memory_exchanges_once_every_gradient_is_in(run_job):
    """On one machine the gradients are exchanged at the last one: during backward each
    .grad is still the rank's own; after it, both ranks hold the mean summed in rank order
    (the same bits), the early rank having waited for the late one."""
    res = run_job(LATE_RANK, env={"SHENDU_DDP_SHARED_MEMORY": "1"})
    assert res.returncode == 0, res.stdout + res.stderr
    for rank in (0, 1):
        assert rank_lines(res.stdout, rank) == [
            "own gradient during backward: [True] ; the mean after, bit for bit: True"], \
            res.stdout


NO_SYNC = """
import numpy as np
import shendu as sd
import shendu.distributed as dist
from shendu import nn
from shendu.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
r = dist.get_rank()
sd.manual_seed(0)
ref = nn.Linear(4, 2).double()
sd.manual_seed(0)
model = DDP(nn.Linear(4, 2).double())
rng = np.random.default_rng(1)
micro = [sd.tensor(rng.standard_normal((2, 6, 4))) for _ in range(3)]   # [rank, sample, feature]
for k in range(3):
    x = micro[k][r]
    if k < 2:
        with model.no_sync():
            (model(x) ** 2).mean().backward()
        local = [p.grad.numpy().copy() for p in model.parameters()]
    else:
        (model(x) ** 2).mean().backward()
    # reference: the mean loss over both ranks' samples of this micro-batch
    (ref(micro[k].reshape(12, 4)) ** 2).mean().backward()
ok = all(np.allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12, atol=1e-14)
         for p, q in zip(model.parameters(), ref.parameters()))
# under no_sync nothing was exchanged: the local gradient is this rank's own
sd.manual_seed(0)
alone = nn.Linear(4, 2).double()
for k in range(2):
    (alone(micro[k][r]) ** 2).mean().backward()
own = all(np.allclose(a, p.grad.numpy(), rtol=1e-13) for a, p in zip(local, alone.parameters()))
print("no_sync", ok, own)
dist.destroy_process_group()
"""


def test_no_sync_accumulates_then_averages(run_job):
    res = run_job(NO_SYNC)
    assert res.returncode == 0, res.stdout + res.stderr
    for rank in (0, 1):
        assert rank_lines(res.stdout, rank) == ["no_sync True True"], res.stdout


ERRORS = """
import shendu as sd
import shendu.distributed as dist
from shendu import nn
from shendu.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
r = dist.get_rank()
try:
    DDP(nn.Linear(3, 2 + r))
except RuntimeError as e:
    assert "modules differ" in str(e), e
    print("mismatch caught")

class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 1), nn.Linear(2, 1)
    def forward(self, x):
        return self.a(x)          # b never gets a gradient

model = DDP(TwoHeads())
model(sd.ones(1, 2)).sum().backward()
try:
    model(sd.ones(1, 2))
except RuntimeError as e:
    assert "did not produce gradients" in str(e), e
    print("unused caught")
dist.destroy_process_group()
"""


def test_ddp_errors(run_job):
    res = run_job(ERRORS)
    assert res.returncode == 0, res.stdout + res.stderr
    for rank in (0, 1):
        assert rank_lines(res.stdout, rank) == ["mismatch caught", "unused caught"], res.stdout


torch_data = pytest.importorskip("torch.utils.data", reason="PyTorch (the oracle) is missing")


@pytest.mark.parametrize("n, world, drop_last", [(10, 3, False), (10, 3, True), (4, 4, False),
                                                 (2, 3, False), (7, 2, True)])
def test_distributed_sampler_partitions_like_pytorch(n, world, drop_last):
    # unshuffled, the index sets must equal PyTorch's exactly (padding and dropping)
    for rank in range(world):
        ours = list(DistributedSampler(range(n), world, rank, shuffle=False,
                                       drop_last=drop_last))
        theirs = list(torch_data.DistributedSampler(range(n), world, rank, shuffle=False,
                                                    drop_last=drop_last))
        assert ours == theirs
    # shuffled: the ranks cover the permutation, each epoch a new one, same on every rank
    shards = [DistributedSampler(range(n), world, r, seed=5, drop_last=drop_last)
              for r in range(world)]
    first = np.concatenate([list(s) for s in shards]).astype(int)
    for s in shards:
        s.set_epoch(1)
    second = np.concatenate([list(s) for s in shards]).astype(int)
    assert len(first) == len(shards[0]) * world
    if not drop_last:
        assert set(first.tolist()) == set(range(n))
    assert first.tolist() != second.tolist() or n <= 2


def test_distributed_sampler_bad_rank():
    with pytest.raises(ValueError, match="invalid rank 2 for num_replicas 2"):
        DistributedSampler(range(4), num_replicas=2, rank=2)


@needs_mpi
def test_ddp_world_of_one_is_the_plain_module():
    import shendu as sd
    import shendu.distributed as dist
    from shendu.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group("mpi")
    try:
        sd.manual_seed(0)
        plain = sd.nn.Linear(3, 2).double()
        sd.manual_seed(0)
        model = DDP(sd.nn.Linear(3, 2).double())
        x = sd.randn(4, 3).double()
        model(x).sum().backward()
        plain(x).sum().backward()
        for p, q in zip(model.parameters(), plain.parameters()):
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
        assert list(model.state_dict()) == ["module.weight", "module.bias"]
    finally:
        dist.destroy_process_group()
