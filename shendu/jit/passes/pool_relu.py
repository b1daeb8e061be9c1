"""ReLU after max pooling instead of before it, where a backward will run."""
from __future__ import annotations

from ...ops.elementwise import Relu
from ...ops.pool import MaxPool2d
from ..graph import Graph, Value
from ._util import needs_grad


def pool_before_relu(graph: Graph) -> Graph:
    """Rewrite ``max_pool2d(relu(x))`` as ``relu(max_pool2d(x))`` when the ReLU's result
    is read by the pooling alone and a gradient will flow through it.

    The two are equal, values and gradients: ReLU is monotonic, so the largest of the
    rectified values is the rectified largest value and both orders route the gradient
    to the same element (where the maximum is not positive, both give it 0). What it buys
    in training: the ReLU runs, forward and backward, on the pooled array (a quarter of
    the elements for 2x2 windows; ``fuse_linear_activation`` then folds it into a tiled
    pooling), while the full-size pre-pooling result is freed right after the pooling
    (tiled pooling keeps only a one-byte code per output); and the convolution before it
    stays unfused, so its backward skips the ReLU mask. Without a backward the fused
    Conv2d+ReLU's in-kernel ReLU is cheaper, so inference graphs are left as they are.

    >>> import shendu as sd
    >>> net = sd.nn.Sequential(sd.nn.Conv2d(1, 2, 3), sd.nn.ReLU(), sd.nn.MaxPool2d(2))
    >>> g = sd.jit.trace(net, sd.ones(1, 1, 6, 6)).graph
    >>> [n.op for n in pool_before_relu(g)]
    ['conv2d', 'max_pool2d', 'relu']
    """
    g = graph.clone()
    grads = needs_grad(g)
    users = g.users()
    outputs = {id(v) for v in g.outputs}
    out = []
    for n in g:
        prev = out[-1] if out else None
        if prev is not None and _swappable(prev, n, users, outputs, grads):
            out[-1:] = _swap(prev, n)
        else:
            out.append(n)
    g[:] = out
    return g


def _swappable(relu, pool, users, outputs, grads) -> bool:
    v = relu.outputs[0]
    return (relu.function is Relu and pool.function is MaxPool2d and not pool.multi
            and pool.inputs[0] is v and len(users.get(id(v), ())) == 1
            and id(v) not in outputs and id(v) in grads)


def _swap(relu, pool):
    """The pooling on the ReLU's input, then the ReLU on the pooled values; readers of the
    pooled value now read the ReLU's result (the same value object, renamed after it)."""
    pooled = pool.outputs[0]
    pre = Value(pool.name, pooled.shape, pooled.dtype, "node", node=pool)
    pool.inputs = [relu.inputs[0]]
    pool.outputs = [pre]
    pooled.name, pooled.node, pooled.index = relu.name, relu, 0
    relu.inputs, relu.outputs = [pre], [pooled]
    relu.meta["moved_after"] = pool.name
    return [pool, relu]
