"""DataLoader(num_workers=N): worker processes, order, seeding, init, errors, shutdown."""
import glob
import os
import random
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import shendu as sd
from shendu.data import DataLoader, Dataset, IterableDataset, TensorDataset, get_worker_info
from shendu.data import transforms as T


class Indexed(Dataset):
    """Sample i is (i, pid of the process that built it)."""

    def __init__(self, n=40, delay=0.0):
        self.n, self.delay = n, delay

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.delay:
            time.sleep(self.delay)
        return np.int64(i), np.int64(os.getpid())


class Draws(Dataset):
    """Each sample draws from the global generators the worker seeded."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return (np.int64(info.id), np.int64(info.seed), np.float64(random.random()),
                np.float64(np.random.rand()), sd.rand(1)[0].item())


class Exploding(Dataset):
    def __len__(self):
        return 20

    def __getitem__(self, i):
        if i == 13:
            raise KeyError(f"bad sample {i}")
        return np.float32(i)


class Shards(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        k, m = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(k, self.n, m))


def _children():
    """Live DataLoader worker processes of this process."""
    import multiprocessing as mp
    return [p for p in mp.active_children() if p.name.startswith("shendu-DataLoader-worker")]


def _wait_no_children(before=0, limit=10.0):
    deadline = time.monotonic() + limit
    while len(_children()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(_children())


@pytest.mark.parametrize("shuffle", [False, True])
def test_workers_keep_sampler_order_and_run_in_other_processes(shuffle):
    g = sd.Generator().manual_seed(3)
    plain = DataLoader(Indexed(), batch_size=3, shuffle=shuffle, generator=g)
    expected = [b[0].tolist() for b in plain]
    g.manual_seed(3)
    loader = DataLoader(Indexed(), batch_size=3, shuffle=shuffle, generator=g, num_workers=3)
    got = list(loader)
    assert [b[0].tolist() for b in got] == expected
    pids = {p for b in got for p in b[1].tolist()}
    assert os.getpid() not in pids and len(pids) >= 2
    assert _wait_no_children() == 0


def test_random_transforms_identical_with_and_without_workers():
    x = np.random.default_rng(0).random((30, 1, 6, 6)).astype(np.float32)
    ds = TensorDataset(sd.from_numpy(x), sd.arange(30))
    aug = T.Compose([T.RandomCrop(6, padding=1), T.RandomHorizontalFlip()])
    runs = []
    for workers in (0, 2):
        g = sd.Generator().manual_seed(11)
        loader = DataLoader(ds, batch_size=7, shuffle=True, generator=g, transform=aug,
                            num_workers=workers)
        runs.append([xb.numpy() for xb, _ in loader])
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def test_worker_seeds_are_base_plus_id_and_repeat_with_the_generator():
    def run():
        g = sd.Generator().manual_seed(5)
        loader = DataLoader(Draws(), batch_size=2, num_workers=2, generator=g)
        return [tuple(t.tolist() for t in b) for b in loader]

    first, second = run(), run()
    assert first == second
    ids = [b[0][0] for b in first]
    seeds = {b[0][0]: b[1][0] for b in first}
    assert ids == [0, 1, 0, 1]
    assert seeds[1] == seeds[0] + 1
    # the two workers draw different numbers from every seeded generator
    w0 = [b for b in first if b[0][0] == 0][0]
    w1 = [b for b in first if b[0][0] == 1][0]
    for col in (2, 3, 4):
        assert w0[col] != w1[col]
    # Python's generator in worker 0 was seeded with its seed
    random.seed(seeds[0])
    assert w0[2][0] == random.random()


def _init_marks(worker_id):
    np.random.seed(1000 + worker_id)  # after the loader's seeding, so this one wins
    os.environ["SHENDU_TEST_WORKER"] = str(worker_id)


class Marked(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return np.int64(os.environ.get("SHENDU_TEST_WORKER", "-1")), np.float64(np.random.rand())


def test_worker_init_fn_runs_in_each_worker_after_seeding():
    loader = DataLoader(Marked(), batch_size=1, num_workers=2, worker_init_fn=_init_marks)
    got = [(int(a), float(b)) for a, b in loader]
    assert [w for w, _ in got] == [0, 1, 0, 1, 0, 1]
    assert got[0][1] == np.random.RandomState(1000).rand()
    assert got[1][1] == np.random.RandomState(1001).rand()
    assert get_worker_info() is None  # the main process is no worker
    assert "SHENDU_TEST_WORKER" not in os.environ


def test_worker_exception_reraised_with_worker_id_and_traceback():
    loader = DataLoader(Exploding(), batch_size=4, num_workers=2)
    got = []
    with pytest.raises(KeyError, match="bad sample 13") as info:
        for xb in loader:
            got.append(xb.tolist())
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    note = "\n".join(info.value.__notes__)
    assert "DataLoader worker process 1" in note and "batch 3" in note
    assert "__getitem__" in note and 'raise KeyError(f"bad sample {i}")' in note
    assert _wait_no_children() == 0


def _bad_init(worker_id):
    raise ValueError(f"init failed in {worker_id}")


def test_worker_init_fn_exception_reaches_caller():
    with pytest.raises(ValueError, match="init failed in 0"):
        list(DataLoader(Indexed(8), batch_size=2, num_workers=2, worker_init_fn=_bad_init))
    assert _wait_no_children() == 0


def test_break_stops_the_workers():
    loader = DataLoader(Indexed(400, delay=0.001), batch_size=2, num_workers=2)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert _wait_no_children() == 0
    it = iter(loader)
    next(it)
    assert len(_children()) == 2
    it.close()
    assert _wait_no_children() == 0
    with pytest.raises(StopIteration):
        next(it)


def test_persistent_workers_survive_epochs_and_a_break():
    loader = DataLoader(Indexed(30), batch_size=4, num_workers=2, persistent_workers=True,
                        shuffle=True, generator=sd.Generator().manual_seed(0))
    pids = []
    for _epoch in range(3):
        ids = []
        for b in loader:
            ids += b[0].tolist()
            pids.append(frozenset(b[1].tolist()))
        assert sorted(ids) == list(range(30))
    assert len(frozenset().union(*pids)) == 2  # the same two processes every epoch
    for i, _ in enumerate(loader):  # an abandoned epoch does not leak into the next
        if i == 1:
            break
    assert sorted(i for b in loader for i in b[0].tolist()) == list(range(30))
    assert len(_children()) == 2
    old = iter(loader)
    next(old)
    new = iter(loader)  # the workers serve the newest epoch; the old iterator says so
    with pytest.raises(RuntimeError, match="newer iter"):
        next(old)
    assert sorted(i for b in new for i in b[0].tolist()) == list(range(30))
    del loader, old, new
    import gc
    gc.collect()
    assert _wait_no_children() == 0


def test_iterable_dataset_shards_by_worker_info():
    loader = DataLoader(Shards(10), batch_size=2, num_workers=2)
    assert [b.tolist() for b in loader] == [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]
    loader = DataLoader(Shards(7), batch_size=None, num_workers=3)
    assert sorted(int(b) for b in loader) == list(range(7))


def test_timeout_prefetch_factor_pin_memory_and_context_checks():
    with pytest.raises(RuntimeError, match="timed out"):
        list(DataLoader(Indexed(4, delay=0.8), batch_size=1, num_workers=1, timeout=0.1))
    assert _wait_no_children() == 0
    loader = DataLoader(Indexed(9), batch_size=2, num_workers=2, prefetch_factor=1,
                        pin_memory=True)
    assert [i for b in loader for i in b[0].tolist()] == list(range(9))
    with pytest.raises(ValueError, match="num_workers > 0"):
        DataLoader(Indexed(4), persistent_workers=True)
    with pytest.raises(ValueError, match="multiprocessing_context"):
        DataLoader(Indexed(4), num_workers=1, multiprocessing_context="threads")


def test_spawn_context_with_a_picklable_dataset():
    loader = DataLoader(Indexed(6), batch_size=2, num_workers=2,
                        multiprocessing_context="spawn")
    assert [b[0].tolist() for b in loader] == [[0, 1], [2, 3], [4, 5]]


_AFTER_TRAINING = textwrap.dedent("""
    import numpy as np, shendu as sd
    from shendu import nn
    from shendu.backend import jit
    from shendu.data import DataLoader, Dataset

    # a training step on the fast paths: MKL products and numba's OpenMP kernels
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 13 * 13, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = sd.optim.Adam(model.parameters())
    sd.set_num_threads(2)
    x, y = sd.randn(32, 1, 28, 28), sd.randint(0, 10, (32,))
    big = sd.randn(1024, 1024)  # large enough that both OpenMP threads start
    for _ in range(2):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        sd.relu(big @ big)

    class Computes(Dataset):
        # each sample runs shendu products and convolutions in the worker
        def __len__(self):
            return 8
        def __getitem__(self, i):
            a = sd.randn(512, 512)
            with sd.no_grad():
                out = model(sd.randn(1, 1, 28, 28))
            return np.float32((a @ a).sum().item() + out.sum().item())

    got = list(DataLoader(Computes(), batch_size=2, num_workers=2))
    print("ok", len(got), jit.enabled())
""")


def test_fork_after_an_mkl_numba_training_step_does_not_hang():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    try:
        out = subprocess.run([sys.executable, "-c", _AFTER_TRAINING], env=env, timeout=120,
                             capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail("DataLoader workers forked after a training step hung")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok 4")


class Images(Dataset):
    def __init__(self):
        self.x = np.random.default_rng(0).random((24, 3, 32, 32), dtype=np.float32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], np.int64(i)


def _shm_files():
    return sorted(glob.glob(f"/dev/shm/shendu-dl-{os.getpid()}-*"))


def test_large_batches_travel_through_shared_memory_and_leave_nothing_behind():
    ds = Images()
    loader = DataLoader(ds, batch_size=8, num_workers=2)  # 96 KiB batches: shared memory
    for xb, yb in loader:
        np.testing.assert_array_equal(xb.numpy(), ds.x[yb.numpy()])
        xb.numpy()[:] = 0  # the batch is the main process's own, writable memory
    assert _shm_files() == []
    for i, _ in enumerate(DataLoader(ds, batch_size=4, num_workers=2, prefetch_factor=3)):
        if i == 0:
            break  # replies still in flight: shutdown removes their files
    assert _wait_no_children() == 0
    assert _shm_files() == []
