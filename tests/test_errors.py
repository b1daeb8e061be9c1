"""Error messages name the op, the shapes or dtypes involved, and what was expected."""
import pytest

import shendu as sd
import shendu.nn.functional as F

SHAPE = [
    (lambda: sd.ones(3) + sd.ones(4), ValueError,
     r"add: shapes \(3,\) and \(4,\) cannot be broadcast together \(trailing dimensions must "
     r"be equal or 1\)"),
    (lambda: sd.ones(2, 3) * sd.ones(4), ValueError, r"mul: shapes \(2, 3\) and \(4,\)"),
    (lambda: sd.maximum(sd.ones(2), sd.ones(3)), ValueError, r"maximum: shapes \(2,\) and \(3,\)"),
    (lambda: sd.where(sd.tensor([True, False, True]), sd.ones(2), sd.ones(2)), ValueError,
     r"where: condition of shape \(3,\), input of shape \(2,\) and other of shape \(2,\) cannot "
     r"be broadcast"),
    (lambda: sd.ones(2, 3) @ sd.ones(4, 5), ValueError,
     r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned: the last dimension of the first "
     r"\(3\) must equal the second-to-last dimension of the second \(4\)"),
    (lambda: sd.ones(2, 3).reshape(4, 2), ValueError,
     r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4, 2\)"),
    (lambda: sd.ones(2, 3).view(5), ValueError, r"view: cannot reshape a tensor of shape"),
    (lambda: sd.ones(2, 3).expand(4, 3), ValueError,
     r"expand: the tensor of shape \(2, 3\) cannot be expanded to \(4, 3\)"),
    (lambda: sd.cat([sd.ones(2, 3), sd.ones(2, 4)]), ValueError,
     r"cat: tensor 1 has shape \(2, 4\) but tensor 0 has shape \(2, 3\); all dimensions "
     r"except 0 must match"),
    (lambda: sd.stack([sd.ones(2), sd.ones(3)]), ValueError,
     r"stack: tensor 1 has shape \(3,\) but tensor 0 has shape \(2,\)"),
    (lambda: sd.ones(4).split([1, 2]), ValueError,
     r"split: sizes \[1, 2\] sum to 3 but dimension 0 has size 4"),
    (lambda: sd.ones(2, 3).sum(3), IndexError,
     r"sum: dimension 3 is out of range for a tensor with 2 dimensions \(expected -2 to 1\)"),
    (lambda: sd.ones(2, 3)[5], IndexError, r"index: index 5 is out of bounds .* \(tensor of "
                                           r"shape \(2, 3\)\)"),
    (lambda: sd.ones(3).masked_fill(sd.tensor([True, False]), 0.0), ValueError,
     r"masked_fill: mask of shape \(2,\) does not broadcast to input of shape \(3,\)"),
    (lambda: F.linear(sd.ones(2, 3), sd.ones(4, 5)), ValueError,
     r"linear: input of shape \(2, 3\) has .* but weight of shape \(4, 5\) expects 5"),
    (lambda: F.mse_loss(sd.ones(2, 3), sd.ones(3, 2)), ValueError,
     r"mse_loss: input shape \(2, 3\) and target shape \(3, 2\) must be equal"),
    (lambda: F.cross_entropy(sd.ones(2, 3), sd.tensor([0, 1, 1])), ValueError,
     r"cross_entropy: class-index target must have shape \(2,\) for input of shape \(2, 3\), "
     r"got \(3,\)"),
    (lambda: F.layer_norm(sd.ones(2, 3), (4,)), ValueError,
     r"layer_norm: normalized_shape \(4,\) does not match the trailing dimensions of input of "
     r"shape \(2, 3\)"),
    (lambda: F.embedding(sd.tensor([0]), sd.ones(3)), ValueError,
     r"embedding: weight must be 2-D \(num_embeddings, embedding_dim\), got shape \(3,\)"),
    (lambda: F.bilinear(sd.ones(5, 3), sd.ones(4, 4), sd.ones(2, 3, 4)), ValueError,
     r"bilinear: inputs of shapes \(5, 3\) and \(4, 4\) do not fit weight of shape "
     r"\(2, 3, 4\)"),
]

DTYPE = [
    (lambda: sd.ones(2, 3) @ sd.ones(3, 5, dtype=sd.float64), TypeError,
     r"matmul: both operands must have the same dtype, got shendu.float32 and shendu.float64"),
    (lambda: F.linear(sd.ones(2, 3), sd.ones(4, 3, dtype=sd.float64)), TypeError,
     r"linear: input dtype shendu.float32 does not match weight dtype shendu.float64"),
    (lambda: sd.tensor([1, 2], requires_grad=True), RuntimeError,
     r"requires_grad_: only floating-point tensors can require gradients, this one is "
     r"shendu.int64"),
    (lambda: sd.ones(2, 3).gather(1, sd.tensor([[0.5]])), TypeError,
     r"gather: index must be an integer tensor, got float32"),
    (lambda: sd.ones(3)[sd.tensor([0.0])], IndexError,
     r"index: tensors used as indices must be integer or bool, got float32"),
    (lambda: sd.ones(3).masked_fill(sd.ones(3), 0.0), TypeError,
     r"masked_fill: mask must be a bool tensor, got float32"),
    (lambda: F.embedding(sd.ones(3), sd.ones(4, 2)), TypeError,
     r"embedding: indices must be integers, got float32"),
    (lambda: F.nll_loss(sd.ones(2, 3), sd.tensor([[0.2, 0.3, 0.5]] * 2)), TypeError,
     r"nll_loss: target must hold class indices \(int64\)"),
    (lambda: F.one_hot(sd.tensor([0.5]), 3), TypeError,
     r"one_hot: index must be an integer tensor, got float32"),
    (lambda: sd.tensor(["a"]), TypeError, r"tensor: cannot make a tensor from list data "
                                          r"\(numpy dtype <U1\); expected numbers"),
]


@pytest.mark.parametrize("fn,exc,pattern", SHAPE + DTYPE)
def test_error_messages(fn, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn()


def test_backward_errors():
    x = sd.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"backward: grad can be created implicitly only for "
                                           r"a single-element output, this one has shape "
                                           r"\(2, 3\); pass gradient="):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"backward: gradient has shape \(3,\) but the output "
                                           r"has shape \(2, 3\)"):
        (x * 2).backward(sd.ones(3))
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"(Sum|Mul)Backward: trying to backward through the "
                                           r"graph a second time .* pass retain_graph=True"):
        y.backward()
    with pytest.raises(RuntimeError, match=r"backward: this tensor does not require grad"):
        sd.ones(2).sum().backward()
    with pytest.raises(RuntimeError, match=r"grad: input 0 \(shape \(2,\), dtype shendu.float32\) "
                                           r"does not require grad"):
        sd.autograd.grad((x * 2).sum(), [sd.ones(2)])
    with pytest.raises(RuntimeError, match=r"backward: output 0 \(shape \(\), dtype "
                                           r"shendu.float32\) does not require grad"):
        sd.autograd.backward([sd.ones(2).sum()])


def test_device_errors_without_a_gpu():
    if sd.cuda.is_available():
        pytest.skip("a GPU is present: tests/test_cuda.py checks mixing devices")
    with pytest.raises(RuntimeError, match="needs CuPy and a CUDA GPU"):
        sd.ones(2, device="cuda")
    with pytest.raises(ValueError, match=r"device: expected 'cpu' or 'cuda\[:N\]', got 'tpu'"):
        sd.ones(2).to(sd.device("tpu"))
