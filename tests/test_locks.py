"""The cell lock where the filesystem has no flock (Lustre mounted noflock): lock files with a holder and a
heartbeat; a live holder is waited for, a dead one's lock taken over, another host's judged by its heartbeat."""

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import rerank_scaling.rundir as rundir
from rerank_scaling.rundir import RunFolder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def no_flock(monkeypatch):
    """A filesystem whose flock fails as Lustre's does when mounted noflock."""
    def refuse(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", refuse)
    monkeypatch.setattr(rundir, "LOCK_POLL_S", 0.05)
    monkeypatch.setattr(rundir, "HEARTBEAT_S", 0.05)


def test_without_flock_the_lock_file_excludes_a_second_holder(tmp_path, no_flock):
    run = RunFolder(tmp_path / "cell")
    order = []

    def second():
        with run.lock():
            order.append("second in")

    with run.lock():
        record = json.loads(run.lock_file.read_text())
        assert record["pid"] == os.getpid() and run.holder() == os.getpid() and run.is_locked()
        before = run.lock_file.stat().st_mtime
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.4)
        order.append("first out")
        assert run.lock_file.stat().st_mtime > before  # the heartbeat touches it while held
    waiter.join(10)
    assert order == ["first out", "second in"]  # the second waited for the first
    assert not run.lock_file.exists() and not run.is_locked()  # released: the file is gone
    assert not list(run.path.glob(".lock.*"))  # no staging files left behind


def test_a_killed_holders_lock_is_taken_over(tmp_path, no_flock):
    run = RunFolder(tmp_path / "cell")
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from rerank_scaling.rundir import RunFolder
with RunFolder({str(run.path)!r}).lock():
    print("locked", flush=True)
    time.sleep(600)
"""], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO), "RERANK_SCALING_LOCK": "file"})
    assert holder.stdout.readline().strip() == "locked"
    assert run.is_locked() and run.holder() == holder.pid
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert run.lock_file.exists() and not run.is_locked()  # its file remains, naming a dead process
    started = time.monotonic()
    with run.lock():
        assert run.holder() == os.getpid()
    assert time.monotonic() - started < 5


def test_a_holder_on_another_host_is_judged_by_its_heartbeat(tmp_path, no_flock, monkeypatch):
    run = RunFolder(tmp_path / "cell")
    run.path.mkdir()
    run.lock_file.write_text(json.dumps({"pid": 1, "host": "node-17", "job": "4242_3", "since": 0}))
    assert run.is_locked()  # fresh: node-17 is running the cell (its flock, if any, is not ours to see)
    monkeypatch.setattr(rundir, "STALE_S", 0.2)
    time.sleep(0.3)
    assert not run.is_locked()  # no heartbeat for longer than STALE_S: abandoned
    with run.lock():
        assert run.lock_record()["host"] != "node-17"


def test_with_flock_a_released_lock_names_no_holder(tmp_path):
    run = RunFolder(tmp_path / "cell")
    with run.lock():
        assert run.is_locked() and run.holder() == os.getpid()
    assert run.lock_file.exists() and run.lock_record() == {} and not run.is_locked()


def test_a_bad_lock_mode_is_one_line(tmp_path, monkeypatch):
    from rerank_scaling.errors import UserError

    monkeypatch.setenv("RERANK_SCALING_LOCK", "nfs")
    with pytest.raises(UserError, match="RERANK_SCALING_LOCK='nfs': choose auto, flock or file"):
        with RunFolder(tmp_path / "cell").lock():
            pass
