"""Greedy device placement of a two-tower model (sd.jit.place), printed as a plan.

Two towers (a wide MLP for one input, a narrow one for another) meet in a small head. The
placer walks the traced graph in order and puts each op where it would finish first, given
when each device is free and what moving its inputs there costs.

    python examples/placement.py

Two plans are printed for the same graph: a GPU much faster than the CPU behind a slow
link (small ops whose inputs are on the CPU stay there: the copy costs more than the GPU
saves), and two equally fast devices (the towers run side by side). Costs come from a
``CostModel`` (FLOPs over each device's speed, bytes over the link's bandwidth); the
numbers are the model's, not measurements. With a GPU (CuPy) the placed graph is also run
and checked against the eager model; tests/jit/test_place.py runs placed graphs on the CuPy
stand-in of tests/devices/.
"""
from __future__ import annotations

import numpy as np

import shendu as sd
from shendu import nn


class TwoTower(nn.Module):
    def __init__(self):
        super().__init__()
        self.user = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                                  nn.Linear(512, 64))
        self.item = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64))
        self.head = nn.Linear(128, 1)

    def forward(self, u, i):
        return self.head(sd.cat([self.user(u), self.item(i)], dim=1)).sigmoid()


def main():
    sd.manual_seed(0)
    model = TwoTower()
    u, i = sd.randn(64, 256), sd.randn(64, 32)
    gm = sd.jit.trace(model, (u, i))

    plans = {
        "fast GPU, slow link": sd.jit.CostModel({"cpu": 5e10, "cuda": 5e12}, bandwidth=2e9,
                                                latency=2e-5, overhead={"cuda": 5e-6}),
        "two equal devices": sd.jit.CostModel({"cpu": 5e10, "cuda": 5e10}, bandwidth=2e10,
                                              latency=1e-6),
    }
    for title, cm in plans.items():
        placed = sd.jit.place(gm, ["cpu", "cuda"], cm)
        alone = sd.jit.place(gm, ["cpu"], cm).plan.makespan
        print(f"== {title}: makespan {placed.plan.makespan * 1e6:.1f} us "
              f"(CPU alone {alone * 1e6:.1f} us)")
        print(placed.plan)
        print()
        if sd.cuda.is_available():
            got = placed(u, i)
            np.testing.assert_allclose(got.detach().numpy(), model(u, i).detach().numpy(),
                                       rtol=1e-5, atol=1e-6)
            print("ran on cpu + cuda: equal to the eager model\n")
    if not sd.cuda.is_available():
        print("(no GPU here: the plans are printed, not run)")


if __name__ == "__main__":
    main()
