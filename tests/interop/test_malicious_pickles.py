"""Malicious pickles inside torch.save containers: refused by name, and nothing runs.

Every payload here, loaded by plain ``pickle.loads``, creates a marker file (the control
test proves it); loaded by ``sd.load`` it must raise before anything runs, so the marker
never appears.
"""
import copyreg
import io
import os
import pickle
import re
import subprocess
import zipfile

import numpy as np
import pytest

import shendu as sd
from shendu.interop import CheckpointError
from shendu.interop.pytorch import LEGACY_MAGIC


class Reduce:
    """An object that pickles as ``fn(*args)``."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _py(code: str) -> bytes:
    """A protocol-2 pickle of the given opcode text (for hand-made sequences)."""
    return code.encode("latin-1")


def payloads(marker: str) -> dict:
    """name -> (pickle bytes, the global the reader must name in its refusal, a regex)."""
    touch = f"touch {marker}"
    write = f"open({marker!r}, 'w').close()"
    out = {
        "os.system": (pickle.dumps({"w": Reduce(os.system, touch)}, protocol=2),
                      f"{os.system.__module__}.system"),
        "subprocess": (pickle.dumps(Reduce(subprocess.check_call, ["touch", marker])),
                       "subprocess.check_call"),
        "eval": (pickle.dumps([Reduce(eval, write)], protocol=2), "builtins.eval"),
        "exec": (pickle.dumps(Reduce(exec, write), protocol=2), "builtins.exec"),
        "exec, protocol 5": (pickle.dumps(Reduce(exec, write), protocol=5), "builtins.exec"),
        # __import__('os') then getattr(module, 'system')(touch), all in pickle opcodes
        "__import__": (_py("\x80\x02cbuiltins\ngetattr\n(cbuiltins\n__import__\n(X\x02\x00\x00"
                           "\x00ostRX\x06\x00\x00\x00systemtR(X" + len(touch).to_bytes(4,
                           "little").decode("latin-1") + touch + "tR."), "builtins.getattr"),
        "INST opcode": (_py(f"(S'{touch}'\nios\nsystem\n."), "os.system"),
        "OBJ opcode": (_py(f"(cos\nsystem\nS'{touch}'\no."), "os.system"),
        "copyreg._reconstructor": (pickle.dumps(Reduce(copyreg._reconstructor, object,
                                                       object, None), protocol=2),
                                   "copy_?reg._reconstructor"),  # protocol 2: copy_reg
        # a global from an unrelated module, and a torch global outside the allow-list
        "unrelated module": (pickle.dumps(Reduce(np.save, marker, np.zeros(1)), protocol=2),
                             f"{np.save.__module__}.save"),
        "torch.load": (_py("\x80\x02ctorch.serialization\nload\nX\x01\x00\x00\x00xtR."),
                       "torch.serialization.load"),
        # a tensor subclass rebuilt through its own type (torch's route for subclasses)
        "_rebuild_from_type_v2": (_py("\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n."),
                                  "torch._tensor._rebuild_from_type_v2"),
    }
    return out


def ext_payload(marker: str) -> bytes:
    """os.system reached through a copyreg extension code (the EXT1 opcode)."""
    copyreg.add_extension(os.system.__module__, "system", 0xF3)
    try:
        return pickle.dumps(Reduce(os.system, f"touch {marker}"), protocol=2)
    finally:
        copyreg.remove_extension(os.system.__module__, "system", 0xF3)


def torch_zip(pkl: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


def legacy(pkl: bytes) -> bytes:
    head = [LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}]
    return b"".join(pickle.dumps(x, protocol=2) for x in head) + pkl


def legacy_first(pkl: bytes) -> bytes:
    """The payload inside the first pickle of a legacy stream, beside the magic number:
    ``(MAGIC, payload)``."""
    body = pkl[2:] if pkl[:1] == b"\x80" else pkl
    if body[:1] == b"\x95":  # drop a protocol-4 frame header (its length would be off)
        body = body[9:]
    magic = pickle.dumps(LEGACY_MAGIC, protocol=2)[2:-1]
    return b"\x80\x02(" + magic + body[:-1] + b"t."


CONTAINERS = {"zip": torch_zip, "legacy": legacy, "legacy, first pickle": legacy_first}


def test_the_payloads_are_live(tmp_path):
    """The control: plain pickle runs each payload and the marker appears."""
    for name, (data, _) in payloads(str(tmp_path / "m")).items():
        if name in ("copyreg._reconstructor", "torch.load", "_rebuild_from_type_v2",
                    "unrelated module"):
            continue  # harmless or needing torch; still must be refused below
        marker = tmp_path / "m"
        pickle.loads(data)
        assert marker.exists(), name
        marker.unlink()


@pytest.mark.parametrize("container", list(CONTAINERS))
@pytest.mark.parametrize("name", list(payloads("m")))
def test_malicious_pickles_are_refused_and_nothing_runs(tmp_path, container, name):
    marker = tmp_path / "marker"
    data, refused = payloads(str(marker))[name]
    path = tmp_path / "evil.pth"
    path.write_bytes(CONTAINERS[container](data))
    with pytest.raises(CheckpointError) as info:
        sd.load(path)
    msg = str(info.value)
    assert "evil.pth" in msg, msg
    assert re.search(f"refers to {refused},", msg), msg
    assert not marker.exists()
    assert not (tmp_path / "marker.npy").exists()


def test_extension_code_is_refused(tmp_path):
    marker = tmp_path / "marker"
    data = ext_payload(str(marker))
    assert b"\x82" in data  # the EXT1 opcode
    # registered while loading, as an attacker would hope
    copyreg.add_extension(os.system.__module__, "system", 0xF3)
    try:
        (tmp_path / "evil.pth").write_bytes(torch_zip(data))
        with pytest.raises(CheckpointError, match=r"refers to (posix|nt)\.system"):
            sd.load(tmp_path / "evil.pth")
    finally:
        copyreg.remove_extension(os.system.__module__, "system", 0xF3)
    assert not marker.exists()


def _storage_pid(key="0", numel=4, kind="FloatStorage") -> str:
    return (f"(X\x07\x00\x00\x00storagectorch\n{kind}\nX\x01\x00\x00\x00{key}"
            f"X\x03\x00\x00\x00cpuK{chr(numel)}tQ")


def _tensor_pkl(offset: int, size: tuple, stride: tuple, pid=None) -> bytes:
    def tup(xs):
        return "(" + "".join(f"K{chr(x)}" for x in xs) + "t"
    return _py("\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(" + (pid or _storage_pid())
               + f"K{chr(offset)}" + tup(size) + tup(stride) + "\x89N" + "tR.")


def _zip_with_storage(pkl: bytes, nbytes: int = 16) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/data/0", b"\x00" * nbytes)
    return buf.getvalue()


@pytest.mark.parametrize("what, pkl, nbytes, match", [
    ("a well-formed tensor (the control)", _tensor_pkl(0, (2, 2), (2, 1)), 16, None),
    ("a view reaching past its storage", _tensor_pkl(1, (2, 2), (2, 1)), 16,
     "reaches past its storage"),
    ("a huge stride", _tensor_pkl(0, (2,), (200,)), 16, "reaches past its storage"),
    ("shape and stride of different lengths", _tensor_pkl(0, (2, 2), (1,)), 16,
     "malformed shape"),
    ("a storage larger than its member", _tensor_pkl(0, (2,), (1,)), 8, "holds 8 bytes"),
    ("a storage id that is not a tuple",
     _tensor_pkl(0, (1,), (1,), pid="X\x01\x00\x00\x00xQ"), 16, "persistent id"),
    ("a storage of an unknown class",
     _tensor_pkl(0, (1,), (1,), pid=_storage_pid(kind="EvilStorage")), 16,
     r"refers to torch\.EvilStorage"),
    ("a member outside the archive's folder",
     _tensor_pkl(0, (1,), (1,), pid=_storage_pid(key="/")), 16, "lacks archive/data//"),
    ("BUILD state forced onto a tensor", _tensor_pkl(0, (1,), (1,))[:-1] + b"}b.", 16,
     "unexpected state for a TensorRecord"),
    ("_codecs.encode with another codec",
     _py("\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlib\x86R."), 0,
     "allowed only for latin-1"),
])
def test_abused_allowed_builders_give_errors_not_memory(tmp_path, what, pkl, nbytes, match):
    path = tmp_path / "crafted.pt"
    path.write_bytes(_zip_with_storage(pkl, nbytes))
    if match is None:
        assert sd.load(path).shape == (2, 2)
        return
    with pytest.raises(CheckpointError, match=r"crafted\.pt'.*" + match):
        sd.load(path)


def test_shared_references_do_not_blow_up_and_deep_nesting_is_refused(tmp_path):
    # 2**60 leaves if expanded; the reader keeps the sharing instead
    lst: list = []
    for _ in range(60):
        lst = [lst, lst]
    (tmp_path / "laughs.pt").write_bytes(torch_zip(pickle.dumps(lst, protocol=2)))
    out = sd.load(tmp_path / "laughs.pt")
    assert out[0] is out[1]
    deep = _py("\x80\x02" + "]" * 100_000 + "a" * 99_999 + ".")
    (tmp_path / "deep.pt").write_bytes(torch_zip(deep))
    with pytest.raises(CheckpointError, match=r"deep\.pt'.*nesting too deep"):
        sd.load(tmp_path / "deep.pt")


def test_general_pickles_are_never_unpickled(tmp_path):
    marker = tmp_path / "marker"
    data, _ = payloads(str(marker))["os.system"]
    (tmp_path / "plain.pkl").write_bytes(data)
    with pytest.raises(ValueError, match=r"plain\.pkl' .*looks like a pickle.*never unpickles"):
        sd.load(tmp_path / "plain.pkl")
    assert not marker.exists()


def test_size_claims_beyond_the_file_are_refused(tmp_path):
    # a pickle string claiming a terabyte, and a deflated data.pkl expanding past the archive
    huge = _py("\x80\x04\x8e" + (1 << 40).to_bytes(8, "little").decode("latin-1") + "ab.")
    (tmp_path / "huge.pt").write_bytes(torch_zip(huge))
    with pytest.raises(CheckpointError, match=r"huge\.pt'.*broken pickle"):
        sd.load(tmp_path / "huge.pt")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02]" + b"N" * 2_000_000 + b".")
    (tmp_path / "bomb.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match=r"bomb\.pt'.*claims 2000004 bytes, more than"):
        sd.load(tmp_path / "bomb.pt")
