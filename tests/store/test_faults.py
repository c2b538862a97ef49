"""Faults of the store itself: a writer killed at every step, racing writers, stale locks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest

from pcdata.errors import StoreLockedError
from pcdata.store import open_store, prepare_store, write_store
from pcdata.store.lock import LOCK_NAME, StoreLock
from tests.conftest import REPO
from tests.store.conftest import SMALL_CHUNKS, make_clouds, template

OLD, NEW = make_clouds(90, seed=1), make_clouds(120, seed=2)
_STEPS = ("rename", "replace", "unlink", "rmdir", "mkdir", "fsync")


def _write(path, clouds, fingerprint, kill_at: int | None = None) -> int:
    """Write ``clouds`` as a store (replacing any) in a forked child killed (``os._exit``, no
    cleanup, like kill -9) just before its ``kill_at``-th filesystem step; the child's exit code."""
    pid = os.fork()
    if pid == 0:  # the child
        try:
            if kill_at is not None:
                count = [0]
                for name in _STEPS:
                    real = getattr(os, name)

                    def step(*args, _real=real, **kwargs):
                        count[0] += 1
                        if count[0] == kill_at:
                            os._exit(137)
                        return _real(*args, **kwargs)

                    setattr(os, name, step)
            write_store(path, clouds, template(fingerprint), clouds_per_fragment=40, chunks=SMALL_CHUNKS, overwrite=True)
            os._exit(0)
        except BaseException:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _contents(path):
    """What a reader opening ``path`` finds: None (no store there) or the complete store's clouds."""
    try:
        s = open_store(path)
    except Exception:
        return None
    return s.read()


@pytest.mark.parametrize("existing", [False, True], ids=["create", "overwrite"])
def test_a_writer_killed_at_any_step_leaves_a_store_the_rerun_finishes(tmp_path, existing, capfd):
    step, outcomes = 0, set()
    while True:
        step += 1
        path = tmp_path / f"s{step}"
        if existing:
            assert _write(path, OLD, "old") == 0
        code = _write(path, NEW, "new", kill_at=step)
        if code == 0:
            break  # the writer took fewer steps than this: every step has been tried
        assert code == 137
        found = _contents(path)
        if existing:
            # Never an empty path, never a mix: the old store until the switch, the new one after.
            assert found is not None and (found.equals(OLD) or found.equals(NEW)), step
        else:
            assert found is None or found.equals(NEW), step
        outcomes.add("old" if found is not None and found.equals(OLD) else "new" if found is not None else "none")
        assert _write(path, NEW, "new") == 0  # the same command again: it finishes the store
        s = open_store(path)
        assert s.read().equals(NEW) and s.verify() == []
        assert sorted(p.name for p in path.iterdir()) == ["fragments", "manifests", "zarr.json"]  # no lock left
        # Nor any temporary of the killed writer, at any depth (metadata rewrites, fragments).
        assert [str(p) for p in path.rglob("*.tmp-*")] == [], step
        assert len(list((path / "fragments").glob("g*"))) == 1 and len(list((path / "manifests").glob("g*"))) == 1
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert step > 30  # the writer really was interrupted all along its way
    assert outcomes == ({"old", "new"} if existing else {"none", "new"})


_HOLDER = textwrap.dedent("""
    import sys
    from dataclasses import replace
    from pcdata.store import prepare_store
    from tests.store.conftest import template
    builder = prepare_store(sys.argv[1], replace(template("holder"), expected_fragments=1), command="holder-command")
    print("locked", flush=True)
    sys.stdin.readline()
    builder.close()
""")


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path):
    path = tmp_path / "s"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match=rf"pid {holder.pid} on {socket.gethostname()}.*holder-command"):
            prepare_store(path, replace(template("other"), expected_fragments=1), overwrite=True)
        with pytest.raises(StoreLockedError):
            write_store(path, make_clouds(10), template("holder"))  # even the same inputs: one writer at a time
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0 and not (path / LOCK_NAME).exists()
    write_store(path, make_clouds(10), template("holder"))  # released: the build resumes and finishes
    assert open_store(path).num_clouds == 10


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_message(tmp_path, capfd):
    path = tmp_path / "s"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.mkdir()
    (path / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "token": "t",
                                              "started": None, "time": "then", "command": "killed"}))
    lock = StoreLock.create(path)
    assert lock.held() and f"taking over the lock of pid {dead.pid}" in capfd.readouterr().err
    lock.release()
    assert not (path / LOCK_NAME).exists()


def test_a_lock_of_a_live_pid_that_is_another_process_is_stale(tmp_path, capfd):
    # pid reuse: the pid runs, but a process started at another time than the lock's owner.
    path = tmp_path / "s"
    path.mkdir()
    (path / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": "t",
                                              "started": "1", "time": "then", "command": "old"}))
    StoreLock.create(path).release()
    assert "taking over" in capfd.readouterr().err


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    path = tmp_path / "s"
    path.mkdir()
    (path / LOCK_NAME).write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "t", "time": "then", "command": "x"}))
    with pytest.raises(StoreLockedError, match=f"pid 1 on elsewhere.*if that process is gone, remove {LOCK_NAME}"):
        StoreLock.create(path)
    assert json.loads((path / LOCK_NAME).read_text())["host"] == "elsewhere"
