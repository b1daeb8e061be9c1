"""Pipe on 2 and 3 ranks against the unsplit model in the same script (float64): outputs,
loss, every gradient and the parameters after SGD steps, for both schedules and chunk counts
that do and do not divide the batch; the stage split, the schedules and the errors."""
import numpy as np
import pytest
from mpijob import needs_mpi, rank_lines

import shendu as sd
from shendu import nn

dist = pytest.importorskip("shendu.distributed")
from shendu.distributed.pipeline import (  # noqa: E402
    Pipe,
    balance_by_params,
    pipeline_schedule,
    split_sequential,
)

EQUIVALENCE = """
import numpy as np
import shendu as sd
import shendu.distributed as dist
from shendu import nn
from shendu.distributed.pipeline import Pipe

dist.init_process_group("mpi")
r, p = dist.get_rank(), dist.get_world_size()
first, last = r == 0, r == p - 1

def build():
    sd.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(),
                         nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3)).double()

worst, configs = 0.0, 0
for loss_fn in (nn.CrossEntropyLoss(), nn.CrossEntropyLoss(reduction="sum")):
    for schedule in ("gpipe", "1f1b"):
        for chunks in (1, 2, 3, 4, 7):          # the batch has 7 rows
            ref, pipe = build(), Pipe(build(), chunks=chunks, schedule=schedule, loss_fn=loss_fn)
            theirs = dict(ref.named_parameters())
            mine = list(pipe.module.named_parameters())
            opt = sd.optim.SGD(pipe.parameters(), lr=0.1, momentum=0.9)
            ref_opt = sd.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
            rng = np.random.default_rng(chunks)
            for step in range(3):
                x = sd.tensor(rng.standard_normal((7, 5)))
                y = sd.tensor(rng.integers(0, 3, 7))
                opt.zero_grad()
                ref_opt.zero_grad()
                micro = []
                loss = pipe.step(x if first else None, target=y if last else None,
                                 losses=micro)
                ref_loss = loss_fn(ref(x), y)
                ref_loss.backward()
                if last:
                    worst = max(worst, abs(loss.item() - ref_loss.item()))
                    assert len(micro) == chunks
                else:
                    assert loss is None
                for name, q in mine:
                    worst = max(worst, np.abs(q.grad.numpy() - theirs[name].grad.numpy()).max())
                opt.step()
                ref_opt.step()
            for name, q in mine:
                worst = max(worst, np.abs(q.detach().numpy() - theirs[name].detach().numpy()).max())
            out = pipe(x if first else None)
            if last:
                worst = max(worst, np.abs(out.numpy() - ref(x).detach().numpy()).max())
            else:
                assert out is None
            want = chunks if schedule == "gpipe" else min(p - r, chunks)
            assert pipe.peak_in_flight == want, (schedule, chunks, pipe.peak_in_flight, want)
            assert [e[0] for e in pipe.timeline].count("B") == chunks
            configs += 1
assert worst < 1e-10, worst
print(f"{configs} configs ok, stage layers {pipe.layers}")
dist.destroy_process_group()
"""


@pytest.mark.parametrize("nproc", [2, 3])
def test_pipe_matches_the_unsplit_model(run_job, nproc):
    res = run_job(EQUIVALENCE, nproc=nproc, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    bounds = {2: [(0, 3), (3, 7)], 3: [(0, 2), (2, 4), (4, 7)]}[nproc]
    for rank in range(nproc):
        assert rank_lines(res.stdout, rank) == [f"20 configs ok, stage layers {bounds[rank]}"]


STAGE_MISMATCH = """
import shendu as sd
import shendu.distributed as dist
from shendu import nn
from shendu.distributed.pipeline import Pipe

dist.init_process_group("mpi")
r = dist.get_rank()
# rank 1 builds a model whose second stage expects 6 features instead of 4
model = nn.Sequential(nn.Linear(3, 4), nn.Linear(6 if r else 4, 2))
pipe = Pipe(model, chunks=2, loss_fn=nn.MSELoss())
pipe.step(sd.ones(4, 3) if r == 0 else None, target=sd.zeros(4, 2) if r == 1 else None)
"""


DISAGREE = """
import shendu.distributed as dist
from shendu import nn
from shendu.distributed.pipeline import Pipe

dist.init_process_group("mpi")
try:
    Pipe(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), chunks=2 + dist.get_rank())
except ValueError as e:
    print(e)
"""


def test_pipe_ranks_must_agree_on_chunks(run_job):
    res = run_job(DISAGREE)
    assert res.returncode == 0, res.stdout + res.stderr
    assert rank_lines(res.stdout, 0) == [
        "Pipe: rank 1 has (balance, chunks, schedule) = ([1, 1], 3, 'gpipe') but rank 0 has "
        "([1, 1], 2, 'gpipe'); every rank must build the same Pipe"]


def test_pipe_names_the_stage_that_got_a_wrong_shape(run_job):
    res = run_job(STAGE_MISMATCH)
    assert res.returncode != 0
    assert "Pipe: stage 1 (layers 1..1) failed on micro-batch 0 of shape (2, 4) float32 " \
           "from rank 0's activation: linear: input of shape (2, 4)" in res.stderr, res.stderr


def _net():
    sd.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(),
                         nn.Linear(10, 2))


def test_balance_by_params_minimises_the_largest_stage():
    net = _net()
    assert balance_by_params(net, 1) == [5]
    assert balance_by_params(net, 2) == [2, 3]          # 110 | 132 parameters
    assert balance_by_params(net, 3) == [2, 2, 1]
    assert balance_by_params(net, 5) == [1, 1, 1, 1, 1]
    # brute force over every split into 3 stages: no split has a smaller largest stage
    counts = [sum(p.numel() for p in m.parameters()) for m in net]
    best = min(max(sum(counts[:i]), sum(counts[i:j]), sum(counts[j:]))
               for i in range(1, 5) for j in range(i + 1, 5))
    sizes = balance_by_params(net, 3)
    cut = np.cumsum([0] + sizes)
    assert max(sum(counts[a:b]) for a, b in zip(cut[:-1], cut[1:])) == best
    with pytest.raises(ValueError, match="cannot split a Sequential of 5 layers into 6"):
        balance_by_params(net, 6)


def test_split_sequential_keeps_names_and_shares_layers():
    net = _net()
    stages = split_sequential(net, [2, 3])
    assert list(stages[1].state_dict()) == ["2.weight", "2.bias", "4.weight", "4.bias"]
    assert stages[0][0] is net[0]
    with pytest.raises(ValueError, match=r"balance=\[2, 2\] must be positive layer counts "
                                         "that sum to the Sequential's 5 layers"):
        split_sequential(net, [2, 2])


def test_schedules():
    assert pipeline_schedule("gpipe", 3, 1, 3) == [("F", 0), ("F", 1), ("F", 2),
                                                   ("B", 2), ("B", 1), ("B", 0)]
    # 1F1B on 3 stages, 4 micro-batches: warm-up p - s - 1, then alternate, then cool down
    assert pipeline_schedule("1f1b", 3, 0, 4) == [("F", 0), ("F", 1), ("F", 2), ("B", 0),
                                                  ("F", 3), ("B", 1), ("B", 2), ("B", 3)]
    assert pipeline_schedule("1f1b", 3, 2, 2) == [("F", 0), ("B", 0), ("F", 1), ("B", 1)]
    assert pipeline_schedule("1f1b", 4, 0, 2) == [("F", 0), ("F", 1), ("B", 0), ("B", 1)]
    for p in (2, 3, 4):
        for s in range(p):
            for m in (1, 2, 5):
                ops = pipeline_schedule("1f1b", p, s, m)
                assert sorted(ops) == sorted(pipeline_schedule("gpipe", p, s, m))
    with pytest.raises(ValueError, match="'zb' is not one of"):
        pipeline_schedule("zb", 2, 0, 2)


@needs_mpi
def test_world_of_one_pipe_is_gradient_accumulation_and_reports_errors():
    dist.init_process_group("mpi")
    try:
        sd.manual_seed(0)
        ref = _net().double()
        pipe = Pipe(_net().double(), chunks=3, schedule="1f1b", loss_fn=nn.MSELoss())
        x = sd.tensor(np.random.default_rng(0).standard_normal((8, 10)))
        y = sd.zeros(8, 2).double()
        loss = pipe.step(x, target=y)
        ref_loss = nn.MSELoss()(ref(x), y)
        ref_loss.backward()
        assert abs(loss.item() - ref_loss.item()) < 1e-12
        for p, q in zip(pipe.parameters(), ref.parameters()):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12, atol=1e-14)
        assert pipe.peak_in_flight == 1       # one stage: each forward is followed by its backward

        with pytest.raises(ValueError, match=r"balance=\[2, 3\] has 2 stages but the world has "
                                             "1 ranks; launch with 'shendu run --nproc 2'"):
            Pipe(_net(), balance=[2, 3])
        with pytest.raises(ValueError, match="micro-batch 1 reaches the loss with 3 rows "
                                             r"\(output \(3, 2\)\) but its share of the target "
                                             "has 2 rows"):
            pipe.step(x, target=sd.zeros(7, 2).double())
        with pytest.raises(ValueError, match="a batch of 2 rows cannot be split into chunks=3"):
            pipe.step(x[:2], target=y[:2])
        with pytest.raises(ValueError, match="first stage \\(rank 0\\) needs the input"):
            pipe.step(None, target=y)
        with pytest.raises(ValueError, match="schedule 'pipedream' is not one of"):
            Pipe(_net(), schedule="pipedream")
        with pytest.raises(TypeError, match="expected an nn.Sequential"):
            Pipe(nn.Linear(2, 2))
        with pytest.raises(RuntimeError, match=r"stage 0 \(layers 0..4\) failed on micro-batch "
                                               r"0 of shape \(3, 4\) float64 from the input"):
            pipe(sd.zeros(8, 4).double())
    finally:
        dist.destroy_process_group()
