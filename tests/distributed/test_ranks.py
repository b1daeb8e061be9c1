"""``shendu.train.data_parallel.Ranks``, the helper of hand-written data-parallel loops
(``shendu detect train --nproc``, ``examples/segment_canvas.py --nproc``): a world of one
in this process, and 2 real ranks against sums computed by hand."""
import json

import pytest
from mpijob import rank_lines

import shendu as sd
from shendu.train.data_parallel import Ranks


def test_a_world_of_one_is_plain_arithmetic():
    solo = Ranks()
    assert (solo.rank, solo.size) == (0, 1)
    assert solo.share([3, 1, 4, 1, 5]) == [3, 1, 4, 1, 5]
    assert solo.agreed(0.375) == 0.375 and solo.total(2.5) == 2.5
    assert solo.mean([1.0, 2.0, 4.5]) == pytest.approx(2.5, rel=1e-15)
    assert solo.mean([]) is None
    model = sd.nn.Linear(2, 2)
    assert solo.wrap(model) is model
    assert (Ranks.of_process_group().rank, Ranks.of_process_group().size) == (0, 1)


def test_each_rank_takes_its_own_contiguous_share():
    batch = list(range(12))
    shares = [Ranks(r, 3).share(batch) for r in range(3)]
    assert shares == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_bad_rank_and_a_batch_that_does_not_split_are_refused():
    with pytest.raises(ValueError, match=r"Ranks: rank 2 is not in 0..1 \(size 2\)"):
        Ranks(2, 2)
    with pytest.raises(ValueError, match="global batch and must split evenly over"
                                         " --nproc 2 ranks"):
        Ranks(0, 2).share(list(range(7)))


JOB = """
import json
import shendu as sd
import shendu.distributed as dist
from shendu.train.data_parallel import Ranks

dist.init_process_group("mpi")
ranks = Ranks.of_process_group()
r = ranks.rank
model = sd.nn.Linear(3, 1)
sd.nn.init.constant_(model.weight, float(r + 1))   # rank 0's weights must win
wrapped = ranks.wrap(model)
print(json.dumps({
    "rank": r, "size": ranks.size, "share": ranks.share(list(range(8))),
    "agreed": ranks.agreed(0.25 + r),             # rank 0's value everywhere
    "total": ranks.total(1.5 * (r + 1)),          # 1.5 + 3.0
    "mean": ranks.mean([1.0, 2.0] if r == 0 else [6.0, 7.0]),   # 16 / 4
    "wrapped": type(wrapped).__name__,
    "weight": wrapped.module.weight.detach().numpy().ravel().tolist()}), flush=True)
dist.destroy_process_group()
"""


def test_two_ranks_share_agree_and_sum(run_job):
    done = run_job(JOB, env={"SHENDU_JIT": "0"})
    assert done.returncode == 0, done.stderr + done.stdout
    seen = [json.loads(rank_lines(done.stdout, r)[-1]) for r in (0, 1)]
    assert [s["share"] for s in seen] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    for s in seen:
        assert s["size"] == 2 and s["wrapped"] == "DistributedDataParallel"
        assert s["agreed"] == 0.25 and s["total"] == 4.5 and s["mean"] == 4.0
        assert s["weight"] == [1.0, 1.0, 1.0]
