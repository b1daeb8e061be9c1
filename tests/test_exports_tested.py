"""Every public name of ``shendu``, ``shendu.nn`` and ``shendu.nn.functional`` is used by
at least one test. The list is read from the modules (``__all__`` when they define it,
else their public attributes), so a name added anywhere must come with a test that names
it: ``sd.NAME``/``nn.NAME``/``F.NAME`` in code, or ``"NAME"`` in a table of cases."""
import pathlib
import re
import types

import pytest

import shendu
import shendu.nn
import shendu.nn.functional

TESTS = pathlib.Path(__file__).parent
# how tests spell a name of each namespace
PREFIXES = {
    "shendu": r"(?:sd|shendu)\.",
    "shendu.nn": r"(?:nn|L|losses|shendu\.nn)\.",
    "shendu.nn.functional": r"(?:F|functional)\.",
}
# a Tensor method call (the methods are the same functions), not NumPy's or PyTorch's
METHOD = (r"\b(?!(?:np|numpy|torch|T|TF|math|random|os|re|json|time|scipy|statistics|"
          r"string|itertools|sys|rng)\.)[A-Za-z_]\w*\." )
MODULES = {"shendu": shendu, "shendu.nn": shendu.nn,
           "shendu.nn.functional": shendu.nn.functional}


def exported(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")]
    return sorted(n for n in names
                  if not isinstance(getattr(module, n, None), types.ModuleType))


def _test_sources():
    here = pathlib.Path(__file__).resolve()
    return "\n".join(p.read_text() for p in sorted(TESTS.rglob("*.py"))
                     if p.resolve() != here)


@pytest.mark.parametrize("modname", list(MODULES))
def test_every_exported_name_is_named_in_a_test(modname):
    src = _test_sources()
    untested = []
    for name in exported(MODULES[modname]):
        n = re.escape(name)
        used = (re.search(PREFIXES[modname] + n + r"\b", src)          # sd.fmod(...)
                or re.search(r"""["']""" + n + r"""["']""", src)       # ("fmod", ...)
                or (modname == "shendu" and re.search(METHOD + n + r"\(", src))  # x.sort()
                or re.search(r"from shendu[\w.]* import \(?[\w\s,]*\b" + n + r"\b", src))
        if not used:
            untested.append(name)
    assert not untested, (f"{len(untested)} public names of {modname} appear in no test "
                          f"(write one with an independent reference): {untested}")


def test_the_check_catches_an_untested_name(monkeypatch):
    monkeypatch.setattr(shendu.nn.functional, "surely_untested_op_xyz", lambda x: x,
                        raising=False)
    if hasattr(shendu.nn.functional, "__all__"):
        monkeypatch.setattr(shendu.nn.functional, "__all__",
                            [*shendu.nn.functional.__all__, "surely_untested_op_xyz"])
    with pytest.raises(AssertionError, match="surely_untested_op_xyz"):
        test_every_exported_name_is_named_in_a_test("shendu.nn.functional")
