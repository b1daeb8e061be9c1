"""Target networks: a slowly moving copy of a network that the TD targets are computed from."""
from __future__ import annotations

import copy

from .. import no_grad


def make_target(net):
    """A frozen copy of ``net`` (no gradients flow into it).

    >>> import shendu as sd
    >>> net = sd.nn.Linear(2, 1)
    >>> tgt = make_target(net)
    >>> all(not p.requires_grad for p in tgt.parameters())
    True
    """
    tgt = copy.deepcopy(net)
    for p in tgt.parameters():
        p.requires_grad_(False)
    return tgt


def hard_update(target, source) -> None:
    """Copy ``source``'s parameters and buffers into ``target`` (DQN every C steps)."""
    soft_update(target, source, 1.0)


def soft_update(target, source, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) * target + tau * source`` (DDPG every step).

    >>> import shendu as sd
    >>> a, b = sd.nn.Linear(1, 1), sd.nn.Linear(1, 1)
    >>> with sd.no_grad():
    ...     _ = a.weight.fill_(0.0); _ = b.weight.fill_(1.0)
    >>> soft_update(a, b, 0.25); a.weight.item()
    0.25
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"soft_update: tau must be in [0, 1], got {tau}")
    tp, sp = dict(target.named_parameters()), dict(source.named_parameters())
    tb, sb = dict(target.named_buffers()), dict(source.named_buffers())
    if tp.keys() != sp.keys():
        raise ValueError("soft_update: target and source have different parameters: "
                         f"{sorted(tp.keys() ^ sp.keys())}")
    with no_grad():
        for name, t in tp.items():
            if tau == 1.0:
                t.copy_(sp[name])
            else:
                t.mul_(1.0 - tau).add_(sp[name], alpha=tau)
        for name, t in tb.items():  # running statistics are copied, not averaged
            if name in sb:
                t.copy_(sb[name])
