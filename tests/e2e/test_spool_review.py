"""The adversarial review of issue 8's spool, kept as regression tests: a
spool directory deleted during an outage (its spans were lost uncounted) and
a killed sibling's ring file (never sent while the live process ran). Each
failed before its fix.

Uses the fault matrix's machinery (FaultEndpoint, the steady emitter and its
progress file)."""

import os
import shutil

import pytest

from harness import Emitter, FaultEndpoint, wait_for
from test_fault_matrix import BASE_ENV, HAS_SPOOL, NO_SPOOL_REASON, Progress, dropped

RATE = 5000
SECONDS = 3
TOTAL = RATE * SECONDS


@pytest.mark.skipif(not HAS_SPOOL, reason=NO_SPOOL_REASON)
def test_spool_directory_deleted_during_an_outage_is_counted(tmp_path):
    """The matrix deletes the directory at 20 %, before its outage (25-75 %):
    nothing is on disk then. Here the directory is deleted in the middle of
    the outage, with batches waiting on disk. Those spans are gone (an
    operator removed them), but the promise is lost == counted."""
    spool_dir = str(tmp_path / "spool")
    progress = Progress(str(tmp_path / "progress"))
    env = dict(BASE_ENV, OTELAGENT_E2E_PROGRESS=progress.path, OTELAGENT_SPOOL_DIR=spool_dir)
    endpoint = FaultEndpoint("ok")
    em = Emitter("steady", endpoint.endpoint, env, [str(RATE), str(SECONDS)])
    try:
        progress.wait(int(TOTAL * 0.1), em)
        endpoint.set_mode("down")
        progress.wait(int(TOTAL * 0.5), em)
        segments = [n for n in os.listdir(spool_dir) if n.endswith(".seg")]
        shutil.rmtree(spool_dir)
        progress.wait(int(TOTAL * 0.8), em)
        endpoint.set_mode("ok")
        assert em.wait(120) == 0, em.stderr[-3000:]
        stats = em.stats()
    finally:
        if em.proc.poll() is None:
            em.proc.kill()
            em.proc.wait()
        endpoint.close()
    unique, _ = endpoint.received()
    lost = TOTAL - len(unique)
    counted = dropped(stats)
    assert segments, "nothing was on disk when the directory was deleted"
    assert lost == counted, (f"{lost} spans lost but {counted} counted as dropped "
                             f"({len(segments)} segments were deleted); statistics {stats}")


@pytest.mark.skipif(not HAS_SPOOL, reason=NO_SPOOL_REASON)
def test_a_live_process_sends_what_a_killed_sibling_left(tmp_path):
    """Two processes share the directory; one is killed with spans ended
    that are still in its ring file (not yet in a segment), the other lives
    on. Its segments become orphans and the live process sends them, and its
    ring file too: the live process looks for dead processes' ring files
    every 5 s (before the fix, only when its exporter started)."""
    spool_dir = str(tmp_path / "spool")
    progress = Progress(str(tmp_path / "progress"))
    env = dict(BASE_ENV, OTELAGENT_SPOOL_DIR=spool_dir)
    endpoint = FaultEndpoint("ok")
    alive = Emitter("resume", endpoint.endpoint, env)
    victim = None
    try:
        wait_for(alive.started, 60, "the live process to start")
        victim = Emitter("steady", endpoint.endpoint,
                         dict(env, OTELAGENT_E2E_PROGRESS=progress.path),
                         [str(RATE), str(SECONDS)])
        progress.wait(TOTAL // 2, victim)
        victim.proc.kill()
        victim.wait(30)
        ended = progress.read()
        expected = set(range(ended))
        try:
            wait_for(lambda: endpoint.received()[0] >= expected, 15,
                     "the live process to send the killed one's spans")
        except AssertionError:
            pass
        missing = expected - endpoint.received()[0]
        rings = [n for n in os.listdir(spool_dir) if n.startswith("ring-")]
        alive.resume()
        assert alive.wait(60) == 0, alive.stderr[-3000:]
    finally:
        for p in (alive, victim):
            if p is not None and p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        endpoint.close()
    assert not missing, (f"{len(missing)} of {ended} ended spans of the killed process were not "
                         f"sent by the live one (ring files left: {rings})")
