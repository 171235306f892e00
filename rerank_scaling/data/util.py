"""Small helpers shared by the data, candidates and evaluation stages.

* :func:`default_cache_dir` -- ``$RERANK_SCALING_CACHE`` or ``~/.cache/rerank_scaling``.
* :func:`keep_library_caches_in_cache` -- matplotlib, numba (ranx's JIT) and
  ir_datasets write their caches under it, not in ``$HOME`` or site-packages.
* :func:`atomic_write_text` / :func:`atomic_write_bytes` -- write to a temporary
  file in the target folder, then ``os.replace`` it, so a crash never leaves a
  half-written output behind; the file gets the mode the user's umask gives.
* :func:`normalise_ws` -- collapse runs of whitespace to one space.
* :func:`stable_hash` -- a sha256-based integer that does not depend on the
  Python hash seed (``PYTHONHASHSEED``), for seeded, order-free decisions.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def default_cache_dir() -> Path:
    """The cache folder: ``$RERANK_SCALING_CACHE`` if set, else ``~/.cache/rerank_scaling``."""
    env = os.environ.get("RERANK_SCALING_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "rerank_scaling"


def keep_library_caches_in_cache() -> None:
    """Point the caches libraries write on their own into the toolkit's cache folder.

    matplotlib (font cache and config, ``MPLCONFIGDIR``), numba (the JIT cache of
    ranx's metrics, ``NUMBA_CACHE_DIR``; by default inside the installed
    package) and ir_datasets (``IR_DATASETS_HOME``, which it creates for any id
    it is asked about). A variable the user set is kept; so is an existing
    ``~/.ir_datasets`` (the user's downloads). Must run before those libraries
    are imported; idempotent.
    """
    base = default_cache_dir()
    os.environ.setdefault("MPLCONFIGDIR", str(base / "matplotlib"))
    os.environ.setdefault("NUMBA_CACHE_DIR", str(base / "numba"))
    if "IR_DATASETS_HOME" not in os.environ and not (Path.home() / ".ir_datasets").exists():
        os.environ["IR_DATASETS_HOME"] = str(base / "ir_datasets")


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, for every thread)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normalise_ws(text: str) -> str:
    """``text`` with every run of whitespace replaced by one space, stripped."""
    return " ".join(text.split())


def stable_hash(text: str) -> int:
    """A 64-bit integer from sha256(text): stable across runs and machines."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def stable_key(text: str) -> str:
    """The hex sha256 of ``text`` (a sort key independent of ``PYTHONHASHSEED``)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are shared like any file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write ``text`` (utf-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
