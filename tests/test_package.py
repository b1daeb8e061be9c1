"""The core needs NumPy only: with every optional package made unimportable, ``import
shendu as sd`` and the tensor engine (ops, autograd, forward mode, nn.functional) work."""
import subprocess
import sys
import textwrap

OPTIONAL = ["scipy", "torch", "sklearn", "matplotlib", "tqdm", "optuna", "safetensors",
            "hypothesis", "threadpoolctl", "cupy", "cupyx", "onnx"]

SCRIPT = textwrap.dedent(f"""
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {OPTIONAL!r}:
                raise ImportError("blocked optional package " + name)

    sys.meta_path.insert(0, Block())
    import shendu as sd
    import shendu.nn.functional as F

    sd.manual_seed(0)
    x = sd.randn(4, 3, requires_grad=True)
    w = sd.randn(2, 3, requires_grad=True)
    h = F.gelu(F.linear(x, w)) + x.sum(1, keepdim=True).tanh()
    loss = F.cross_entropy(h, sd.tensor([0, 1, 1, 0])) + F.mse_loss(h, sd.zeros(4, 2))
    loss.backward()
    out, tangent = sd.autograd.jvp(lambda a: (a * a).sum(), x.detach(), sd.ones(4, 3))
    assert x.grad.shape == (4, 3) and w.grad.shape == (2, 3) and tangent.shape == ()
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({OPTIONAL!r}))
    print("ok", loaded)
""")


def test_core_runs_with_numpy_only():
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok []"
