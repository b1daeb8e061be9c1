"""torch.save checkpoints read by sd.load without PyTorch: dtypes, views, shared storages."""
import pathlib
from collections import OrderedDict

import numpy as np
import pytest

import shendu as sd
from shendu.interop import CheckpointError

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def expected_fixture() -> dict:
    """The state dict of fixtures/make_fixtures.py, in NumPy."""
    base = np.arange(24, dtype=np.float32).reshape(4, 6) / 4
    return {
        "conv.weight": np.arange(54, dtype=np.float32).reshape(2, 3, 3, 3) / 10,
        "bn.num_batches_tracked": np.array(7, np.int64),
        "base": base, "base_t": base.T, "base_col": base[1:, 2],
        "half": np.arange(5, dtype=np.float16) / 2,
        "bf16": np.array([1.0, -2.5, 3.140625], np.float32),  # exact in bfloat16
        "f64": np.arange(3, dtype=np.float64) / 3,
        "i8": np.array([-128, 0, 127], np.int8), "u8": np.array([0, 255], np.uint8),
        "i16": np.array([-300, 300], np.int16),
        "i32": np.array([-(2 ** 31), 2 ** 31 - 1], np.int32),
        "mask": np.array([True, False, True]), "empty": np.zeros((0, 3), np.float32),
    }


@pytest.mark.parametrize("name", ["torch_state_dict.pth", "torch_state_dict_legacy.pth"])
def test_committed_fixture_loads_without_torch(name):
    out = sd.load(FIXTURES / name)
    want = expected_fixture()
    assert isinstance(out, OrderedDict) and list(out) == list(want)
    for k, arr in want.items():
        assert isinstance(out[k], sd.Tensor) and not isinstance(out[k], sd.nn.Parameter)
        assert out[k].dtype == arr.dtype and out[k].shape == arr.shape, k
        np.testing.assert_array_equal(out[k].numpy(), arr, err_msg=k)
    # the views share the base tensor's storage, as they did in PyTorch
    out["base"][1, 2] = -1.0
    assert out["base_t"][2, 1].item() == -1.0 and out["base_col"][0].item() == -1.0
    assert out["base_t"].numpy().strides == (4, 24)  # a transpose, not a copy


def _torch():
    return pytest.importorskip("torch", reason="PyTorch writes the oracle checkpoints")


TORCH_DTYPES = ["float16", "float32", "float64", "bfloat16", "int8", "uint8", "int16",
                "int32", "int64", "bool"]


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_every_dtype_matches_torch(tmp_path, dtype, legacy):
    torch = _torch()
    t = (torch.arange(-6, 18).reshape(4, 6) * 3 % 11).to(getattr(torch, dtype))
    path = tmp_path / "t.pth"
    torch.save({"t": t, "v": t[1:, ::2], "s": t[2, 3]}, path,
               _use_new_zipfile_serialization=not legacy)
    out = sd.load(path)
    for key, ref in (("t", t), ("v", t[1:, ::2]), ("s", t[2, 3])):
        want = ref.float().numpy() if dtype == "bfloat16" else ref.numpy()
        assert out[key].dtype == want.dtype and out[key].shape == tuple(ref.shape)
        np.testing.assert_array_equal(out[key].numpy(), want)


def test_views_offsets_strides_and_shared_storages(tmp_path):
    torch = _torch()
    base = torch.randn(5, 7)
    obj = {"a": base, "t": base.t(), "col": base[:, 3], "step": base[1::2, ::3],
           "flat": base.view(-1)[4:20], "exp": base[0:1].expand(3, 7),
           "other": torch.randn(3)}
    torch.save(obj, tmp_path / "v.pt")
    out = sd.load(tmp_path / "v.pt")
    for k, v in obj.items():
        np.testing.assert_array_equal(out[k].numpy(), v.numpy(), err_msg=k)
        assert out[k].numpy().strides == tuple(s * 4 for s in v.stride()), k
    out["a"][0, 3] = 100.0  # one write, seen through every view of that storage
    assert out["t"][3, 0].item() == out["col"][0].item() == out["exp"][2, 3].item() == 100.0
    assert out["other"].numpy().base is not out["a"].numpy().base


def test_parameters_nesting_and_plain_values(tmp_path):
    torch = _torch()
    lin = torch.nn.Linear(3, 2)
    ckpt = {"model": lin.state_dict(), "params": list(lin.parameters()), "epoch": 4,
            "best": 0.93, "name": "run", "shape": torch.Size([2, 3]), "tags": {"a", "b"},
            "nested": [(1, None, True), {"k": b"\x00\xffraw"}]}
    torch.save(ckpt, tmp_path / "ckpt.pth")
    out = sd.load(tmp_path / "ckpt.pth")
    assert isinstance(out["model"], OrderedDict) and list(out["model"]) == ["weight", "bias"]
    w = out["params"][0]
    assert isinstance(w, sd.nn.Parameter) and w.requires_grad
    np.testing.assert_array_equal(w.detach().numpy(), lin.weight.detach().numpy())
    # a Parameter and the state dict's tensor were one storage in PyTorch: still shared
    out["model"]["weight"][0, 0] = 9.0
    assert w[0, 0].item() == 9.0
    assert (out["epoch"], out["best"], out["name"]) == (4, 0.93, "run")
    assert out["shape"] == (2, 3) and out["tags"] == {"a", "b"}
    assert out["nested"] == [(1, None, True), {"k": b"\x00\xffraw"}]


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("legacy", [False, True])
def test_a_single_tensor_and_newer_pickle_protocols(tmp_path, protocol, legacy):
    torch = _torch()
    torch.save(torch.arange(4), tmp_path / "t.pt", pickle_protocol=protocol,
               _use_new_zipfile_serialization=not legacy)
    assert sd.load(tmp_path / "t.pt").tolist() == [0, 1, 2, 3]


def test_unsupported_dtype_is_named(tmp_path):
    torch = _torch()
    torch.save({"ok": torch.ones(1), "z": torch.ones(2, dtype=torch.complex64)},
               tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"c\.pt'.*\['z'\] has dtype torch\.complex64"):
        sd.load(tmp_path / "c.pt")


def _one_tensor_archive(location: str, byteorder: str = "little") -> bytes:
    """A hand-made torch.save archive of float32 [1.5, -2, 3.25] saved on ``location``."""
    import io
    import zipfile

    loc = location.encode()
    pkl = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\n"
           b"FloatStorage\nX\x01\x00\x00\x000X" + len(loc).to_bytes(4, "little") + loc
           + b"K\x03tQK\x00K\x03\x85K\x01\x85\x89NtR.")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", byteorder)
        order = "<" if byteorder == "little" else ">"
        zf.writestr("archive/data/0", np.array([1.5, -2.0, 3.25], order + "f4").tobytes())
    return buf.getvalue()


def test_map_location(tmp_path):
    path = tmp_path / "gpu.pt"
    path.write_bytes(_one_tensor_archive("cuda:0"))
    assert sd.load(path, map_location="cpu").device == "cpu"
    assert sd.load(path, map_location={"cuda:0": "cpu"}).device == "cpu"
    assert sd.load(path, map_location={"cuda:1": "cuda:0"}).tolist() == [1.5, -2.0, 3.25]
    if sd.cuda.is_available():
        assert sd.load(path).device == "cuda:0"
    else:  # saved on a GPU, loaded where there is none: the CPU, as shendu's own format
        assert sd.load(path).device == "cpu"
        with pytest.raises(RuntimeError, match="CuPy"):
            sd.load(path, map_location="cuda")


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_archive_is_refused_clearly(tmp_path):
    torch = _torch()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "s.pt")
    with pytest.raises(CheckpointError, match=r"s\.pt'.*TorchScript archive"):
        sd.load(tmp_path / "s.pt")


def test_torch_state_dicts_load_into_shendu_modules(tmp_path):
    """conv/bn/linear keys (with num_batches_tracked) load unchanged, and the outputs agree."""
    torch = _torch()
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                             torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 5))
    tm.train()
    tm(torch.randn(8, 3, 6, 6))  # move the running statistics off their defaults
    tm.eval()
    torch.save(tm.state_dict(), tmp_path / "cnn.pth")
    m = sd.nn.Sequential(sd.nn.Conv2d(3, 4, 3), sd.nn.BatchNorm2d(4), sd.nn.ReLU(),
                         sd.nn.Flatten(), sd.nn.Linear(64, 5)).eval()
    result = m.load_state_dict(sd.load(tmp_path / "cnn.pth"))
    assert not result.missing_keys and not result.unexpected_keys
    assert m[1].num_batches_tracked.item() == 1
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    # float32 sums of 27-64 products of O(1) terms: a few ulp of the largest partial sums
    np.testing.assert_allclose(m(sd.tensor(x)).detach().numpy(), want, rtol=1e-5, atol=1e-5)


def test_lenet_keys_from_torch_load_into_the_zoo(tmp_path):
    """A PyTorch module with sd.vision.models.LeNet5's keys and shapes loads into it."""
    torch = _torch()
    net = sd.vision.models.LeNet5()
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    torch_sd = OrderedDict((k, torch.randn(*s)) for k, s in shapes.items())
    torch.save(torch_sd, tmp_path / "lenet.pth")
    net.load_state_dict(sd.load(tmp_path / "lenet.pth"))
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), torch_sd[k].numpy())


def test_sd_save_still_writes_its_own_format(tmp_path):
    sd.save({"w": sd.ones(2)}, tmp_path / "w.sd")
    import zipfile

    assert "shendu.json" in zipfile.ZipFile(tmp_path / "w.sd").namelist()
    assert sd.load(tmp_path / "w.sd")["w"].tolist() == [1.0, 1.0]


def _torchvision():
    return pytest.importorskip("torchvision", reason="torchvision writes the zoo's state "
                               "dicts (run with /work/venv-tv's Python)")


@pytest.mark.torchvision
def test_torchvision_resnet18_state_dict_loads_exactly(tmp_path):
    _torch()
    tv = _torchvision()
    model = tv.models.resnet18(weights=None)
    model.train()
    import torch

    model(torch.randn(2, 3, 32, 32))  # running stats and num_batches_tracked move
    ref = model.state_dict()
    torch.save(ref, tmp_path / "resnet18.pth")
    out = sd.load(tmp_path / "resnet18.pth")
    assert list(out) == list(ref)
    for k, v in ref.items():
        assert out[k].dtype == v.numpy().dtype and out[k].shape == tuple(v.shape), k
        np.testing.assert_array_equal(out[k].numpy(), v.numpy(), err_msg=k)


@pytest.mark.torchvision
def test_torchvision_resnet18_runs_in_the_zoo(tmp_path):
    torch = _torch()
    tv = _torchvision()
    resnet18 = getattr(sd.vision.models, "resnet18", None)
    if resnet18 is None:
        pytest.skip("sd.vision.models has no resnet18 on this branch yet (issue 13's zoo)")
    ref = tv.models.resnet18(weights=None).eval()
    torch.save(ref.state_dict(), tmp_path / "resnet18.pth")
    net = resnet18().eval()
    net.load_state_dict(sd.load(tmp_path / "resnet18.pth"))
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    got = net(sd.tensor(x)).detach().numpy()
    # 20 float32 layers, each summing up to 4,608 products: relative error grows to ~1e-4
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())


def test_big_endian_archives_are_swapped(tmp_path):
    """A checkpoint written on a big-endian machine (byteorder 'big'), made by hand."""
    (tmp_path / "be.pt").write_bytes(_one_tensor_archive("cpu", "big"))
    out = sd.load(tmp_path / "be.pt")
    assert out.tolist() == [1.5, -2.0, 3.25] and out.dtype == sd.float32
