"""Nothing is written outside the run folder and the cache; outputs follow the umask."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rerank_scaling.data.util import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "out.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == mode


def test_train_and_report_write_only_the_run_folder_and_the_cache(tmp_path, shared_root):
    import ranx

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RERANK_SCALING_CACHE", "MPLCONFIGDIR", "NUMBA_CACHE_DIR",
                                                          "IR_DATASETS_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    env["HOME"] = str(home)
    package = Path(ranx.__file__).parent
    before = {p: p.stat().st_mtime_ns for p in _files(package)}
    started = time.time_ns()
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rerank_scaling", "train", "--out", str(out), "--data-root", str(shared_root),
           "--ladder", "scratch", "--size", "L1-H64", "--steps", "2", "--eval-every", "2", "--batch-size", "2",
           "--n-negatives", "3", "--max-length", "48", "--candidates-k", "20", "--rerank-k", "10",
           "--ce-negatives", "4", "--eval", "cranfield-test=cranfield:test", "--metrics", "ndcg@10,map"]
    subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600)
    cache = home / ".cache" / "rerank_scaling"
    written = {p for p in _files(home) if p.is_file()}
    assert written and all(cache in p.parents for p in written), sorted(map(str, written - _files(cache)))
    assert (cache / "numba").is_dir()  # ranx's JIT cache is in ours, not in the package
    changed = [p for p in _files(package) if p not in before or p.stat().st_mtime_ns > max(started, before[p])]
    assert changed == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "run"]  # nothing beside --out either
