"""Collectives on 2 ranks against NumPy computed in the same script, and a world of one
in this process (no mpiexec)."""
import numpy as np
import pytest
from mpijob import needs_mpi, rank_lines

import shendu as sd

dist = pytest.importorskip("shendu.distributed")


@needs_mpi
def test_world_of_one_in_process():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="not initialised"):
        dist.get_rank()
    dist.init_process_group(backend="mpi")
    try:
        assert dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
        with pytest.raises(RuntimeError, match="already initialised"):
            dist.init_process_group("mpi")
        t = sd.tensor([1.0, -2.0, 3.0])
        for op in (dist.ReduceOp.SUM, dist.ReduceOp.AVG, dist.ReduceOp.MAX, dist.ReduceOp.MIN):
            dist.all_reduce(t, op=op)
            np.testing.assert_array_equal(t.numpy(), [1.0, -2.0, 3.0])
        out = [sd.zeros(3)]
        dist.all_gather(out, t)
        np.testing.assert_array_equal(out[0].numpy(), t.numpy())
        with pytest.raises(ValueError, match="one per rank"):
            dist.all_gather([sd.zeros(3), sd.zeros(3)], t)
        with pytest.raises(TypeError, match="AVG needs a floating-point"):
            dist.all_reduce(sd.tensor([1, 2]), op=dist.ReduceOp.AVG)
        with pytest.raises(ValueError, match="unknown reduce op"):
            dist.all_reduce(t, op="median")
        dist.barrier()
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="world_size=2 but MPI started 1"):
        dist.init_process_group("mpi", world_size=2)
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="backend 'gloo' is not supported"):
        dist.init_process_group("gloo")   # 'nccl' is a backend now: see test_nccl.py


COLLECTIVES = """
import numpy as np
import shendu as sd
import shendu.distributed as dist

dist.init_process_group(backend="mpi")
r, n = dist.get_rank(), dist.get_world_size()
assert n == 2
rng = np.random.default_rng(0)
base = rng.standard_normal((2, 3, 4))          # both ranks know every rank's data
mine = base[r]
ops = {"sum": (dist.ReduceOp.SUM, base.sum(0)), "avg": (dist.ReduceOp.AVG, base.mean(0)),
       "max": (dist.ReduceOp.MAX, base.max(0)), "min": (dist.ReduceOp.MIN, base.min(0))}
for name, (op, want) in ops.items():
    t = sd.tensor(mine.copy(), dtype=sd.float64)
    before = t._data
    dist.all_reduce(t, op=op)
    assert t._data is before, "a contiguous tensor is reduced in its own buffer"
    np.testing.assert_allclose(t.numpy(), want, rtol=1e-15, atol=1e-15, err_msg=name)
# integers, a non-contiguous view, async
ti = sd.tensor(np.arange(6).reshape(2, 3) * (r + 1))
dist.all_reduce(ti)
np.testing.assert_array_equal(ti.numpy(), np.arange(6).reshape(2, 3) * 3)
tn = sd.tensor(mine.copy(), dtype=sd.float64).transpose(0, 1)
assert not tn.is_contiguous()
dist.all_reduce(tn)
np.testing.assert_allclose(tn.numpy(), base.sum(0).T, rtol=1e-15)
ta = sd.tensor(mine.copy(), dtype=sd.float64)
work = dist.all_reduce(ta, op=dist.ReduceOp.AVG, async_op=True)
assert work.wait() and work.is_completed()
np.testing.assert_allclose(ta.numpy(), base.mean(0), rtol=1e-15)
# broadcast from rank 1
tb = sd.tensor(mine.copy(), dtype=sd.float64)
dist.broadcast(tb, src=1)
np.testing.assert_array_equal(tb.numpy(), base[1])
# all_gather
outs = [sd.zeros((3, 4), dtype=sd.float64) for _ in range(n)]
dist.all_gather(outs, sd.tensor(mine, dtype=sd.float64))
for i in range(n):
    np.testing.assert_array_equal(outs[i].numpy(), base[i])
cat = sd.zeros((6, 4), dtype=sd.float64)
dist.all_gather_into_tensor(cat, sd.tensor(mine, dtype=sd.float64))
np.testing.assert_array_equal(cat.numpy(), base.reshape(6, 4))
# reduce_scatter: rank r gets the sum over ranks of input_list[r]
parts = [sd.tensor(mine[i:i + 1] * (i + 1), dtype=sd.float64) for i in range(n)]
out = sd.zeros((1, 4), dtype=sd.float64)
dist.reduce_scatter(out, parts)
np.testing.assert_allclose(out.numpy(), base[:, r:r + 1].sum(0) * (r + 1), rtol=1e-15)
# send / recv both ways, then isend/irecv
if r == 0:
    dist.send(sd.tensor(base[0], dtype=sd.float64), dst=1)
    got = sd.zeros((3, 4), dtype=sd.float64)
    assert dist.recv(got, src=1) == 1
    np.testing.assert_array_equal(got.numpy(), base[1] * 2)
else:
    got = sd.zeros((3, 4), dtype=sd.float64)
    assert dist.recv(got) == 0
    np.testing.assert_array_equal(got.numpy(), base[0])
    dist.send(sd.tensor(base[1] * 2, dtype=sd.float64), dst=0)
peer = 1 - r
box = sd.zeros(5)
reqs = [dist.isend(sd.full((5,), float(r + 10)), dst=peer, tag=3),
        dist.irecv(box, src=peer, tag=3)]
for w in reqs:
    w.wait()
np.testing.assert_array_equal(box.numpy(), np.full(5, peer + 10.0))
dist.barrier()
dist.destroy_process_group()
print("OK")
"""


def test_collectives_two_ranks(run_job):
    res = run_job(COLLECTIVES)
    assert res.returncode == 0, res.stdout + res.stderr
    assert rank_lines(res.stdout, 0) == ["OK"] and rank_lines(res.stdout, 1) == ["OK"]


MISMATCH = """
import shendu as sd
import shendu.distributed as dist

dist.init_process_group("mpi")
r = dist.get_rank()
try:
    dist.all_reduce(sd.zeros(r + 2))
except RuntimeError as e:
    assert "rank 0: all_reduce((2,)" in str(e) and "rank 1: all_reduce((3,)" in str(e), e
    print("shape caught")
try:  # rank 0 reduces while rank 1 broadcasts
    if r == 0:
        dist.all_reduce(sd.zeros(2))
    else:
        dist.broadcast(sd.zeros(2), src=0)
except RuntimeError as e:
    assert "disagree on the collective" in str(e), e
    print("op caught")
dist.destroy_process_group()
"""


def test_mismatched_collectives_raise_on_every_rank(run_job):
    res = run_job(MISMATCH)
    assert res.returncode == 0, res.stdout + res.stderr
    for rank in (0, 1):
        assert rank_lines(res.stdout, rank) == ["shape caught", "op caught"], res.stdout


SKEWED = """
import time
import shendu as sd
import shendu.distributed as dist
from shendu.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
r = dist.get_rank()
model = DDP(sd.nn.Linear(3, 1))
for k in range(20):
    if r == 1 and k % 5 == 0:
        time.sleep(0.05)          # the root's broadcast is done long before rank 1 arrives
    t = sd.tensor([float(k)]) if r == 0 else sd.zeros(1)
    dist.broadcast(t, src=0)
    assert t.item() == k
    model(sd.ones(2, 3)).sum().backward()   # then a DDP step, and a plain all-reduce
    s = sd.ones(1)
    dist.all_reduce(s)
    assert s.item() == 2
print("in step")
dist.destroy_process_group()
"""


def test_ranks_in_and_out_of_step_never_mismatch_their_waits(run_job):
    """A synchronous collective's wait meets the other ranks at a barrier; a rank whose
    part finished early (a broadcast's root) must still take part, or the next waits pair
    up wrongly and the job hangs."""
    res = run_job(SKEWED, timeout=40)
    assert res.returncode == 0, res.stdout + res.stderr
    assert rank_lines(res.stdout, 0) == ["in step"] and rank_lines(res.stdout, 1) == ["in step"]
