"""The NCCL backend (``init_process_group(backend="nccl")``).

Without a GPU: the error when CuPy/NCCL/a GPU is missing, the op and dtype mapping, and
the whole dispatch (collectives and DDP on GPU tensors) against stand-ins: the test-only
CuPy (tests/devices/fakecupy.py) and a fake NCCL communicator that plays a world of 2
ranks whose other rank holds the same data, working on the arrays through the raw device
pointers, counts and NCCL dtypes the backend passes (so those are checked too). The test
that needs a real GPU skips with its reason where there is none.
"""
import ctypes
import os
import sys
from types import SimpleNamespace as NS

import numpy as np
import pytest

import shendu as sd
import shendu.distributed as dist
from shendu.distributed import _nccl
from shendu.distributed import process_group as pg

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "devices"))
import fakecupy  # noqa: E402

CONSTANTS = dict(NCCL_INT8=0, NCCL_UINT8=1, NCCL_INT32=2, NCCL_UINT32=3, NCCL_INT64=4,
                 NCCL_UINT64=5, NCCL_FLOAT16=6, NCCL_FLOAT32=7, NCCL_FLOAT64=8,
                 NCCL_SUM=0, NCCL_PROD=1, NCCL_MAX=2, NCCL_MIN=3)
CODES = {0: np.int8, 1: np.uint8, 2: np.int32, 3: np.uint32, 4: np.int64, 5: np.uint64,
         6: np.float16, 7: np.float32, 8: np.float64}


def _gpu_missing():
    try:
        _nccl.require()
    except (ImportError, RuntimeError) as exc:
        return str(exc)
    return None


def test_missing_cupy_nccl_or_gpu_is_a_clear_error_and_leaves_no_group():
    why = _gpu_missing()
    if why is None:
        pytest.skip("CuPy, NCCL and a GPU are all here: the error path cannot be reached")
    with pytest.raises((ImportError, RuntimeError), match="backend 'nccl'.*backend='mpi'"):
        dist.init_process_group(backend="nccl")
    assert not dist.is_initialized()
    dist.init_process_group(backend="mpi")   # the failed attempt left nothing behind
    assert dist.get_backend() == "mpi"
    dist.destroy_process_group()


def test_unknown_backend_names_both_choices():
    with pytest.raises(ValueError, match="'gloo'.*expected 'mpi' or 'nccl'"):
        dist.init_process_group(backend="gloo")


@pytest.mark.parametrize("op,expected", [(dist.ReduceOp.SUM, 0), (dist.ReduceOp.PRODUCT, 1),
                                         (dist.ReduceOp.MAX, 2), (dist.ReduceOp.MIN, 3)])
def test_reduce_ops_map_to_ncclRedOp(op, expected):
    assert _nccl.reduce_op(op, 21003, NS(**CONSTANTS)) == (expected, False)


def test_avg_is_ncclAvg_from_2_10_else_sum_then_divide():
    with_avg = NS(**CONSTANTS, NCCL_AVG=4)
    assert _nccl.reduce_op(dist.ReduceOp.AVG, 21000, with_avg) == (4, False)
    assert _nccl.reduce_op(dist.ReduceOp.AVG, 2804, with_avg) == (0, True)      # NCCL 2.8
    assert _nccl.reduce_op(dist.ReduceOp.AVG, 21805, NS(**CONSTANTS)) == (0, True)  # no name
    with pytest.raises(ValueError, match="nccl: unknown reduce op 'band'"):
        _nccl.reduce_op("band", 21805, with_avg)


def test_dtypes_map_to_nccl_types_and_others_are_refused():
    lib = NS(**CONSTANTS)
    for code, dt in CODES.items():
        assert _nccl.nccl_dtype(dt, lib, "all_reduce") == code
    assert _nccl.nccl_dtype(np.bool_, lib, "all_reduce") == CONSTANTS["NCCL_UINT8"]
    with pytest.raises(TypeError, match="all_reduce: NCCL cannot reduce or move dtype "
                                        "complex64"):
        _nccl.nccl_dtype(np.complex64, lib, "all_reduce")


# ------------------------------------------------------------------ fake world of 2 ranks
def _view(ptr, count, code):
    dt = np.dtype(CODES[code])
    buf = (ctypes.c_char * (count * dt.itemsize)).from_address(ptr)
    return np.frombuffer(buf, dtype=dt, count=count)


class FakeComm:
    """An NCCL communicator in a world of 2 whose other rank has the same data."""

    def __init__(self, size, uid, rank):
        assert (size, rank, uid) == (2, 0, ("uid",))
        self.calls = []

    def allReduce(self, send, recv, count, dtype, op, stream):
        self.calls.append(("allReduce", count, dtype, op))
        s, r = _view(send, count, dtype), _view(recv, count, dtype)
        r[...] = {0: s + s, 1: s * s, 2: s, 3: s, 4: s}[op]

    def bcast(self, buf, count, dtype, root, stream):
        self.calls.append(("bcast", count, dtype, root))

    def allGather(self, send, recv, count, dtype, stream):
        self.calls.append(("allGather", count, dtype))
        r = _view(recv, 2 * count, dtype)
        r[:count] = r[count:] = _view(send, count, dtype)

    def reduceScatter(self, send, recv, count, dtype, op, stream):
        self.calls.append(("reduceScatter", count, dtype, op))
        block = _view(send, 2 * count, dtype)[:count]   # rank 0's block, from both ranks
        _view(recv, count, dtype)[...] = {0: block + block, 4: block}[op]

    def send(self, buf, count, dtype, peer, stream):
        self.calls.append(("send", count, dtype, peer))

    def recv(self, buf, count, dtype, peer, stream):
        self.calls.append(("recv", count, dtype, peer))
        _view(buf, count, dtype)[...] = 7

    def destroy(self):
        self.calls.append(("destroy",))


@pytest.fixture(params=[21003, 2804], ids=["nccl-2.10-avg", "nccl-2.8-sum-divide"])
def fake_world(request):
    """A process group of 2 ranks on backend 'nccl' over the stand-ins, on this process."""
    if pg.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    from mpi4py import MPI
    lib = NS(**CONSTANTS, NCCL_AVG=4, get_unique_id=lambda: ("uid",),
             get_version=lambda: request.param, NcclCommunicator=FakeComm)
    cp = fakecupy.module
    fake_cp = NS(ndarray=fakecupy.ndarray, empty=cp.empty, zeros=cp.zeros, stack=cp.stack,
                 divide=cp.divide,
                 ascontiguousarray=cp.ascontiguousarray,
                 cuda=NS(Device=lambda i: NS(use=lambda: None),
                         runtime=NS(getDeviceCount=lambda: 1),
                         get_current_stream=lambda: NS(ptr=0, synchronize=lambda: None)))
    group = pg._Group(MPI.COMM_SELF.Dup(), "nccl")
    group.size = 2   # the fake communicator's world; MPI itself is this process alone
    group.nccl = _nccl.NcclBackend(NS(bcast=lambda obj, root: obj), 0, 2, fake_cp, lib)
    with fakecupy.installed():
        pg._WORLD = group
        try:
            yield group
        finally:
            pg.destroy_process_group()


def _gpu(values, dtype=np.float32):
    return sd.tensor(np.asarray(values, dtype=dtype)).to("cuda")


def test_collectives_on_gpu_tensors_go_through_nccl(fake_world):
    comm = fake_world.nccl.comm
    assert dist.get_backend() == "nccl"
    t = _gpu([1.0, 2.0, 3.0])
    dist.all_reduce(t)
    assert t.cpu().tolist() == [2.0, 4.0, 6.0]
    dist.all_reduce(t, op=dist.ReduceOp.AVG)   # ncclAvg, or SUM then / 2 on old NCCL
    assert t.cpu().tolist() == [2.0, 4.0, 6.0]
    assert comm.calls[0] == ("allReduce", 3, 7, 0)
    assert comm.calls[1][3] == (4 if fake_world.nccl.version >= 21000 else 0)
    ints = _gpu([1, 5], np.int64)
    dist.all_reduce(ints, op=dist.ReduceOp.MAX)
    assert ints.cpu().tolist() == [1, 5] and comm.calls[-1] == ("allReduce", 2, 4, 2)
    with pytest.raises(TypeError, match="AVG needs a floating-point tensor, got int64"):
        dist.all_reduce(ints, op=dist.ReduceOp.AVG)
    dist.broadcast(t, src=1)
    assert comm.calls[-1] == ("bcast", 3, 7, 1)
    out = [_gpu([0.0, 0.0]), _gpu([0.0, 0.0])]
    dist.all_gather(out, _gpu([8.0, 9.0]))
    assert [o.cpu().tolist() for o in out] == [[8.0, 9.0], [8.0, 9.0]]
    whole = _gpu(np.zeros(4))
    dist.all_gather_into_tensor(whole, _gpu([1.0, 2.0]))
    assert whole.cpu().tolist() == [1.0, 2.0, 1.0, 2.0]
    mine = _gpu([0.0, 0.0])
    dist.reduce_scatter(mine, [_gpu([1.0, 2.0]), _gpu([3.0, 4.0])], op=dist.ReduceOp.AVG)
    assert mine.cpu().tolist() == [1.0, 2.0]
    dist.send(_gpu([1.0]), dst=1)
    got = _gpu([0.0, 0.0])
    assert dist.recv(got, src=1) == 1 and got.cpu().tolist() == [7.0, 7.0]
    assert comm.calls[-2:] == [("send", 1, 7, 1), ("recv", 2, 7, 1)]


def test_gpu_argument_errors_name_the_collective(fake_world):
    with pytest.raises(ValueError, match="recv: the NCCL backend cannot receive from any"):
        dist.recv(_gpu([0.0]))
    with pytest.raises(ValueError, match="all_gather: the tensors are partly on the GPU"):
        dist.all_gather([sd.zeros(2), sd.zeros(2)], _gpu([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"all_gather: tensor_list\[1\] is \(3,\)"):
        dist.all_gather([_gpu(np.zeros(2)), _gpu(np.zeros(3))], _gpu([1.0, 2.0]))
    wide = _gpu(np.ones((3, 4)))
    with pytest.raises(ValueError, match="all_reduce: the NCCL backend needs a contiguous"):
        dist.all_reduce(wide[:, ::2])


def test_ddp_on_gpu_reduces_its_buckets_with_nccl(fake_world):
    """The mirrored rank has the same batch, so the averaged gradient is this rank's."""
    from shendu.nn.parallel import DistributedDataParallel as DDP
    sd.manual_seed(0)
    ref = sd.nn.Sequential(sd.nn.Linear(4, 3), sd.nn.Tanh(), sd.nn.Linear(3, 2))
    sd.manual_seed(0)
    model = DDP(sd.nn.Sequential(sd.nn.Linear(4, 3), sd.nn.Tanh(),
                                 sd.nn.Linear(3, 2)).to("cuda"), bucket_cap_mb=0.00003)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    ref(sd.tensor(x)).sum().backward()
    model(sd.tensor(x).to("cuda")).sum().backward()
    calls = [c for c in fake_world.nccl.comm.calls if c[0] == "allReduce"]
    assert len(calls) == len(model._buckets) > 1
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.cpu().numpy(), q.grad.numpy(), rtol=1e-6)


@pytest.mark.skipif(_gpu_missing() is not None, reason=f"no NCCL GPU: {_gpu_missing()}")
def test_nccl_world_of_one_on_a_real_gpu():
    dist.init_process_group(backend="nccl")
    try:
        t = sd.tensor([1.0, 2.0]).to("cuda")
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        assert t.cpu().tolist() == [1.0, 2.0]
    finally:
        dist.destroy_process_group()
