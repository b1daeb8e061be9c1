"""Graph-to-graph optimisation passes; each takes a ``Graph`` and returns a new one (the
input graph is left as it was) and can be run alone.

* ``eliminate_dead_code`` — drop nodes whose results nobody uses (unless they have effects);
* ``fold_constants`` — evaluate nodes whose inputs are all constants once, at compile time;
* ``eliminate_common_subexpressions`` — one node for identical calls on identical inputs;
* ``pool_before_relu`` — ``relu`` then ``max_pool2d`` as the pooling first (training);
* ``fuse_linear_activation`` — Linear/Conv2d (+bias) followed by ReLU as one op;
* ``fuse_linear_chain`` — in inference graphs, Linear layers that feed one another as one
  node (rows split between threads, weights packed once);
* ``fuse_conv_pool`` — Conv2d then 2x2 max pooling (and ReLU) as one op;
* ``fuse_elementwise`` — groups of elementwise ops as one ``FusedElementwise`` node;
* ``plan_memory`` — for inference, which node results may be written into buffers whose
  values are dead (lifetimes that do not overlap).

>>> import shendu as sd
>>> from shendu.jit import passes
>>> gm = sd.jit.trace(lambda x: ((x * 2) + 1).exp(), sd.ones(3))
>>> [n.op for n in passes.fuse_elementwise(gm.graph)]
['fused_elementwise']
"""
from .cse import eliminate_common_subexpressions
from .dce import eliminate_dead_code
from .fold import fold_constants
from .fuse_conv_pool import fuse_conv_pool
from .fuse_elementwise import fuse_elementwise
from .fuse_linear import fuse_linear_activation
from .fuse_linear_chain import fuse_linear_chain
from .memory import plan_memory
from .pool_relu import pool_before_relu

DEFAULT = (eliminate_dead_code, fold_constants, eliminate_common_subexpressions,
           pool_before_relu, fuse_linear_activation, fuse_linear_chain, fuse_conv_pool,
           fuse_elementwise, eliminate_dead_code)

__all__ = ["eliminate_dead_code", "fold_constants", "eliminate_common_subexpressions",
           "pool_before_relu", "fuse_linear_activation", "fuse_linear_chain", "fuse_conv_pool",
           "fuse_elementwise", "plan_memory", "DEFAULT"]
