"""The text bench rows build and run, and the GPT workload is the same model in both
libraries (same loss from the same weights)."""
import sys
from pathlib import Path

import numpy as np
import pytest

from shendu import bench

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def rows():
    return {b.name: b for b in bench.discover(BENCH_DIR)}


@pytest.mark.parametrize("name", ["lstm_layer_fwd_bwd", "sdpa_fwd_bwd"])
def test_text_rows_run_one_step(rows, name):
    rows[name].setup()()


def test_gpt_twin_matches_pytorch(rows):
    torch = pytest.importorskip("torch", reason="PyTorch is the twin of the bench row")
    bench_text = sys.modules[rows["gpt_char_train"].source]  # as discover() loaded it
    u = bench_text.u
    import shendu as sd
    sm, tm = bench_text.gpt(sd.nn, ctx=16, layers=2), bench_text.gpt(torch.nn, ctx=16, layers=2)
    tm.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy())
                        for k, v in sm.state_dict().items()})
    x = np.random.default_rng(0).integers(0, 65, (2, 16))
    a = sm(sd.tensor(x)).detach().numpy()
    with torch.no_grad():
        b = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert {"lstm_layer_fwd_bwd", "gpt_char_train", "sdpa_fwd_bwd"} <= set(rows)
    assert u.shendu_fw().name == "shendu"
