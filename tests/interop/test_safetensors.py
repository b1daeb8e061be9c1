"""safetensors without the package: the real library reads what shendu writes and back."""
import io
import json
import struct
from collections import OrderedDict

import numpy as np
import pytest

import shendu as sd
from shendu.interop import SafetensorsError, safetensors

DTYPES = ["float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"]


def _st():
    return pytest.importorskip("safetensors.numpy", reason="the safetensors package is the "
                               "oracle for the format")


@pytest.mark.parametrize("dtype", DTYPES)
def test_roundtrip_both_ways_with_the_reference_library(tmp_path, dtype):
    st = _st()
    arr = (np.arange(-6, 18).reshape(2, 3, 4) % 7).astype(dtype)
    tensors = {"b.weight": sd.tensor(arr), "a.bias": sd.tensor(arr[0, 0]),
               "scalar": sd.tensor(arr[0, 0, 1]), "empty": sd.tensor(arr[:0])}
    safetensors.save_file(tensors, tmp_path / "m.safetensors", metadata={"epoch": "3"})
    theirs = st.load_file(str(tmp_path / "m.safetensors"))  # the library reads shendu's file
    for k, t in tensors.items():
        np.testing.assert_array_equal(theirs[k], t.numpy())
        assert theirs[k].dtype == arr.dtype
    st.save_file({k: t.numpy() for k, t in tensors.items()}, str(tmp_path / "r.safetensors"),
                 metadata={"format": "np"})
    ours = sd.load(tmp_path / "r.safetensors")  # content-detected by sd.load
    assert isinstance(ours, OrderedDict) and set(ours) == set(tensors)
    for k, t in tensors.items():
        assert ours[k].dtype == arr.dtype and ours[k].shape == t.shape
        np.testing.assert_array_equal(ours[k].numpy(), t.numpy())
    blob = (tmp_path / "r.safetensors").read_bytes()
    assert safetensors.metadata(blob) == {"format": "np"}


def test_same_bytes_as_the_reference_writer():
    st = _st()
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array([1, 2], np.int64),
              "h": np.ones(3, np.float16)}
    ours = safetensors.save({k: sd.tensor(v) for k, v in arrays.items()})
    theirs = st.save(arrays)
    # the header's key order may differ; the layout of the data and each entry may not
    def parts(blob):
        n = struct.unpack("<Q", blob[:8])[0]
        return json.loads(blob[8:8 + n]), blob[8 + n:]
    assert parts(ours) == parts(theirs)


def test_bfloat16_loads_as_float32():
    torch = pytest.importorskip("torch", reason="safetensors.torch writes the bfloat16 file")
    st_torch = pytest.importorskip("safetensors.torch", reason="needs safetensors' torch API")
    t = torch.tensor([[1.0, -2.5], [3.140625, 1e30]], dtype=torch.bfloat16)
    out = sd.load(io.BytesIO(st_torch.save({"w": t})))
    assert out["w"].dtype == sd.float32
    np.testing.assert_array_equal(out["w"].numpy(), t.float().numpy())


def test_sd_save_format_safetensors(tmp_path):
    st = _st()
    state = sd.nn.Linear(3, 2).state_dict()
    sd.save(state, tmp_path / "lin.safetensors", format="safetensors", metadata={"a": "b"})
    theirs = st.load_file(str(tmp_path / "lin.safetensors"))
    np.testing.assert_array_equal(theirs["weight"], state["weight"].numpy())
    m = sd.nn.Linear(3, 2)
    m.load_state_dict(sd.load(tmp_path / "lin.safetensors"))
    np.testing.assert_array_equal(m.weight.detach().numpy(), state["weight"].numpy())
    sd.save({"w": sd.ones(2)}, tmp_path / "by_name.safetensors")  # the extension decides
    assert st.load_file(str(tmp_path / "by_name.safetensors"))["w"].tolist() == [1.0, 1.0]
    buf = io.BytesIO()
    sd.save({"x": sd.ones(2)}, buf, format="safetensors")
    assert sd.load(io.BytesIO(buf.getvalue()))["x"].tolist() == [1.0, 1.0]
    with pytest.raises(TypeError, match="flat dict"):
        sd.save({"opt": {"lr": 0.1}}, tmp_path / "x.safetensors", format="safetensors")
    with pytest.raises(ValueError, match="unknown format 'pickle'"):
        sd.save(state, tmp_path / "x", format="pickle")


def _file(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@pytest.mark.parametrize("header, data, match", [
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4,
     "hold 8 bytes but 4 follow"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8,
     "should start at 0 and hold 12 bytes"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8,
     "should start at 4"),  # overlapping tensors
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8,
     "should start at 0"),  # a gap
    ({"w": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4,
     "unknown dtype 'Q99'"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4,
     "malformed entry"),
    ({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8,
     "'w' has dtype C64, which shendu does not have"),
    ({"__metadata__": {"a": 1}}, b"", "must map strings to strings"),
])
def test_bad_headers_are_named(tmp_path, header, data, match):
    (tmp_path / "bad.safetensors").write_bytes(_file(header, data))
    with pytest.raises(SafetensorsError, match=r"bad\.safetensors'?.*" + match):
        sd.load(tmp_path / "bad.safetensors")


def test_zero_copy_load_shares_one_buffer():
    blob = bytearray(safetensors.save({"a": sd.ones(2), "b": sd.zeros(3)}))
    out = safetensors.load(blob)
    out["a"][0] = 5.0  # the tensors are views of the caller's bytearray
    assert safetensors.load(bytes(blob))["a"].tolist() == [5.0, 1.0]
