"""DataLoader: coverage, order, seeding, drop_last, samplers, collate, prefetch, errors."""
import threading
import time

import numpy as np
import pytest

import shendu as sd
from shendu.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
)
from shendu.data import transforms as T


def _ds(n=103, d=3):
    x = np.arange(n * d, dtype=np.float32).reshape(n, d)
    return TensorDataset(sd.from_numpy(x), sd.from_numpy(np.arange(n)))


class PerSample(Dataset):
    """The same data as _ds, but only through __getitem__ (the slow path)."""

    def __init__(self, n=103, d=3):
        self.x = np.arange(n * d, dtype=np.float32).reshape(n, d)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], i


def _ids(loader):
    return [yb.tolist() for _, yb in loader]


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "shendu-DataLoader-prefetch"]


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_exactly_once(shuffle, prefetch):
    loader = DataLoader(_ds(), batch_size=10, shuffle=shuffle, prefetch=prefetch)
    ids = [i for b in _ids(loader) for i in b]
    assert sorted(ids) == list(range(103))
    assert (ids == list(range(103))) == (not shuffle)
    assert len(loader) == 11


def test_batches_hold_matching_rows_as_tensors():
    for xb, yb in DataLoader(_ds(), batch_size=16, shuffle=True):
        assert isinstance(xb, sd.Tensor) and xb.dtype == sd.float32 and yb.dtype == sd.int64
        assert np.array_equal(xb.numpy()[:, 0], yb.numpy() * 3)


def test_drop_last_and_len():
    ds = _ds(103)
    for bs, drop, n_batches, last in ((10, False, 11, 3), (10, True, 10, 10), (103, True, 1, 103)):
        loader = DataLoader(ds, batch_size=bs, drop_last=drop)
        sizes = [len(yb) for _, yb in loader]
        assert len(loader) == len(sizes) == n_batches and sizes[-1] == last
    assert len(DataLoader(ds, batch_size=200, drop_last=True)) == 0
    assert list(DataLoader(ds, batch_size=200, drop_last=True)) == []


def test_shuffle_reproducible_from_manual_seed_and_generator():
    ds = _ds()
    sd.manual_seed(123)
    first = _ids(DataLoader(ds, batch_size=8, shuffle=True))
    sd.manual_seed(123)
    assert _ids(DataLoader(ds, batch_size=8, shuffle=True)) == first
    loader = DataLoader(ds, batch_size=8, shuffle=True)
    assert _ids(loader) != _ids(loader)  # a new order every epoch
    g = [DataLoader(ds, batch_size=8, shuffle=True, generator=sd.Generator().manual_seed(7))
         for _ in range(2)]
    assert _ids(g[0]) == _ids(g[1])
    sd.manual_seed(0)
    a = _ids(g[0])
    sd.manual_seed(1)  # the global seed does not touch an explicit generator's stream
    assert _ids(g[1]) == a


@pytest.mark.parametrize("shuffle", [False, True])
def test_fast_path_equals_per_sample_path(shuffle):
    kw = dict(batch_size=9, shuffle=shuffle)
    fast = DataLoader(_ds(), generator=sd.Generator().manual_seed(4), **kw)
    slow = DataLoader(PerSample(), generator=sd.Generator().manual_seed(4), **kw)
    assert fast._whole_arrays and not slow._whole_arrays
    for (fx, fy), (sx, sy) in zip(fast, slow, strict=True):
        assert np.array_equal(fx.numpy(), sx.numpy()) and np.array_equal(fy.numpy(), sy.numpy())


def test_prefetch_gives_identical_batches_with_random_transform():
    imgs = np.arange(40 * 2 * 6 * 6, dtype=np.float32).reshape(40, 2, 6, 6)
    ds = TensorDataset(imgs, np.arange(40))
    aug = T.Compose([T.RandomCrop(6, padding=2), T.RandomHorizontalFlip()])
    runs = []
    for prefetch in (0, 3):
        sd.manual_seed(99)
        loader = DataLoader(ds, batch_size=7, shuffle=True, prefetch=prefetch, transform=aug)
        runs.append([(x.numpy(), y.numpy()) for x, y in loader])
    assert len(runs[0]) == len(runs[1]) == 6
    for (x0, y0), (x1, y1) in zip(*runs):
        assert np.array_equal(x0, x1) and np.array_equal(y0, y1)
    assert not all(np.array_equal(x, imgs[y]) for x, y in runs[0])  # it did augment


def test_prefetch_thread_stops_when_loop_breaks():
    before = len(_prefetch_threads())
    loader = DataLoader(_ds(5000), batch_size=4, prefetch=2)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    deadline = time.monotonic() + 5
    while len(_prefetch_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_prefetch_threads()) == before
    it = iter(loader)  # explicit close, too
    assert len(it) == 1250
    next(it)
    assert len(_prefetch_threads()) == before + 1
    it.close()
    assert len(_prefetch_threads()) == before
    with pytest.raises(StopIteration):
        next(it)


def test_num_workers_gives_every_sample_in_order():
    loader = DataLoader(_ds(), batch_size=10, num_workers=2)
    assert loader.prefetch_factor == 2
    assert [i for b in _ids(loader) for i in b] == list(range(103))


class Exploding(Dataset):
    def __len__(self):
        return 20

    def __getitem__(self, i):
        if i == 13:
            raise KeyError(f"bad sample {i}")
        return np.float32(i)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_worker_exception_reaches_caller(prefetch):
    loader = DataLoader(Exploding(), batch_size=4, prefetch=prefetch)
    got = []
    with pytest.raises(KeyError, match="bad sample 13") as info:
        for xb in loader:
            got.append(xb.tolist())
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert any("batch 3" in note for note in getattr(info.value, "__notes__", ["batch 3"]))
    assert not _prefetch_threads()


def test_custom_sampler_batch_sampler_and_collate():
    ds = _ds(10)
    loader = DataLoader(ds, batch_size=3, sampler=[9, 8, 7, 1])
    assert _ids(loader) == [[9, 8, 7], [1]]
    loader = DataLoader(ds, batch_sampler=[[0, 5], [2]])
    assert _ids(loader) == [[0, 5], [2]] and len(loader) == 2

    def collate(samples):
        return sum(int(y) for _, y in samples)

    assert list(DataLoader(ds, batch_size=4, collate_fn=collate)) == [6, 22, 17]
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, batch_size=4, batch_sampler=[[0]])
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, sampler=[0], shuffle=True)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(ds, batch_size=0)


def test_batch_size_none_yields_converted_samples():
    items = list(DataLoader(PerSample(4), batch_size=None))
    assert len(items) == 4 and isinstance(items[1][0], sd.Tensor)
    assert items[1][0].tolist() == [3, 4, 5] and items[1][1] == 1


def test_iterable_dataset():
    class Stream(IterableDataset):
        def __iter__(self):
            return ((np.float32(i), i % 2) for i in range(7))

        def __len__(self):
            return 7

    loader = DataLoader(Stream(), batch_size=3)
    batches = [(x.tolist(), y.tolist()) for x, y in loader]
    assert batches == [([0, 1, 2], [0, 1, 0]), ([3, 4, 5], [1, 0, 1]), ([6], [0])]
    assert len(loader) == 3 and len(DataLoader(Stream(), batch_size=3, drop_last=True)) == 2
    with pytest.raises(ValueError, match="IterableDataset"):
        DataLoader(Stream(), shuffle=True)


def test_samplers():
    g = sd.Generator().manual_seed(0)
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    perm = list(RandomSampler(range(50), generator=g))
    assert sorted(perm) == list(range(50)) and perm != list(range(50))
    assert len(list(RandomSampler(range(5), num_samples=12, generator=g))) == 12
    chained = list(RandomSampler(range(5), num_samples=10, generator=g))
    assert sorted(chained) == sorted(list(range(5)) * 2)
    repl = list(RandomSampler(range(3), replacement=True, num_samples=100, generator=g))
    assert set(repl) == {0, 1, 2}
    assert sorted(SubsetRandomSampler([10, 20, 30], generator=g)) == [10, 20, 30]
    w = list(WeightedRandomSampler([0.0, 1.0, 3.0], 4000, generator=g))
    counts = np.bincount(w, minlength=3)
    assert counts[0] == 0 and abs(counts[2] / counts[1] - 3) < 0.3
    no_repl = list(WeightedRandomSampler([1, 1, 1, 0], 3, replacement=False, generator=g))
    assert sorted(no_repl) == [0, 1, 2]
    with pytest.raises(ValueError, match="without replacement"):
        WeightedRandomSampler([1, 0], 2, replacement=False)
    with pytest.raises(ValueError, match="non-negative"):
        WeightedRandomSampler([1, -1], 2)
    bs = BatchSampler(SequentialSampler(range(7)), 3, drop_last=True)
    assert list(bs) == [[0, 1, 2], [3, 4, 5]] and len(bs) == 2
    assert list(BatchSampler(iter([4, 2, 0]), 2, drop_last=False)) == [[4, 2], [0]]


def test_weighted_sampler_in_loader_balances_classes():
    y = np.array([0] * 90 + [1] * 10)
    weights = 1.0 / np.bincount(y)[y]
    sampler = WeightedRandomSampler(weights, 2000, generator=sd.Generator().manual_seed(1))
    loader = DataLoader(TensorDataset(np.zeros(100), y), batch_size=100, sampler=sampler)
    ys = np.concatenate([yb.numpy() for _, yb in loader])
    assert abs(ys.mean() - 0.5) < 0.05


def test_default_collate_structures():
    from collections import namedtuple
    Pair = namedtuple("Pair", "a b")
    out = default_collate([Pair(np.zeros(2, np.float32), 1), Pair(np.ones(2, np.float32), 2)])
    assert isinstance(out, Pair) and out.a.shape == (2, 2) and out.b.tolist() == [1, 2]
    d = default_collate([{"x": sd.tensor([1.0]), "name": "a"}, {"x": sd.tensor([2.0]),
                                                               "name": "b"}])
    assert d["x"].tolist() == [[1.0], [2.0]] and d["name"] == ["a", "b"]
    floats = default_collate([0.5, 1.5])
    assert floats.dtype == sd.float32
    assert default_collate([True, False]).dtype == np.bool_
    assert default_collate([np.int32(3), np.int32(4)]).dtype == np.int32
    with pytest.raises(ValueError, match=r"sample 0 has \(2,\), sample 1 has \(3,\)"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="don't know how to collate"):
        default_collate([object(), object()])


def test_loader_transform_target_transform_and_device():
    ds = TensorDataset(np.full((4, 1, 2, 2), 255, np.uint8), np.arange(4))
    loader = DataLoader(ds, batch_size=2, transform=T.ToTensor(),
                        target_transform=lambda y: y * 10, device="cpu")
    (x, y), _ = list(loader)
    assert x.dtype == sd.float32 and float(x.numpy().max()) == 1.0
    assert y.tolist() == [0, 10]


def test_prefetch_timeout_raises():
    class Slow(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            time.sleep(0.5)
            return np.float32(i)

    with pytest.raises(RuntimeError, match="timed out"):
        list(DataLoader(Slow(), batch_size=1, prefetch=1, timeout=0.05))


def test_prefetch_overlaps_loading_with_compute():
    """With prefetch the next batch is assembled while the loop body runs: 10 batches
    that each take 40 ms to load and 40 ms to use finish in about 10 x 40 ms, not 800."""
    def slow_collate(samples):
        time.sleep(0.04)  # stands in for decoding/augmenting; sleeping frees the GIL
        return default_collate(samples)

    def run(prefetch):
        loader = DataLoader(_ds(40), batch_size=4, collate_fn=slow_collate, prefetch=prefetch)
        start = time.perf_counter()
        for _ in loader:
            time.sleep(0.04)  # stands in for the training step
        return time.perf_counter() - start

    serial, overlapped = run(0), run(2)
    assert serial > 0.75
    assert overlapped < 0.75 * serial, (serial, overlapped)
