"""Copying a PyTorch module's state into a shendu one through NumPy, and comparing."""
import numpy as np

import shendu as sd


def randomize_batch_norm(torch_model, seed=0):
    """Give every BatchNorm non-trivial statistics and affine terms, so eval mode tests
    them (fresh ones are the identity up to eps)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in torch_model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)


def copy_state(torch_model, shendu_model):
    """Load the torch state dict into ``shendu_model`` via NumPy; the key lists and every
    shape must match exactly (strict loading)."""
    state = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}
    mine = shendu_model.state_dict()
    assert list(state) == list(mine), set(state) ^ set(mine)
    for k, v in state.items():
        assert tuple(v.shape) == tuple(mine[k].shape), k
    shendu_model.load_state_dict(state)
    return shendu_model


def compare_eval(torch_model, shendu_model, x, rtol):
    """Same outputs in eval mode for the input array ``x`` (dtype sets the precision)."""
    import torch

    torch_model.eval()
    shendu_model.eval()
    with torch.no_grad():
        want = torch_model(torch.from_numpy(x)).numpy()
    with sd.no_grad():
        got = shendu_model(sd.tensor(x)).numpy()
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale)
