"""Exhaustive corruption run over one small file of each weights format.

Every truncation and three bit patterns flipped at every byte of a PyTorch zip and legacy
checkpoint, a safetensors file, a shendu archive and an ONNX weights file; each case must
end in a ValueError naming the file, or (for flips the format cannot detect) a load, and
a zip-based file that loads must hold the original data. tests/interop/test_corrupt_files.py
runs a sample of these cases; this runs them all (a minute or two):

    PYTHONPATH=$PWD python tools/fuzz_formats.py
"""
import collections
import pathlib
import sys
import tempfile


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "tests" / "interop"))
    import test_corrupt_files as T

    import shendu as sd
    from shendu.interop.onnx_weights import save_initializers

    tmp = pathlib.Path(tempfile.mkdtemp())
    files = T._good_files(tmp)
    save_initializers({"w": sd.arange(12, dtype=sd.float32).reshape(3, 4), "b": sd.ones(3)},
                      tmp / "g.onnx")
    files["onnx"] = (tmp / "g.onnx").read_bytes()
    failures = collections.Counter()
    total = 0
    for fmt, data in files.items():
        suffix = "onnx" if fmt == "onnx" else "pth" if "pth" in fmt else fmt
        path = tmp / f"victim.{suffix}"
        path.write_bytes(data)
        original = T._load(path)
        cases = [(f"cut at {c}", data[:c], True) for c in range(len(data))]
        for at in range(len(data)):
            for bits in (0xFF, 0x01, 0x80):
                flipped = bytearray(data)
                flipped[at] ^= bits
                cases.append((f"byte {at} ^ {bits:#x}", bytes(flipped), False))
        for how, blob, must_fail in cases:
            try:
                T._check(fmt, blob, path, original, how, must_fail)
            except BaseException as exc:  # noqa: BLE001 - count and show every kind once
                key = (fmt, type(exc).__name__)
                if not failures[key]:
                    print(f"{fmt} {how}: {str(exc)[:300]}")
                failures[key] += 1
        total += len(cases)
        print(f"{fmt}: {len(data)} bytes, {len(cases)} cases", flush=True)
    print(f"{total} cases, {sum(failures.values())} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
