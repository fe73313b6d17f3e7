"""The run lock and signals: no two holders ever, a dead holder's lock is free at once,
SIGTERM handled like Ctrl-C, kills at random points resume to the uninterrupted result,
and readers do not write into a run a sweep is writing."""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from results.frames import synthetic_cell
from sweep.test_runner import sweep_subprocess, tiny_config

from lenskit.cli import main
from lenskit.rundir import RunLockedError, RunStore
from lenskit.rundir.lock import RunLock, lock_holder
from lenskit.sweep.runner import run_sweep

TESTS_DIR = Path(__file__).resolve().parents[1]
N_WORKERS = 6
N_TRIALS = 200


def _stale_lock(run: Path) -> None:
    """A lock file as a dead process leaves it (its pid and host inside)."""
    run.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))


def _contender(dirs, barrier, active, peak, wins, lost, guard) -> None:
    for i, d in enumerate(dirs):
        barrier.wait()
        lock = RunLock(d, patience=0.0)
        try:
            lock.acquire()
        except RunLockedError:
            continue
        with guard:
            active.value += 1
            peak.value = max(peak.value, active.value)
            wins[i] += 1
        st_fd, st_path = os.fstat(lock._fd), os.stat(lock.path)
        if (st_fd.st_ino, st_fd.st_dev) != (st_path.st_ino, st_path.st_dev):
            with guard:
                lost.value += 1  # the holder's file was replaced or deleted under it
        time.sleep(0.002)
        with guard:
            active.value -= 1
        lock.release()


def test_concurrent_takeover_of_a_stale_lock_has_one_holder(tmp_path):
    dirs = [str(tmp_path / f"r{i}") for i in range(N_TRIALS)]
    _stale_lock(Path(dirs[0]))
    for d in dirs:  # every trial starts from the lock file a dead sweep left behind
        Path(d).mkdir(exist_ok=True)
        (Path(d) / ".lock").write_text((Path(dirs[0]) / ".lock").read_text())
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(N_WORKERS)
    active, peak, lost = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Value("i", 0)
    wins = ctx.Array("i", N_TRIALS)
    guard = ctx.Lock()
    procs = [ctx.Process(target=_contender, args=(dirs, barrier, active, peak, wins, lost,
                                                  guard)) for _ in range(N_WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert peak.value == 1, "two processes held one run's lock at once"
    assert lost.value == 0, "a holder's lock file was replaced while it held it"
    assert all(w >= 1 for w in wins), "a free lock was not taken by anyone"
    assert all(lock_holder(d) is None for d in dirs)


def test_store_takeover_race(tmp_path):
    # The same race through RunStore.open: exactly one opener wins while it holds the run.
    ctx = mp.get_context("fork")
    run = tmp_path / "r"
    _stale_lock(run)
    q = ctx.Queue()
    barrier = ctx.Barrier(4)

    def contender():
        barrier.wait()
        try:
            with RunStore.open(run, {"name": "race"}):
                start = time.monotonic()
                time.sleep(0.5)
                q.put(("held", start, time.monotonic()))
        except RunLockedError:
            q.put(("locked", 0.0, 0.0))

    procs = [ctx.Process(target=contender) for _ in range(4)]
    for p in procs:
        p.start()
    events = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    held = sorted((a, b) for kind, a, b in events if kind == "held")
    assert held, events
    assert all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(held)), "two holders"
    assert len(RunStore(run).manifest()["sessions"]) == len(held)
    assert RunStore(run).manifest()["status"] == "complete"


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from results.frames import synthetic_cell
    from lenskit.errors import SweepTerminated
    from lenskit.sweep.runner import sigterm_as_interrupt
    from lenskit.rundir.store import RunStore
    try:
        with sigterm_as_interrupt(), RunStore.open({run!r}, {config!r}) as store:
            print("opened", flush=True)
            for i in range({n}):
                cell_id, rows, inst = synthetic_cell(i, n_instances=300)
                if store.done(cell_id):
                    continue
                time.sleep(0.03)
                store.write_cell(cell_id, rows, instances=inst)
    except SweepTerminated as e:
        sys.exit(128 + e.signum)
""")

N_CELLS = 16
CONFIG = {"name": "signals", "seeds": [0]}


def test_kills_at_random_points_resume_to_the_same_result(tmp_path):
    order = [synthetic_cell(i, 1)[0] for i in range(N_CELLS)]
    with RunStore.open(tmp_path / "ref", CONFIG) as ref:
        for i in range(N_CELLS):
            cid, rows, inst = synthetic_cell(i, n_instances=300)
            ref.write_cell(cid, rows, instances=inst)
    run = tmp_path / "run"
    rng = np.random.default_rng(7)
    script = CHILD.format(tests=str(TESTS_DIR), run=str(run), config=CONFIG, n=N_CELLS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGTERM):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"opened", proc.stderr.read().decode()
        time.sleep(float(rng.uniform(0.0, 0.25)))
        proc.send_signal(sig)
        proc.wait(60)
        assert lock_holder(run) is None
        status = RunStore(run).manifest()["status"]
        if sig == signal.SIGTERM:
            assert proc.returncode in (143, 0), proc.stderr.read().decode()
            assert status == ("interrupted" if proc.returncode == 143 else "complete")
        else:
            assert proc.returncode == -signal.SIGKILL
        assert not list(run.rglob(".*.tmp-*")) or sig == signal.SIGKILL
    with RunStore.open(run, CONFIG) as store:
        assert store.repaired == []
        for i in range(N_CELLS):
            cid, rows, inst = synthetic_cell(i, n_instances=300)
            if not store.done(cid):
                store.write_cell(cid, rows, instances=inst)
    pd.testing.assert_frame_equal(RunStore(run).results(order), ref.results(order))
    pd.testing.assert_frame_equal(RunStore(run).instances(order), ref.instances(order))


def test_sigterm_stops_a_real_sweep_cleanly(tiny_dirs, tmp_path):
    run = tmp_path / "run"
    proc = sweep_subprocess(tiny_dirs["gpt2"], run, 1, "--threads", "1")
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    err = proc.stderr.read().decode()
    assert proc.returncode == 143, err[-2000:]
    assert "terminated" in err and "Traceback" not in err
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["sessions"][-1]["status"] == "interrupted"
    assert lock_holder(run) is None
    done = len(RunStore(run).done_ids())
    out = run_sweep(tiny_config(tiny_dirs["gpt2"], run), progress=False, echo=lambda _: None)
    assert out.cells_skipped == done and out.cells_run == 5 - done
    assert not out.results.duplicated(["cell_id", "task", "metric"]).any()


@pytest.mark.parametrize("command", [["thresholds"], ["figures", "--formats", "svg"]])
def test_readers_do_not_write_into_a_run_being_swept(command, tmp_path, capsys):
    run = tmp_path / "r"
    with RunStore.open(run, CONFIG) as store:
        for i in range(3):
            cid, rows, inst = synthetic_cell(i, n_instances=20)
            store.write_cell(cid, rows, instances=inst)
        code = main([command[0], str(run), *command[1:]])
        err = capsys.readouterr().err
        assert code == 1 and "is writing to" in err and str(os.getpid()) in err
        assert not (run / "tables").exists() and not (run / "figures").exists()
    assert main(["thresholds", str(run)]) == 0  # once the sweep is done
    assert (run / "tables" / "thresholds.csv").is_file()
