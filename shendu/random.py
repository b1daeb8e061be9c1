"""Random number generation: one global NumPy generator, seeded by ``manual_seed``.

Random tensors are drawn on the CPU and then moved, so a seed gives the same numbers on
every device.
"""
from __future__ import annotations

import numpy as np


class Generator:
    """An independent random stream (``sd.Generator().manual_seed(0)``), as in PyTorch."""

    def __init__(self, device="cpu"):
        self.device = device
        self._np = np.random.default_rng()
        self._seed = None

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self._np = np.random.default_rng(self._seed)
        return self

    def initial_seed(self):
        return self._seed

    def get_state(self) -> dict:
        return self._np.bit_generator.state

    def set_state(self, state: dict) -> None:
        self._np.bit_generator.state = state


default_generator = Generator().manual_seed(np.random.SeedSequence().entropy % (2 ** 63))


def manual_seed(seed: int) -> Generator:
    """Seed the global generator (and NumPy's legacy global one) for reproducible runs."""
    np.random.seed(int(seed) % 2 ** 32)
    return default_generator.manual_seed(seed)


def seed() -> int:
    s = int(np.random.SeedSequence().entropy % (2 ** 63))
    manual_seed(s)
    return s


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state() -> dict:
    """The global generator's state, as plain JSON-friendly data."""
    return default_generator.get_state()


def set_rng_state(state: dict) -> None:
    default_generator.set_state(state)


def _rng(generator: Generator | None = None) -> np.random.Generator:
    return (generator or default_generator)._np
