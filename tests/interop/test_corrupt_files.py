"""Truncated or corrupted files of every format: a clear ValueError naming the file.

Each format's good file is cut at many offsets and has bytes flipped at many places. A cut
file must always raise; a flipped one must raise or, where the format has no checksum
over the flipped bytes (safetensors and legacy PyTorch data, ONNX), may load. Zip-based
formats carry CRCs, so a flipped one that loads must load unchanged. Never any other
exception, and never a partial result.
"""
import pathlib
import re

import numpy as np
import pytest

import shendu as sd
from shendu.interop import safetensors

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
RNG_SEED = 12


def _offsets(n: int, k: int = 120) -> list[int]:
    """Every offset of the first and last 48 bytes, and ``k`` spread between them."""
    rng = np.random.default_rng(RNG_SEED)
    middle = rng.integers(48, max(49, n - 48), size=k).tolist()
    return sorted({*range(min(48, n)), *range(max(0, n - 48), n), *middle})


def _good_files(tmp_path) -> dict:
    state = {"w": sd.arange(12, dtype=sd.float32).reshape(3, 4), "b": sd.ones(3),
             "n": sd.tensor(5)}
    files = {"pth zip": (FIXTURES / "torch_state_dict.pth").read_bytes(),
             "pth legacy": (FIXTURES / "torch_state_dict_legacy.pth").read_bytes(),
             "safetensors": safetensors.save(state)}
    sd.save({"model": state, "epoch": 2}, tmp_path / "good.sd")
    files["shendu"] = (tmp_path / "good.sd").read_bytes()
    return files


def _load(path):
    if path.suffix == ".onnx":
        from shendu.interop.onnx_weights import load_initializers

        return load_initializers(path)
    return sd.load(path)


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, sd.Tensor):
        return isinstance(b, sd.Tensor) and a.dtype == b.dtype and a.shape == b.shape and \
            np.array_equal(a.numpy(), b.numpy())
    return a == b


CHECKSUMMED = {"pth zip", "shendu"}


def _check(fmt: str, data: bytes, path: pathlib.Path, original, how: str, must_fail: bool):
    path.write_bytes(data)
    try:
        out = _load(path)
    except ValueError as exc:
        assert re.search(re.escape(path.name), str(exc)), f"{fmt} {how}: {exc}"
        assert len(str(exc)) < 2000, f"{fmt} {how}: a huge message"
        return
    except Exception as exc:  # noqa: BLE001 - the test's point: no other exception class
        pytest.fail(f"{fmt} {how}: {type(exc).__name__}: {exc}")
    assert not must_fail, f"{fmt} {how}: loaded a truncated file"
    if fmt in CHECKSUMMED:
        assert _same(original, out), f"{fmt} {how}: loaded changed data without an error"


@pytest.mark.parametrize("fmt", ["pth zip", "pth legacy", "safetensors", "shendu"])
def test_truncated_and_flipped_files(tmp_path, fmt):
    data = _good_files(tmp_path)[fmt]
    path = tmp_path / f"victim.{'pth' if 'pth' in fmt else fmt}"
    path.write_bytes(data)
    original = _load(path)
    for cut in _offsets(len(data)):
        _check(fmt, data[:cut], path, original, f"cut at {cut}", must_fail=True)
    for at in _offsets(len(data)):
        flipped = bytearray(data)
        flipped[at] ^= 0xFF
        _check(fmt, bytes(flipped), path, original, f"byte {at} flipped", must_fail=False)


def test_onnx_truncated_and_flipped(tmp_path):
    pytest.importorskip("onnx", reason="the onnx package parses .onnx files")
    from shendu.interop.onnx_weights import save_initializers

    good = tmp_path / "good.onnx"
    save_initializers({"w": sd.arange(12, dtype=sd.float32).reshape(3, 4), "b": sd.ones(3)},
                      good)
    data = good.read_bytes()
    path = tmp_path / "victim.onnx"
    original = _load(good)
    for cut in _offsets(len(data)):
        _check("onnx", data[:cut], path, original, f"cut at {cut}", must_fail=True)
    for at in _offsets(len(data)):
        flipped = bytearray(data)
        flipped[at] ^= 0xFF
        _check("onnx", bytes(flipped), path, original, f"byte {at} flipped", must_fail=False)


def test_cli_reports_corrupt_files_without_a_traceback(tmp_path, capsys):
    from shendu.cli import main

    data = (FIXTURES / "torch_state_dict.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    assert main(["inspect", str(tmp_path / "cut.pth")]) == 2
    err = capsys.readouterr().err
    assert "cut.pth' is truncated or corrupt" in err and "Traceback" not in err
