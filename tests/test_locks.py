"""Per-run locks: exclusive, stale ones taken over, nothing that can wedge a grid."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from ncrepro.locks import LockHeld, RunLock, check_expiry, lock_path, lock_state


def _write(out, **info):
    lock_path(out).write_text(json.dumps(info))


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def test_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path):
    out = tmp_path / "run.json"
    with RunLock(out):
        assert lock_path(out).exists() and lock_state(lock_path(out))["pid"] == os.getpid()
        with pytest.raises(LockHeld, match="held by"):
            RunLock(out).acquire()
    assert not lock_path(out).exists()
    # A lock left by a dead process on this host is stale.
    _write(out, host=socket.gethostname(), pid=2 ** 22 + 7, started="2026-01-01T00:00:00+00:00")
    assert lock_state(lock_path(out)) is None
    with RunLock(out):
        pass
    # From another host: live until it expires.
    _write(out, host="elsewhere", pid=1, started=_now())
    assert lock_state(lock_path(out))["host"] == "elsewhere"
    with pytest.raises(LockHeld):
        RunLock(out).acquire()
    assert lock_state(lock_path(out), expiry_hours=1e-9) is None
    with RunLock(out, expiry_hours=1e-9):
        pass


def test_a_reused_pid_does_not_hold_a_lock(tmp_path):
    """A lock whose pid now belongs to another live process (one that started after the lock's
    holder) is stale: here the pid is this test's own, with a recorded start that is not its."""
    out = tmp_path / "run.json"
    _write(out, host=socket.gethostname(), pid=os.getpid(), pid_start="1", started=_now())
    assert lock_state(lock_path(out)) is None
    with RunLock(out):
        pass
    # The same pid with its true start holds it.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        from ncrepro.locks import _process_start  # noqa: PLC2701 - the test checks the private helper
        _write(out, host=socket.gethostname(), pid=child.pid, pid_start=_process_start(child.pid), started=_now())
        assert lock_state(lock_path(out))["pid"] == child.pid
        with pytest.raises(LockHeld):
            RunLock(out).acquire()
    finally:
        child.kill()
        child.wait()
    assert lock_state(lock_path(out)) is None


@pytest.mark.parametrize("content", ["", "{", "[]", '{"host": "h"}', '{"host": "h", "pid": "x", "started": "t"}',
                                     '{"host": "h", "pid": 1, "started": "not a time"}',
                                     '{"host": "h", "pid": 1e400, "started": "2026-01-01"}'])
def test_an_unreadable_lock_is_stale(tmp_path, content):
    out = tmp_path / "run.json"
    lock_path(out).write_text(content)
    assert lock_state(lock_path(out)) is None
    with RunLock(out):
        assert lock_state(lock_path(out))["pid"] == os.getpid()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "soon"])
def test_expiry_is_a_positive_finite_number(tmp_path, bad):
    with pytest.raises(ValueError, match="lock expiry"):
        check_expiry(bad)
    with pytest.raises(ValueError, match="lock expiry"):
        RunLock(tmp_path / "r.json", expiry_hours=bad)
