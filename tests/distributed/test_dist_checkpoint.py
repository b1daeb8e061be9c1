"""sd.distributed.checkpoint: a 2-rank DDP job whose rank 1 is SIGKILLed mid-epoch, resumed
from its last checkpoint, ends with bit-for-bit the parameters of an uninterrupted run; the
sampler position and per-rank random streams come back; errors are clear."""
import numpy as np
import pytest
from mpijob import rank_lines

import shendu as sd
from shendu.data import DistributedSampler
from shendu.distributed import checkpoint

TRAIN = """
import os, signal, sys
import numpy as np
import shendu as sd
import shendu.distributed as dist
from shendu import nn
from shendu.data import DataLoader, Dataset, DistributedSampler
from shendu.data._rng import data_rng
from shendu.distributed import checkpoint
from shendu.nn.parallel import DistributedDataParallel as DDP

mode = sys.argv[1]                  # full | crash | resume
dist.init_process_group("mpi")
r = dist.get_rank()
sd.manual_seed(10 + r)              # dropout draws differ per rank ...
np.random.seed(20 + r)              # ... and so does the input noise
data = np.random.default_rng(0)
X, Y = data.standard_normal((20, 4)), data.standard_normal((20, 1))

class Jittered(Dataset):            # a random transform: draws from the loader's batch stream
    def __len__(self):
        return 20
    def __getitem__(self, i):
        return sd.tensor(X[i] + data_rng().standard_normal(4) * 0.1), sd.tensor(Y[i])

ds = Jittered()
model = DDP(nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Tanh(), nn.Linear(8, 1)).double())
opt = sd.optim.Adam(model.parameters(), lr=0.01)
sampler = DistributedSampler(ds, seed=5)
loader = DataLoader(ds, batch_size=2, sampler=sampler)
step, start_epoch, position = 0, 0, 0
if mode == "resume":
    info = checkpoint.load("ckpt.sd", model, opt, loader=loader)
    step, start_epoch, position = info["extra"]["step"], info["epoch"], info["position"]
    print("resumed at", step, start_epoch, position)
for epoch in range(start_epoch, 3):
    sampler.set_epoch(epoch)
    if epoch != start_epoch:
        position = 0
    for xb, yb in loader:
        xb = xb + sd.tensor(np.random.standard_normal(xb.shape) * 0.1)
        opt.zero_grad()
        ((model(xb) - yb) ** 2).mean().backward()
        opt.step()
        step, position = step + 1, position + len(xb)
        if mode != "full" and step % 3 == 0:
            checkpoint.save("ckpt.sd", model, opt, position=position, loader=loader,
                            extra={"step": step})
        if mode == "crash" and step == 8 and r == 1:
            os.kill(os.getpid(), signal.SIGKILL)     # two steps after the last checkpoint
params = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
if r == 0:
    np.save(f"final_{mode}.npy", params)
print("done", step, params.tobytes().hex()[:16])
dist.destroy_process_group()
"""


def test_killed_job_resumes_to_the_uninterrupted_result(run_job, tmp_path):
    full = run_job(TRAIN, args=("full",))
    assert full.returncode == 0, full.stdout + full.stderr
    crash = run_job(TRAIN, args=("crash",))
    assert crash.returncode != 0, crash.stdout + crash.stderr
    assert (tmp_path / "ckpt.sd").exists() and not (tmp_path / "final_crash.npy").exists()
    resume = run_job(TRAIN, args=("resume",))
    assert resume.returncode == 0, resume.stdout + resume.stderr
    # the checkpoint of step 6 is mid-epoch 1 (5 steps per epoch): position 2 of 10
    for rank in (0, 1):
        lines = rank_lines(resume.stdout, rank)
        assert lines[0] == "resumed at 6 1 2", resume.stdout
        assert lines[1] == rank_lines(full.stdout, rank)[0], (full.stdout, resume.stdout)
        assert lines[1].startswith("done 15 ")
    a, b = np.load(tmp_path / "final_full.npy"), np.load(tmp_path / "final_resume.npy")
    assert a.tobytes() == b.tobytes()           # bit for bit, not merely close


def test_single_process_round_trip_restores_rng_sampler_and_state(tmp_path):
    path = tmp_path / "c.sd"
    model = sd.nn.Linear(3, 2)
    opt = sd.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(sd.randn(4, 3)).sum().backward()
    opt.step()
    sampler = DistributedSampler(range(10), num_replicas=2, rank=1, seed=4)
    sampler.set_epoch(2)
    checkpoint.save(path, model, opt, sampler, position=3, extra={"step": 11})
    want_sd, want_np = sd.rand(4).numpy(), np.random.rand(3)
    rest = list(sampler)[3:]

    model2 = sd.nn.Linear(3, 2)
    opt2 = sd.optim.SGD(model2.parameters(), lr=0.5, momentum=0.9)
    sampler2 = DistributedSampler(range(10), num_replicas=2, rank=1, seed=4)
    info = checkpoint.load(path, model2, opt2, sampler2)
    assert info == {"epoch": 2, "position": 3, "world_size": 1, "extra": {"step": 11}}
    np.testing.assert_array_equal(sd.rand(4).numpy(), want_sd)
    np.testing.assert_array_equal(np.random.rand(3), want_np)
    assert len(sampler2) == 2
    sampler2.set_epoch(2)                       # the same epoch keeps the resume position
    assert list(sampler2) == rest and len(sampler2) == 5   # ... once
    for p, q in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    assert opt2.param_groups[0]["lr"] == 0.1
    sampler2.load_state_dict(sampler.state_dict(position=4))
    sampler2.set_epoch(3)                       # a new epoch starts from its beginning
    assert len(list(sampler2)) == 5


def test_checkpoint_errors(tmp_path):
    path = tmp_path / "c.sd"
    model = sd.nn.Linear(2, 1)
    checkpoint.save(path, model)
    with pytest.raises(ValueError, match="has no optimizer state"):
        checkpoint.load(path, model, sd.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="has no sampler state"):
        checkpoint.load(path, model, sampler=DistributedSampler(range(4), 1, 0))
    sd.save({"w": sd.ones(2)}, tmp_path / "plain.sd")
    with pytest.raises(ValueError, match="is not a distributed checkpoint"):
        checkpoint.load(tmp_path / "plain.sd", model)
    with pytest.raises(TypeError, match="has no state_dict"):
        checkpoint.save(path, model, sampler=[1, 2])
    with pytest.raises(TypeError, match="must be a shendu.nn.Module"):
        checkpoint.save(path, {"w": 1})
    s = DistributedSampler(range(10), num_replicas=2, rank=0, seed=1)
    with pytest.raises(ValueError, match="saved seed=1 but this sampler has 2"):
        DistributedSampler(range(10), 2, 0, seed=2).load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="position 9 is outside 0..5"):
        DistributedSampler(range(10), 2, 0, seed=1).load_state_dict(s.state_dict(position=9))
    with pytest.raises(RuntimeError, match="could not write"):
        checkpoint.save(tmp_path / "missing" / "c.sd", model)


class _Jittered(sd.data.Dataset):
    """A dataset with a random transform: it draws from the loader's per-batch stream."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        from shendu.data._rng import data_rng
        return sd.tensor(float(i) + data_rng().standard_normal())


@pytest.mark.parametrize("workers", [0, 1])
def test_loader_resumes_mid_epoch_with_the_same_batches(tmp_path, workers):
    path, model = tmp_path / "c.sd", sd.nn.Linear(1, 1)

    def loader():
        sampler = DistributedSampler(_Jittered(), num_replicas=1, rank=0, seed=1)
        return sd.data.DataLoader(_Jittered(), batch_size=2, sampler=sampler,
                                  num_workers=workers)

    sd.manual_seed(3)
    first = loader()
    it = iter(first)
    next(it), next(it)
    checkpoint.save(path, model, position=4, loader=first)
    rest = [b.numpy() for b in it]
    after = sd.rand(3).numpy()                  # the global stream after this epoch

    sd.manual_seed(99)
    second = loader()
    info = checkpoint.load(path, model, loader=second)
    assert (info["epoch"], info["position"]) == (0, 4)
    second.sampler.set_epoch(info["epoch"])
    assert len(second) == 4
    resumed = [b.numpy() for b in second]
    assert len(resumed) == 4
    for a, b in zip(rest, resumed):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sd.rand(3).numpy(), after)
