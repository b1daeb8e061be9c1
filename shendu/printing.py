"""How tensors print: ``set_printoptions`` with PyTorch's arguments and profiles.

>>> import shendu as sd
>>> sd.set_printoptions(precision=2)
>>> sd.tensor([1.23456, 2.0])
tensor([1.23, 2.00])
>>> sd.set_printoptions(profile="default")
"""
from __future__ import annotations

import math

_PROFILES = {
    "default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
    "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
    "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80),
}

OPTIONS = dict(_PROFILES["default"], sci_mode=None)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """Set how tensors print.

    Args:
        precision: digits after the decimal point (4 by default).
        threshold: above this many elements a tensor prints summarised (1000).
        edgeitems: items shown at each end of a summarised dimension (3).
        linewidth: characters per line (80).
        profile: 'default', 'short' or 'full' (never summarise); applied first, then the
            other arguments.
        sci_mode: True for scientific notation always, False never, None to decide per
            tensor.
    """
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(_PROFILES)}, "
                             f"got {profile!r}")
        OPTIONS.update(_PROFILES[profile])
    for name, value in (("precision", precision), ("threshold", threshold),
                        ("edgeitems", edgeitems), ("linewidth", linewidth)):
        if value is not None:
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"set_printoptions: {name} must be a non-negative number, "
                                 f"got {value!r}")
            OPTIONS[name] = value
    OPTIONS["sci_mode"] = sci_mode


def array2string_args(arr) -> dict:
    """Keyword arguments for ``np.array2string`` under the current options."""
    o = OPTIONS
    threshold = o["threshold"]
    args = dict(threshold=int(min(threshold, 2**62)), edgeitems=int(o["edgeitems"]),
                precision=int(o["precision"]), max_line_width=int(o["linewidth"]))
    if o["sci_mode"] is not None and arr.dtype.kind == "f" and arr.size:
        p = int(o["precision"])
        spec = f".{p}e" if o["sci_mode"] else f".{p}f"
        width = max(len(format(v, spec)) for v in arr.reshape(-1)[:10000].tolist())
        args["formatter"] = {"float_kind": lambda v: format(v, spec).rjust(width)}
    return args
