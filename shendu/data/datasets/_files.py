"""Finding, downloading and checking dataset files.

Downloads go to a temporary file beside the target, are checked against a published
checksum, and only then renamed into place (``os.replace``), so an interrupted or
corrupted download never leaves a file that looks finished.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

__all__ = ["cache_dir", "ChecksumError", "DatasetNotFoundError", "file_digest", "download",
           "write_atomic", "find_files"]

_CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    """A file's contents do not match the checksum published for it."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on disk (and were not, or could not be, downloaded)."""


def cache_dir() -> Path:
    """Where datasets are looked for and downloaded: ``$SHENDU_DATA``, else
    ``~/.cache/shendu``.

    >>> isinstance(cache_dir(), Path)
    True
    """
    env = os.environ.get("SHENDU_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "shendu"


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``'md5'`` or ``'sha256'``), read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: str | os.PathLike, chunks) -> None:
    """Write an iterable of byte strings to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _progress(total: int | None, name: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False)


def download(urls: Sequence[str], dest: str | os.PathLike, checksum: tuple[str, str],
             timeout: float = 60.0) -> Path:
    """Fetch ``dest`` from the first of ``urls`` that works, verifying its checksum.

    Args:
        urls: mirrors to try in order (``https://``, ``http://`` or ``file://``).
        dest: final path; written atomically.
        checksum: ``(algorithm, hex digest)``, e.g. ``("md5", "f68b...")``.
        timeout: seconds to wait on the network per request.

    Raises:
        ChecksumError: every mirror that answered served different bytes.
        DatasetNotFoundError: no mirror could be reached.
    """
    dest = Path(dest)
    algorithm, expected = checksum[0], checksum[1].lower()
    failures, mismatch = [], None
    for url in urls:
        digest = hashlib.new(algorithm)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                size = response.headers.get("Content-Length")
                bar = _progress(int(size) if size else None, dest.name)
                print(f"shendu: downloading {url} -> {dest}", file=sys.stderr)

                def chunks(response=response, digest=digest, bar=bar):
                    for block in iter(lambda: response.read(_CHUNK), b""):
                        digest.update(block)
                        if bar is not None:
                            bar.update(len(block))
                        yield block
                    if digest.hexdigest() != expected:
                        raise ChecksumError(digest.hexdigest())

                try:
                    write_atomic(dest, chunks())
                finally:
                    if bar is not None:
                        bar.close()
            return dest
        except ChecksumError as exc:
            mismatch = (f"{dest.name} downloaded from {url} has {algorithm} {exc}, expected "
                        f"{expected}; the download was discarded")
            failures.append(mismatch)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            failures.append(f"{url}: {exc}")
    if mismatch is not None:
        raise ChecksumError("; ".join(failures))
    raise DatasetNotFoundError(f"could not download {dest.name}: " + "; ".join(failures))


def find_files(dirs: Sequence[Path], names: Sequence[str]) -> list[Path] | None:
    """The first directory of ``dirs`` holding every name (each plain or as ``.gz``)."""
    for d in dirs:
        found = []
        for name in names:
            hit = next((d / n for n in (name, name + ".gz") if (d / n).is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return found
    return None
