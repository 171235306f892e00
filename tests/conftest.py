"""Shared test fixtures: the real collections in ``../shared`` (read-only).

``shared_root`` is the folder beside the checkout (``<repo>/../shared``); tests
that need it skip when it is absent.  ``cranfield`` / ``vaswani`` / ``cisi``
are loaded once per session through the real loaders, with the ir_datasets
files copied into a session temporary cache (``data_cache``), never written in
``shared/``.  ``RERANK_SCALING_CACHE`` points at a session temporary folder so
no test writes into the user's ``~/.cache``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tiny_experiment import TINY

SHARED_ROOT = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Default cache (``$RERANK_SCALING_CACHE``) in a session temp folder."""
    old = os.environ.get("RERANK_SCALING_CACHE")
    os.environ["RERANK_SCALING_CACHE"] = str(tmp_path_factory.mktemp("default_cache"))
    yield
    if old is None:
        os.environ.pop("RERANK_SCALING_CACHE", None)
    else:
        os.environ["RERANK_SCALING_CACHE"] = old


@pytest.fixture(scope="session")
def shared_root() -> Path:
    """``<repo>/../shared`` with the real collections (skips if absent)."""
    if not (SHARED_ROOT / "ir_datasets").is_dir() or not (SHARED_ROOT / "beir" / "cisi").is_dir():
        pytest.skip(f"real test collections not found at {SHARED_ROOT} (expected ../shared beside the checkout)")
    return SHARED_ROOT


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """A session cache folder for loaders (ir_datasets copies) and candidates."""
    return tmp_path_factory.mktemp("data_cache")


@pytest.fixture(scope="session")
def cranfield(shared_root, data_cache):
    from rerank_scaling.data import load_collection

    return load_collection("cranfield", data_root=shared_root, cache_dir=data_cache)


@pytest.fixture(scope="session")
def vaswani(shared_root, data_cache):
    from rerank_scaling.data import load_collection

    return load_collection("vaswani", data_root=shared_root, cache_dir=data_cache)


@pytest.fixture(scope="session")
def cisi(shared_root):
    from rerank_scaling.data import load_collection

    return load_collection(str(shared_root / "beir" / "cisi"))


@pytest.fixture()
def write_experiment(tmp_path, shared_root):
    cache = tmp_path / "cache"

    def write(text: str = TINY, steps: int = 4, name: str = "exp.toml") -> Path:
        path = tmp_path / name
        path.write_text(text.format(shared=shared_root, cache=cache, steps=steps))
        return path

    return write


