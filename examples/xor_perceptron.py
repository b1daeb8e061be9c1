"""XOR: why a single perceptron is not enough, and a hidden layer is.

    python examples/xor_perceptron.py

A perceptron draws one straight line. For AND that is enough and its learning rule
converges; for XOR, (0,1) and (1,0) must fall on one side and (0,0), (1,1) on the other,
which no line can do, so the rule keeps making mistakes forever. A network with one
hidden layer of two tanh units (2-2-1, nine weights) bends the boundary and solves it.
Small nets like this can stall in a local minimum, so we restart from a new random
initialisation when that happens, as one does in practice.
"""
import numpy as np

import shendu as sd
import shendu.nn.functional as F
from shendu.data.datasets import make_xor
from shendu.models import Perceptron
from shendu.vision.models import MLP


def train_xor_mlp(X: sd.Tensor, y: sd.Tensor, seed: int, steps: int = 300):
    sd.manual_seed(seed)
    net = MLP(2, hidden_sizes=(2,), num_classes=1, activation="tanh")
    opt = sd.optim.Adam(net.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(net(X).reshape(-1), y)
        loss.backward()
        opt.step()
    with sd.no_grad():
        pred = (net(X).reshape(-1).numpy() > 0).astype(int)
    return net, pred, loss.item()


def main() -> None:
    X, y = make_xor(4, noise=0.0)
    and_y = np.array([0, 0, 0, 1])

    p_and = Perceptron(2).fit(X, and_y, epochs=100)
    print(f"perceptron on AND: converged={p_and.converged_} after {p_and.n_epochs_} epochs, "
          f"predictions {p_and.predict(X).tolist()}")
    p_xor = Perceptron(2).fit(X, y, epochs=100)
    print(f"perceptron on XOR: converged={p_xor.converged_}; still {p_xor.errors_[-1]} "
          f"mistakes per epoch after 100 epochs, predictions {p_xor.predict(X).tolist()} "
          f"(truth {y.tolist()})")

    Xt, yt = sd.tensor(X), sd.tensor(y).float()
    for restart in range(10):
        net, pred, loss = train_xor_mlp(Xt, yt, seed=restart)
        status = "solved" if pred.tolist() == y.tolist() else "stuck in a local minimum"
        print(f"2-2-1 MLP, restart {restart}: loss {loss:.4f}, predictions {pred.tolist()} "
              f"-> {status}")
        if pred.tolist() == y.tolist():
            break
    hidden = net.net[1]
    print("hidden layer weights (each row is one line through the input square):")
    print(np.round(hidden.weight.detach().numpy(), 2), np.round(hidden.bias.detach().numpy(), 2))


if __name__ == "__main__":
    main()
