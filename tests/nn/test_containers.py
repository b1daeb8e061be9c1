"""Containers (Sequential, ModuleList/Dict, ParameterList/Dict) and Identity/Flatten/Unflatten."""
from collections import OrderedDict

import numpy as np
import pytest

import shendu as sd
from shendu.nn.containers import (
    Flatten,
    Identity,
    ModuleDict,
    ModuleList,
    ParameterDict,
    ParameterList,
    Sequential,
    Unflatten,
)
from shendu.nn.module import Module
from shendu.nn.parameter import Parameter


class AddC(Module):
    def __init__(self, c):
        super().__init__()
        self.c = Parameter(sd.tensor([float(c)]))

    def forward(self, x):
        return x + self.c

    def extra_repr(self):
        return f"c={self.c.item():g}"


def values(seq):
    return [m.c.item() for m in seq]


def test_sequential_forward_indexing_and_slicing():
    s = Sequential(AddC(1), AddC(2), AddC(3))
    assert s(sd.zeros(1)).item() == 6
    assert len(s) == 3 and values(s) == [1, 2, 3]
    assert s[-1] is list(s)[2]
    sub = s[1:]
    assert isinstance(sub, Sequential) and values(sub) == [2, 3] and sub[0] is s[1]
    assert list(sub._modules) == ["1", "2"]  # slices keep the original names, as torch does
    assert values(s[::-1]) == [3, 2, 1]
    with pytest.raises(IndexError, match="Sequential: index 3 is out of range for 3 entries"):
        s[3]
    assert [k for k, _ in s.named_parameters()] == ["0.c", "1.c", "2.c"]


def test_sequential_ordered_dict_and_mutation():
    s = Sequential(OrderedDict([("first", AddC(1)), ("second", AddC(2))]))
    assert s.first.c.item() == 1 and list(s.state_dict()) == ["first.c", "second.c"]
    s.append(AddC(3))
    assert list(s._modules) == ["first", "second", "2"]
    s = Sequential(AddC(1), AddC(3))
    assert s.insert(1, AddC(2)) is s and values(s) == [1, 2, 3]
    assert list(s._modules) == ["0", "1", "2"]
    s.extend([AddC(4)])
    s[0] = AddC(10)
    del s[1]
    assert values(s) == [10, 3, 4] and list(s._modules) == ["0", "1", "2"]
    assert s.pop().c.item() == 4 and len(s) == 2
    assert values(s + Sequential(AddC(7))) == [10, 3, 7]
    assert s(sd.zeros(1)).item() == 13


def test_modulelist():
    ml = ModuleList([AddC(1), AddC(2)])
    ml += [AddC(3)]
    ml.append(AddC(4)).extend([AddC(5)])
    assert ml.insert(0, AddC(0)) is None
    assert values(ml) == [0, 1, 2, 3, 4, 5] and len(ml) == 6
    assert isinstance(ml[1:3], ModuleList) and values(ml[1:3]) == [1, 2]
    del ml[0:2]
    assert values(ml) == [2, 3, 4, 5] and list(ml._modules) == ["0", "1", "2", "3"]
    assert values(ml + ModuleList([AddC(9)])) == [2, 3, 4, 5, 9]

    class Holder(Module):
        def __init__(self):
            super().__init__()
            self.layers = ModuleList([AddC(1), AddC(2)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    h = Holder()
    assert [k for k, _ in h.named_parameters()] == ["layers.0.c", "layers.1.c"]
    assert h(sd.zeros(1)).item() == 3
    with pytest.raises(NotImplementedError, match=r"\[ModuleList\]"):
        h.layers(sd.zeros(1))


def test_moduledict():
    d = ModuleDict({"a": AddC(1)})
    d["b"] = AddC(2)
    d.update([("c", AddC(3))])
    assert list(d) == ["a", "b", "c"] and len(d) == 3 and "b" in d
    assert [k for k, _ in d.items()] == list(d.keys())
    assert d.pop("a").c.item() == 1 and list(d.keys()) == ["b", "c"]
    del d["b"]
    assert [m.c.item() for m in d.values()] == [3]
    with pytest.raises(KeyError, match="ModuleDict has no key 'zz'"):
        d["zz"]
    d.clear()
    assert len(d) == 0


def test_parameterlist_and_dict():
    pl = ParameterList([sd.ones(2), Parameter(sd.zeros(3))])
    assert all(isinstance(p, Parameter) and p.requires_grad for p in pl)
    pl.append(sd.ones(1))
    pl += [sd.ones(4)]
    assert [p.shape for p in pl] == [(2,), (3,), (1,), (4,)]
    assert pl[-1].shape == (4,) and len(pl[1:3]) == 2
    pl[0] = sd.zeros(5)
    assert pl[0].shape == (5,)
    m = Module()
    m.ps = pl
    assert [k for k, _ in m.named_parameters()] == ["ps.0", "ps.1", "ps.2", "ps.3"]

    pd = ParameterDict({"w": sd.ones(2, 2)})
    pd["b"] = sd.zeros(2)
    pd.update({"c": sd.ones(1)})
    assert list(pd) == ["w", "b", "c"] and "b" in pd and len(pd) == 3
    assert isinstance(pd["w"], Parameter)
    assert pd.pop("c").shape == (1,) and list(pd.keys()) == ["w", "b"]
    with pytest.raises(KeyError, match="ParameterDict has no key 'q'"):
        pd["q"]
    assert repr(pd) == ("ParameterDict(\n"
                        "    (w): Parameter containing: [shendu.float32 of size 2x2]\n"
                        "    (b): Parameter containing: [shendu.float32 of size 2]\n)")
    assert repr(ParameterList()) == "ParameterList()"


def test_identity_flatten_unflatten():
    x = sd.randn(2, 3, 4, 5)
    assert Identity(7, foo=1)(x) is x
    assert Flatten()(x).shape == (2, 60)
    assert Flatten(0, 2)(x).shape == (24, 5)
    assert Flatten(2)(x).shape == (2, 3, 20)
    assert Unflatten(1, (3, 4))(sd.zeros(2, 12)).shape == (2, 3, 4)
    assert Unflatten(-1, [2, -1])(sd.zeros(2, 12)).shape == (2, 2, 6)
    y = Unflatten(1, (3, 4, 5))(Flatten()(x))
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    with pytest.raises(TypeError, match="unflattened_size must be a tuple of ints"):
        Unflatten(1, 12)
    assert repr(Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(Unflatten(1, [3, 4])) == "Unflatten(dim=1, unflattened_size=(3, 4))"


def test_container_repr_nested():
    net = Sequential(Flatten(), ModuleList([AddC(1), Identity()]), ModuleDict({"k": AddC(2)}))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Flatten(start_dim=1, end_dim=-1)\n"
        "  (1): ModuleList(\n"
        "    (0): AddC(c=1)\n"
        "    (1): Identity()\n"
        "  )\n"
        "  (2): ModuleDict(\n"
        "    (k): AddC(c=2)\n"
        "  )\n"
        ")")
    assert repr(Sequential()) == "Sequential()"


def test_flatten_gradient_flows():
    w = Parameter(sd.randn(2, 3, 4))
    Flatten(0)(w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.ones((2, 3, 4), np.float32))
