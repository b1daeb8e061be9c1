"""Datasets, Subset/ConcatDataset, random_split and stratified_split."""
import numpy as np
import pytest

import shendu as sd
from shendu.data import (
    ConcatDataset,
    Dataset,
    Subset,
    TensorDataset,
    random_split,
    stratified_split,
)


def test_tensor_dataset_rows_and_get_batch():
    x = sd.arange(12).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 0, 1])
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[2]
    assert isinstance(xi, sd.Tensor) and xi.tolist() == [4, 5] and int(yi) == 0
    bx, by = ds.get_batch(np.array([5, 0, 3]))
    assert bx.tolist() == [[10, 11], [0, 1], [6, 7]] and by.tolist() == [1, 0, 1]


def test_tensor_dataset_size_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"tensor 0: \(3, 2\), tensor 1: \(4,\)"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


def test_subset_and_concat_and_add():
    a = TensorDataset(np.arange(5) * 10)
    b = TensorDataset(np.arange(3) * 100)
    sub = Subset(a, [4, 1])
    assert len(sub) == 2 and int(sub[0][0]) == 40
    assert sub.get_batch(np.array([1, 0]))[0].tolist() == [10, 40]
    both = a + b
    assert isinstance(both, ConcatDataset) and len(both) == 8
    assert [int(both[i][0]) for i in range(8)] == [0, 10, 20, 30, 40, 0, 100, 200]
    assert int(both[-1][0]) == 200
    with pytest.raises(IndexError):
        both[8]
    # the batched path interleaves datasets in the requested order
    assert both.get_batch(np.array([6, 0, 7, 4]))[0].tolist() == [100, 0, 200, 40]


def test_subset_of_plain_dataset_has_no_get_batch():
    class Plain(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return i

    assert not hasattr(Subset(Plain(), [0]), "get_batch")
    assert not hasattr(ConcatDataset([Plain(), TensorDataset(np.zeros(2))]), "get_batch")


@pytest.mark.parametrize("n, fractions, expected", [
    (10, [0.7, 0.3], [7, 3]),
    (11, [0.5, 0.5], [6, 5]),
    (10, [1 / 3, 1 / 3, 1 / 3], [4, 3, 3]),
    (7, [0.1, 0.1, 0.8], [1, 1, 5]),
])
def test_random_split_fraction_lengths_match_torch(n, fractions, expected):
    parts = random_split(range(n), fractions, generator=sd.Generator().manual_seed(0))
    assert [len(p) for p in parts] == expected
    torch = pytest.importorskip("torch")
    from torch.utils.data import random_split as torch_split
    ref = torch_split(range(n), fractions, generator=torch.Generator().manual_seed(0))
    assert [len(p) for p in ref] == expected


def test_random_split_partitions_and_is_seeded():
    parts = random_split(range(100), [60, 30, 10], generator=sd.Generator().manual_seed(3))
    seen = np.concatenate([p.indices for p in parts])
    assert sorted(seen.tolist()) == list(range(100))
    again = random_split(range(100), [60, 30, 10], generator=sd.Generator().manual_seed(3))
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(parts, again))
    sd.manual_seed(5)
    g1 = random_split(range(20), [10, 10])[0].indices
    sd.manual_seed(5)
    assert np.array_equal(g1, random_split(range(20), [10, 10])[0].indices)
    with pytest.raises(ValueError, match="sum to the dataset's length 100"):
        random_split(range(100), [50, 40])
    with pytest.raises(ValueError, match="sum to 1"):
        random_split(range(100), [0.5, 0.4])


def test_stratified_split_exact_proportions():
    labels = np.repeat(np.arange(10), 500)
    train, dev, test = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
    assert (len(train), len(dev), len(test)) == (4000, 500, 500)
    for part, per_class in ((train, 400), (dev, 50), (test, 50)):
        assert np.bincount(labels[part], minlength=10).tolist() == [per_class] * 10
    allidx = np.concatenate([train, dev, test])
    assert np.array_equal(np.sort(allidx), np.arange(5000))
    # seeded and shuffled (not sorted by class)
    assert np.array_equal(train, stratified_split(labels, (0.8, 0.1, 0.1), seed=0)[0])
    assert not np.array_equal(train, np.sort(train))


def test_stratified_split_uneven_classes_keep_totals_and_rows():
    labels = np.array([0] * 7 + [1] * 13 + [2] * 3)  # 23 samples
    parts = stratified_split(labels, (0.6, 0.2, 0.2), seed=1)
    sizes = [len(p) for p in parts]
    assert sum(sizes) == 23 and sizes == [14, 5, 4]  # largest-remainder of 23 * f
    for c, n_c in ((0, 7), (1, 13), (2, 3)):
        counts = [int(np.sum(labels[p] == c)) for p in parts]
        assert sum(counts) == n_c
        assert all(abs(k - n_c * f) < 1 + 1e-9 for k, f in zip(counts, (0.6, 0.2, 0.2)))


def test_stratified_split_of_dataset_gives_subsets():
    x = np.arange(40, dtype=np.float32)
    y = np.array([0] * 30 + [1] * 10)
    ds = TensorDataset(x, y)
    ds.targets = y
    train, test = stratified_split(ds, (0.5, 0.5), seed=0)
    assert isinstance(train, Subset) and len(train) == 20
    assert sum(int(train[i][1]) for i in range(20)) == 5
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(y, (0.5, 0.6))
    with pytest.raises(ValueError, match="1-d"):
        stratified_split(np.zeros((4, 2)), (0.5, 0.5))
