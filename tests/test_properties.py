"""Property-based checks against NumPy: broadcasting, reductions, indexing."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import shendu as sd

SETTINGS = settings(max_examples=60, deadline=None)
floats = st.floats(-10, 10, allow_nan=False, width=64)


@SETTINGS
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=4), st.data())
def test_broadcast_binary_ops_match_numpy(shapes, data):
    a = data.draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=floats))
    b = data.draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=floats))
    ta, tb = sd.tensor(a, requires_grad=True), sd.tensor(b, requires_grad=True)
    out = ta * tb + ta - tb
    np.testing.assert_allclose(out.detach().numpy(), a * b + a - b)
    out.sum().backward()
    # d/da sum(a*b + a - b) = sum over broadcast dims of (b + 1)
    full = np.broadcast_to(b + 1, shapes.result_shape)
    lead = len(shapes.result_shape) - a.ndim
    ga = full.sum(tuple(range(lead)))
    ga = ga.sum(tuple(i for i, n in enumerate(a.shape) if n == 1), keepdims=True) \
        if a.ndim else ga.sum()
    np.testing.assert_allclose(ta.grad.numpy(), np.broadcast_to(ga, a.shape).reshape(a.shape))
    assert tb.grad.shape == b.shape


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
                  elements=floats), st.data())
def test_reductions_match_numpy(a, data):
    axis = data.draw(st.one_of(st.none(), st.integers(-a.ndim, a.ndim - 1)))
    keep = data.draw(st.booleans())
    t = sd.tensor(a)
    np.testing.assert_allclose(t.sum(axis, keepdim=keep).numpy(), a.sum(axis, keepdims=keep),
                               atol=1e-9)
    np.testing.assert_allclose(t.mean(axis, keepdim=keep).numpy(), a.mean(axis, keepdims=keep),
                               atol=1e-9)
    np.testing.assert_allclose(t.amax(axis, keepdim=keep).numpy(), a.max(axis, keepdims=keep))
    if a.size > 1 and (axis is None or a.shape[axis] > 1):
        np.testing.assert_allclose(t.var(axis, keepdim=keep).numpy(),
                                   a.var(axis, ddof=1, keepdims=keep), atol=1e-8, rtol=1e-8)


def _index(shape):
    """One entry per dimension (int, slice or list of ints), plus maybe a None (new axis)
    inserted somewhere: a None consumes no dimension, so it is placed afterwards."""
    def one(n):
        return st.one_of(st.integers(-n, n - 1), st.slices(n),
                         st.lists(st.integers(-n, n - 1), min_size=1, max_size=4))
    entries = st.tuples(*[one(n) for n in shape])
    return st.tuples(entries, st.one_of(st.none(), st.integers(0, len(shape)))).map(
        lambda e: e[0] if e[1] is None else e[0][:e[1]] + (None,) + e[0][e[1]:])


@SETTINGS
@given(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5).flatmap(
    lambda s: st.tuples(st.just(s), _index(s))))
def test_indexing_matches_numpy_and_scatters_back(shape_index):
    shape, index = shape_index
    # NumPy treats several list indices as one advanced index: keep at most one list
    lists = [i for i, v in enumerate(index) if isinstance(v, list)]
    index = tuple(v if not isinstance(v, list) or i == (lists[0] if lists else -1) else 0
                  for i, v in enumerate(index))
    a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    t = sd.tensor(a, requires_grad=True)
    out = t[index]
    np.testing.assert_array_equal(out.detach().numpy(), a[index])
    out.sum().backward()
    expected = np.zeros_like(a)
    np.add.at(expected, index, 1.0)
    np.testing.assert_array_equal(t.grad.numpy(), expected)


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5),
                  elements=floats, unique=True), st.data())
def test_max_min_indices_cumsum_prod_match_numpy(a, data):
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
    t = sd.tensor(a)
    values, indices = t.max(axis)
    np.testing.assert_array_equal(values.numpy(), a.max(axis))
    np.testing.assert_array_equal(indices.numpy(), a.argmax(axis))
    np.testing.assert_array_equal(t.min(axis).indices.numpy(), a.argmin(axis))
    assert t.argmax().item() == a.argmax() and t.argmin().item() == a.argmin()
    np.testing.assert_allclose(t.cumsum(axis).numpy(), a.cumsum(axis), atol=1e-9)
    np.testing.assert_allclose(t.std(axis, unbiased=False).numpy(), a.std(axis), atol=1e-9)
    small = np.clip(a, -2, 2)
    np.testing.assert_allclose(sd.tensor(small).prod(axis).numpy(), small.prod(axis),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(t.logsumexp(axis).numpy(),
                               np.log(np.exp(a - a.max()).sum(axis)) + a.max(), rtol=1e-9,
                               atol=1e-12)


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
                  elements=floats), st.data())
def test_mask_and_repeated_integer_indexing_scatter_back(a, data):
    mask = data.draw(hnp.arrays(np.bool_, a.shape))
    t = sd.tensor(a, requires_grad=True)
    out = t[sd.tensor(mask)]
    np.testing.assert_array_equal(out.detach().numpy(), a[mask])
    (out * 2).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.where(mask, 2.0, 0.0))
    if a.shape[0]:
        idx = np.array(data.draw(st.lists(st.integers(-a.shape[0], a.shape[0] - 1),
                                          min_size=1, max_size=6)))
        t.grad = None
        t[sd.tensor(idx)].sum().backward()
        expected = np.zeros_like(a)
        np.add.at(expected, idx, 1.0)  # repeated indices accumulate
        np.testing.assert_array_equal(t.grad.numpy(), expected)
