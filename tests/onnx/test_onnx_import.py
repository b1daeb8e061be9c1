"""sd.onnx.import_model: hand-built graphs, fine-tuning, errors, PyTorch's exports."""
import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import shendu as sd  # noqa: E402
import shendu.onnx.backend as backend  # noqa: E402
from shendu.onnx import OnnxModule, UnsupportedOpError, import_model, supported_ops  # noqa: E402


def _mlp_model(rng):
    w1 = rng.standard_normal((4, 8)).astype(np.float32)
    b1 = rng.standard_normal(8).astype(np.float32)
    w2 = rng.standard_normal((8, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "fc1.weight"), numpy_helper.from_array(b1, "fc1.bias"),
             numpy_helper.from_array(w2, "fc2.weight")]
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "fc2.weight"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model, (w1, b1, w2)


def test_import_runs_numpy_reference_and_keeps_names():
    rng = np.random.default_rng(0)
    model, (w1, b1, w2) = _mlp_model(rng)
    m = import_model(model)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    ref = np.maximum(x @ w1 + b1, 0) @ w2
    out = m(sd.tensor(x))
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    assert sorted(k for k, _ in m.named_parameters()) == ["fc1.bias", "fc1.weight",
                                                          "fc2.weight"]
    assert all(isinstance(p, sd.nn.Parameter) for p in m.parameters())
    assert m(x=x).shape == (5, 3)  # by input name, from a NumPy array


def test_imported_model_fine_tunes():
    rng = np.random.default_rng(1)
    model, _ = _mlp_model(rng)
    m = import_model(model)
    x = sd.tensor(rng.standard_normal((32, 4)).astype(np.float32))
    target = sd.tensor(rng.integers(0, 3, 32))
    opt = sd.optim.SGD(m.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        loss = sd.nn.functional.cross_entropy(m(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert all(p.grad is not None for p in m.parameters())


def test_batchnorm_statistics_are_buffers():
    c = 3
    inits = [numpy_helper.from_array(np.full(c, v, np.float32), n) for n, v in
             [("s", 1.0), ("b", 0.0), ("mean", 0.5), ("var", 4.0)]]
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "mean", "var"], ["y"])
    graph = helper.make_graph([node], "bn", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, c, 2, 2])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, c, 2, 2])], inits)
    m = import_model(helper.make_model(graph))
    assert sorted(k for k, _ in m.named_parameters()) == ["b", "s"]
    assert sorted(k for k, _ in m.named_buffers()) == ["mean", "var"]
    y = m(np.full((1, c, 2, 2), 2.5, np.float32))
    np.testing.assert_allclose(y.detach().numpy(), 1.0, rtol=1e-4)


def test_unsupported_ops_listed_at_once_with_opset():
    nodes = [helper.make_node("Hardmax", ["x"], ["a"]),
             helper.make_node("NonMaxSuppression", ["a", "a"], ["b"]),
             helper.make_node("Relu", ["b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedOpError, match=r"2 unsupported op\(s\) at opset 13: "
                                                 r"Hardmax, NonMaxSuppression") as e:
        import_model(model)
    assert e.value.ops == ["Hardmax", "NonMaxSuppression"]
    assert "Relu" in supported_ops() and "Hardmax" not in supported_ops()


def test_damaged_files_name_the_file(tmp_path):
    model, _ = _mlp_model(np.random.default_rng(2))
    data = model.SerializeToString()
    good = tmp_path / "good.onnx"
    good.write_bytes(data)
    assert isinstance(import_model(good), OnnxModule)
    bad = tmp_path / "bad.onnx"
    # every truncation point raises a clear error naming the file, never a partial model
    for cut in range(0, len(data), max(1, len(data) // 97)):
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="bad.onnx") as e:
            import_model(bad)
        assert "truncated or corrupted" in str(e.value) or "empty" in str(e.value)
    bad.write_bytes(b"\xff" * 64 + data[64:])
    with pytest.raises(ValueError, match="bad.onnx"):
        import_model(bad)
    bad.write_bytes(b"PK\x03\x04 this is a zip, not an ONNX model")
    with pytest.raises(ValueError, match="bad.onnx"):
        import_model(bad)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        import_model(tmp_path / "missing.onnx")


def test_backend_run_model_and_run_node():
    model, (w1, b1, w2) = _mlp_model(np.random.default_rng(3))
    x = np.ones((2, 4), np.float32)
    (y,) = backend.run_model(model, [x])
    np.testing.assert_allclose(y, np.maximum(x @ w1 + b1, 0) @ w2, rtol=1e-5)
    rep = backend.prepare(model, "CPU")
    np.testing.assert_allclose(rep.run({"x": x}).y, y)
    node = helper.make_node("Div", ["a", "b"], ["q"])
    q = backend.run_node(node, [np.array([-7, 7], np.int32), np.array([2, -2], np.int32)])
    np.testing.assert_array_equal(q.q, np.array([-3, -3], np.int32))  # truncates toward 0
    assert q.q.dtype == np.int32


# ------------------------------------------------------------------ PyTorch's exports
def _torch_export(model, x):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # TorchScript exporter (dynamo=False): works offline without onnxscript
        torch.onnx.export(model, (x,), f, dynamo=False, input_names=["x"])
    return f.getvalue()


def _compare_with_torch(model, x, rtol=1e-4, atol=1e-5):
    model.eval()
    m = import_model(_torch_export(model, x))
    ref = model(x)
    ref = ref[0] if isinstance(ref, tuple) else ref
    out = m(x.numpy())
    out = out[0] if isinstance(out, tuple) else out
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=rtol, atol=atol)
    return m


def test_pytorch_mlp_imports_with_its_state_dict_keys():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    m = _compare_with_torch(net, torch.randn(4, 5))
    assert set(m.state_dict()) == set(net.state_dict())


def test_pytorch_cnn_with_batchnorm_imports():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 4, 3, stride=2), torch.nn.AvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Dropout(0.3), torch.nn.Linear(4, 10))
    with torch.no_grad():
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
    _compare_with_torch(net, torch.randn(2, 3, 8, 8))


def test_pytorch_lstm_imports():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(20, 6)
            self.lstm = torch.nn.LSTM(6, 8, num_layers=2, batch_first=True)
            self.fc = torch.nn.Linear(8, 3)

        def forward(self, tokens):
            y, _ = self.lstm(self.emb(tokens))
            return self.fc(y[:, -1])

    _compare_with_torch(Net(), torch.randint(0, 20, (2, 7)))


def test_pytorch_bidirectional_gru_imports():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    torch.manual_seed(0)
    _compare_with_torch(torch.nn.GRU(4, 5, bidirectional=True), torch.randn(6, 2, 4))


def test_imported_pytorch_cnn_gives_pytorchs_gradients():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.Tanh(),
                              torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 3 * 3, 5))
    x = torch.randn(3, 2, 6, 6)
    target = torch.tensor([0, 3, 4])
    m = import_model(_torch_export(net.eval(), x))
    torch.nn.functional.cross_entropy(net(x), target).backward()
    loss = sd.nn.functional.cross_entropy(m(x.numpy()), sd.tensor(target.numpy()))
    loss.backward()
    grads = dict(m.named_parameters())
    for name, p in net.named_parameters():
        np.testing.assert_allclose(grads[name].grad.numpy(), p.grad.numpy(), rtol=1e-4,
                                   atol=1e-6)
