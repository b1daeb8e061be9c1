"""Conv2d followed by 2x2 max pooling (and a ReLU) as one op."""
from __future__ import annotations

from ...ops import conv, pool
from ..graph import Graph, Node


def fuse_conv_pool(graph: Graph) -> Graph:
    """Replace ``max_pool2d(conv2d(x, w, b))`` with 2x2 windows, stride 2, by one
    ``conv2d_pool`` node (``Conv2dPool``) when the convolution's result has no other
    reader; a ReLU fused into either (``conv2d_relu``, ``max_pool2d_relu``) stays, applied
    after the max (the same values and gradients: ReLU is monotonic). The pooling then
    happens while each chunk of the convolution's result is in cache, and the full-size
    result is never stored. Runs after ``fuse_linear_activation``.

    >>> import shendu as sd
    >>> net = sd.nn.Sequential(sd.nn.Conv2d(1, 2, 3), sd.nn.ReLU(), sd.nn.MaxPool2d(2))
    >>> from shendu.jit.passes import fuse_linear_activation
    >>> g = fuse_linear_activation(sd.jit.trace(net, sd.ones(1, 1, 6, 6)).graph)
    >>> [n.op for n in fuse_conv_pool(g)]
    ['conv2d_pool']
    """
    g = graph.clone()
    users = g.users()
    outputs = {id(v) for v in g.outputs}
    dropped = set()
    for q in g:
        if not _pools_2x2(q) or q.inputs[0].kind != "node":
            continue
        v = q.inputs[0]
        p = v.node
        if (p.function is not conv.Conv2d or len(users.get(id(v), ())) != 1
                or id(v) in outputs):
            continue
        relu = bool(p.attrs.get("relu") or q.attrs.get("relu"))
        attrs = {k: a for k, a in p.attrs.items() if k != "relu"}
        p.attrs = dict(attrs, pool_hw=tuple(q.attrs["out_hw"]), relu=relu)
        p.function, p.op = conv.Conv2dPool, "conv2d_pool"
        # the convolution node now gives the pooling's result
        p.outputs = q.outputs
        for o in p.outputs:
            o.node = p
        p.meta["fused"] = p.meta.get("fused", []) + [q.name] + q.meta.get("fused", [])
        dropped.add(id(q))
    g[:] = [n for n in g if id(n) not in dropped]
    return g


def _pools_2x2(q: Node) -> bool:
    a = q.attrs
    return (q.function is pool.MaxPool2d and not q.multi and tuple(a["k"]) == (2, 2)
            and tuple(a["stride"]) == (2, 2) and not any(a["pad"])
            and tuple(a["dilation"]) == (1, 1)
            and pool._tiles(q.inputs[0].shape, a["k"], a["stride"], a["pad"], a["dilation"],
                            a["out_hw"]))
