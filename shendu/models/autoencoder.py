"""Autoencoders and greedy layer-wise pretraining (Bengio et al. 2007; Vincent et al. 2008).

An autoencoder learns ``decoder(encoder(x)) ~ x``. Stacking them one layer at a time,
each trained on the codes of the layers below, gives initial weights for a deep
classifier: the pre-2012 way to train deep networks, still useful when labels are few.

>>> import shendu as sd
>>> ae = Autoencoder.dense([784, 64, 16], noise=0.2)
>>> x = sd.rand(8, 784)
>>> ae(x).shape, ae.encode(x).shape, ae.loss(x).ndim
((8, 784), (8, 16), 0)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..autograd.grad_mode import no_grad
from ..creation import as_tensor, rand_like, randn_like
from ..nn import functional as F
from ..nn.containers import Sequential
from ..nn.layers.activation import ReLU, Sigmoid
from ..nn.layers.conv import Conv2d, ConvTranspose2d
from ..nn.layers.linear import Linear
from ..nn.module import Module
from ..tensor import Tensor

__all__ = ["Autoencoder", "stacked_autoencoders", "pretrain_layerwise"]


class Autoencoder(Module):
    """``decoder(encoder(x))``, trained to reproduce ``x``; denoising when ``noise > 0``.

    Args:
        encoder, decoder: the two halves (any modules whose composition keeps the shape).
        noise: corruption in training mode: the std of added Gaussian noise
            (``noise_type='gaussian'``) or the fraction of inputs set to zero
            (``'mask'``, Vincent et al.'s masking noise). The loss compares the
            reconstruction with the clean input.
        noise_type: ``'gaussian'`` or ``'mask'``.

    Build one with ``Autoencoder.dense(sizes)`` or ``Autoencoder.conv(channels)``, or from
    your own halves.
    """

    def __init__(self, encoder: Module, decoder: Module, noise: float = 0.0,
                 noise_type: str = "gaussian"):
        super().__init__()
        if noise_type not in ("gaussian", "mask"):
            raise ValueError(f"Autoencoder: noise_type must be 'gaussian' or 'mask', got "
                             f"{noise_type!r}")
        if not 0 <= noise < (1 if noise_type == "mask" else np.inf):
            raise ValueError(f"Autoencoder: noise must be >= 0 (and < 1 for masking), got "
                             f"{noise!r}")
        self.encoder, self.decoder = encoder, decoder
        self.noise, self.noise_type = float(noise), noise_type

    @classmethod
    def dense(cls, sizes: Sequence[int], activation: Callable[[], Module] = ReLU,
              out_activation: Callable[[], Module] | None = Sigmoid, **kw) -> Autoencoder:
        """A fully connected autoencoder ``sizes[0] -> ... -> sizes[-1] -> ... -> sizes[0]``.

        ``out_activation`` ends the decoder (``Sigmoid`` for pixels in [0, 1]; None for
        unbounded data); ``kw`` goes to the constructor (``noise``, ``noise_type``).

        >>> Autoencoder.dense([6, 3]).encoder
        Sequential(
          (0): Linear(in_features=6, out_features=3, bias=True)
          (1): ReLU()
        )
        """
        if len(sizes) < 2:
            raise ValueError(f"Autoencoder.dense: sizes needs an input and a code size, got "
                             f"{list(sizes)}")
        enc: list[Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            enc += [Linear(a, b), activation()]
        dec: list[Module] = []
        back = list(sizes[::-1])
        for i, (a, b) in enumerate(zip(back[:-1], back[1:])):
            dec.append(Linear(a, b))
            last = i == len(back) - 2
            if not last:
                dec.append(activation())
            elif out_activation is not None:
                dec.append(out_activation())
        return cls(Sequential(*enc), Sequential(*dec), **kw)

    @classmethod
    def conv(cls, channels: Sequence[int], kernel_size: int = 3,
             activation: Callable[[], Module] = ReLU,
             out_activation: Callable[[], Module] | None = Sigmoid, **kw) -> Autoencoder:
        """A convolutional autoencoder: each encoder stage halves height and width with a
        stride-2 convolution, each decoder stage doubles them with a transposed one.

        >>> import shendu as sd
        >>> ae = Autoencoder.conv([1, 8, 16])
        >>> ae.encode(sd.zeros(2, 1, 28, 28)).shape, ae(sd.zeros(2, 1, 28, 28)).shape
        ((2, 16, 7, 7), (2, 1, 28, 28))
        """
        if len(channels) < 2:
            raise ValueError(f"Autoencoder.conv: channels needs input and code channels, "
                             f"got {list(channels)}")
        if kernel_size % 2 != 1:
            raise ValueError(f"Autoencoder.conv: kernel_size must be odd, got {kernel_size}")
        pad = kernel_size // 2
        enc: list[Module] = []
        for a, b in zip(channels[:-1], channels[1:]):
            enc += [Conv2d(a, b, kernel_size, stride=2, padding=pad), activation()]
        dec: list[Module] = []
        back = list(channels[::-1])
        for i, (a, b) in enumerate(zip(back[:-1], back[1:])):
            dec.append(ConvTranspose2d(a, b, kernel_size, stride=2, padding=pad,
                                       output_padding=1))
            if i < len(back) - 2:
                dec.append(activation())
            elif out_activation is not None:
                dec.append(out_activation())
        return cls(Sequential(*enc), Sequential(*dec), **kw)

    def corrupt(self, x: Tensor) -> Tensor:
        """``x`` with this autoencoder's training noise (unchanged when noise is 0)."""
        if self.noise == 0:
            return x
        if self.noise_type == "gaussian":
            return x + randn_like(x) * self.noise
        return x * (rand_like(x) >= self.noise).to(x.dtype)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction of ``x`` (from a corrupted copy in training mode)."""
        return self.decoder(self.encoder(self.corrupt(x) if self.training else x))

    def loss(self, x: Tensor) -> Tensor:
        """Mean squared error between the reconstruction and the clean ``x``."""
        return F.mse_loss(self(x), x)


def stacked_autoencoders(sizes: Sequence[int], activation: Callable[[], Module] = ReLU,
                         **kw) -> list[Autoencoder]:
    """One single-layer dense autoencoder per pair of neighbouring ``sizes``; the first
    reconstructs pixels through a sigmoid, the others reconstruct (non-negative) codes.

    >>> [ae.encoder[0].out_features for ae in stacked_autoencoders([784, 128, 32])]
    [128, 32]
    """
    return [Autoencoder.dense([a, b], activation,
                              out_activation=Sigmoid if i == 0 else activation, **kw)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]


def pretrain_layerwise(autoencoders: Sequence[Autoencoder], data, epochs: int = 5,
                       lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
                       log: Callable[[str], None] | None = None) -> Sequential:
    """Greedy layer-wise pretraining: train each autoencoder on the codes of the ones
    before it, and return their encoders stacked (ready to take a classifier head).

    Args:
        autoencoders: bottom first; autoencoder ``i`` reconstructs the output of encoders
            ``0..i-1`` applied to ``data``.
        data: unlabelled inputs (a tensor or array, ``(N, ...)``).
        epochs, lr, batch_size: Adam training of each layer on its own.
        seed: shuffling seed.
        log: called with one line per layer (its final reconstruction loss).

    >>> import shendu as sd
    >>> aes = stacked_autoencoders([20, 8, 4], noise=0.1)
    >>> enc = pretrain_layerwise(aes, sd.rand(64, 20), epochs=2)
    >>> enc(sd.rand(3, 20)).shape
    (3, 4)
    """
    from ..optim import Adam

    if not autoencoders:
        raise ValueError("pretrain_layerwise: needs at least one autoencoder")
    h = data if isinstance(data, Tensor) else as_tensor(np.asarray(data, dtype=np.float32))
    rng = np.random.default_rng(seed)
    for depth, ae in enumerate(autoencoders):
        opt = Adam(ae.parameters(), lr=lr)
        ae.train()
        total = float("nan")
        for _ in range(epochs):
            order = rng.permutation(len(h))
            total, count = 0.0, 0
            for i in range(0, len(order), batch_size):
                xb = h[order[i:i + batch_size]]
                loss = ae.loss(xb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, count = total + float(loss.item()) * len(xb), count + len(xb)
            total /= count
        if log is not None:
            log(f"layer {depth + 1}: reconstruction loss {total:.4f}")
        ae.eval()
        with no_grad():  # the next layer learns from these codes
            h = ae.encode(h)
    return Sequential(*[m for ae in autoencoders for m in ae.encoder])
