"""The fault matrix (issue 8): a host process emits spans at a steady rate,
each with a unique `seq`, while the endpoint misbehaves in one way per
scenario; the set the endpoint acknowledged is compared with the set emitted.

With the spool off, every span not received must be one the agent counted
as dropped: lost == dropped-and-counted, exactly. With the spool on
(OTELAGENT_SPOOL_DIR), nothing is lost where the disk has room, except the
batches the OTLP specification says not to retry (400, 413, 500), which must
be exactly the rejected count. Delivery is at-least-once: repeats are counted,
not failed.

Each scenario adds a row to the table printed at the end of the session and
written to BUILD/fault_matrix.md (tests/e2e/conftest.py).

The fault phases are switched at points of the emitter's own progress (the
count of spans it has ended, in a shared file), not at wall-clock times; no
assertion depends on how long anything took."""

import os
import shutil
import struct
import subprocess
import tempfile

import pytest

from harness import (EMITTER, SANITIZE, Collector, Emitter, FaultEndpoint, emitter_copy,
                     fault_rows, host_env, wait_for)

# Moderate rates, so that the ASan build keeps up as well. The run's length
# can be raised for a longer outage (the "down for a minute").
RATE = 2000 if "address" in SANITIZE else 5000
SECONDS = int(os.environ.get("OTELAGENT_FAULT_SECONDS", "3"))
TOTAL = RATE * SECONDS
# Recovery after a fault within half a second; no batch is given up on
# within a run (the default retry budget is 300 s).
BASE_ENV = {
    "OTELAGENT_RETRY_INITIAL_MS": "100",
    "OTELAGENT_RETRY_MAX_MS": "500",
    "OTELAGENT_E2E_FLUSH_MS": "30000",
}
DROP_COUNTERS = ("ring_full", "span_limit", "rejected", "failed", "shutdown_dropped",
                 "thread_exit", "queue_full", "spool_full", "spool_corrupt", "spool_gone")
NO_SUCH_HOST = "http://otelagent-no-such-host.invalid:4318"
# What a fault of the spool's own disk may cost: spans dropped at its cap, or
# (once it cannot be written) that found no room in memory either.
SPOOL_FAULT_DROPS = ("spool_full", "queue_full", "ring_full")
# The disk-full scenario's tmpfs: room for the thread's ring file (128 KiB and
# its header), not for the outage's segments.
DISK_FULL_MOUNT = "size=288k,mode=0700"


def _library_has_spool():
    """The emitter prints the spool's statistics when the header it was built
    with has them, which is when the library has a spool."""
    out = subprocess.run([EMITTER, "stats"], env=host_env(), capture_output=True, text=True,
                         timeout=60)
    return '"spooled":' in out.stdout


HAS_SPOOL = os.path.exists(EMITTER) and _library_has_spool()
NO_SPOOL_REASON = ("the library has no disk spool yet (the emitter's statistics have no "
                   "spans_spooled): issue 8's spool is not merged")


def _unshare_prefix():
    """A command prefix that runs the emitter in a mount namespace of its own
    (root: unshare -m; otherwise a user namespace, unshare -rm), or None when
    neither works here."""
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        if prefix == ["unshare", "-m"] and os.geteuid() != 0:
            continue
        with tempfile.TemporaryDirectory() as d:
            probe = subprocess.run([*prefix, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d],
                                   capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


class Scenario:
    """phases: (fraction of the run's spans ended, endpoint mode, status,
    headers), the first at 0 applied before the emitter starts.
    spool: which spool settings it runs with. allowed: the drop counters
    that may be non-zero with the spool on."""

    def __init__(self, name, phases=(), env=None, spool=("off", "on"), allowed=(),
                 kind="endpoint"):
        self.name, self.phases, self.env = name, phases, dict(env or {})
        self.spool, self.allowed, self.kind = spool, allowed, kind


def middle(mode, status=None, headers=None):
    return [(0.25, mode, status, headers), (0.75, "ok", None, None)]


SCENARIOS = [
    Scenario("healthy (real collector)", kind="collector"),
    Scenario("collector down at start", [(0, "down", None, None), (0.5, "ok", None, None)]),
    Scenario("collector down in the middle", middle("down")),
    Scenario("answers after the export timeout", middle("late"),
             env={"OTEL_EXPORTER_OTLP_TIMEOUT": "300"}),
    Scenario("connections reset", middle("reset")),
    Scenario("400 Bad Request", middle("status", 400), allowed=("rejected",)),
    Scenario("413 Payload Too Large", middle("status", 413), allowed=("rejected",)),
    Scenario("429 + Retry-After: 1", middle("status", 429, {"Retry-After": "1"})),
    Scenario("500 Internal Server Error", middle("status", 500), allowed=("rejected",)),
    Scenario("503 Service Unavailable", middle("status", 503)),
    Scenario("garbage instead of HTTP", middle("garbage")),
    Scenario("DNS name does not resolve", kind="dns", env={"OTELAGENT_E2E_FLUSH_MS": "1000"}),
    Scenario("kill -9 mid-run", kind="kill"),
    Scenario("kill -9 during an outage", [(0.25, "down", None, None)], kind="kill"),
    # Uncompressed bodies and the smallest ring, so that a long outage fills
    # the small disk at any rate (see DISK_FULL_MOUNT).
    Scenario("disk full under the spool", [(0.1, "down", None, None), (0.9, "ok", None, None)],
             env={"OTEL_EXPORTER_OTLP_COMPRESSION": "none", "OTELAGENT_RING_BYTES": "131072"},
             spool=("on",), allowed=SPOOL_FAULT_DROPS, kind="disk_full"),
    Scenario("spool directory read-only", middle("down"), spool=("on",),
             allowed=SPOOL_FAULT_DROPS, kind="read_only"),
    Scenario("spool directory deleted", middle("down"), spool=("on",),
             allowed=SPOOL_FAULT_DROPS, kind="deleted"),
]

CASES = [pytest.param(sc, spool, id=f"{sc.kind}-{sc.name}-spool_{spool}")
         for sc in SCENARIOS for spool in sc.spool]


class Progress:
    """The emitter's count of spans ended, read from the file it maps."""

    def __init__(self, path):
        self.path = path
        with open(path, "wb") as f:
            f.write(b"\0" * 8)

    def read(self):
        with open(self.path, "rb") as f:
            return struct.unpack("<Q", f.read(8))[0]

    def wait(self, count, emitter):
        wait_for(lambda: self.read() >= count or emitter.proc.poll() is not None, 60 + 2 * SECONDS,
                 f"the emitter to end {count} spans")
        assert self.read() >= count, f"the emitter exited early: {emitter.stderr[-3000:]}"


def dropped(stats):
    return sum(stats.get(k, 0) for k in DROP_COUNTERS)


def drop_reasons(stats_list):
    out = {}
    for stats in stats_list:
        for k in DROP_COUNTERS:
            if stats.get(k):
                out[k] = out.get(k, 0) + stats[k]
    return out


def record(scenario, spool, emitted, unique, repeats, counted, reasons):
    lost = emitted - len(unique)
    fault_rows.append({
        "scenario": scenario.name, "spool": spool, "emitted": emitted, "received": len(unique),
        "duplicates": repeats, "dropped": counted, "lost": lost,
        "reasons": ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())),
        "rate": RATE, "seconds": SECONDS,
    })
    return lost


@pytest.mark.parametrize("scenario,spool", CASES)
def test_fault_matrix(tmp_path, scenario, spool):
    if spool == "on" and not HAS_SPOOL:
        pytest.skip(NO_SPOOL_REASON)
    prefix, work, binary, libdir = (), tmp_path, EMITTER, None
    if scenario.kind == "disk_full":
        unshare = _unshare_prefix()
        if unshare is None:
            pytest.skip("cannot mount a tmpfs here (neither as root nor in a user namespace)")
    if scenario.kind == "read_only" and os.geteuid() == 0:
        # Root writes to a read-only directory anyway: the emitter runs as
        # nobody, in a directory nobody can reach.
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to run the emitter as nobody")
        work = tempfile.mkdtemp(prefix="otelagent-fault-")
        os.chmod(work, 0o755)
        os.chown(work, 65534, 65534)
        prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
        # A copy nobody can run: the clone may be in root's 0700 home.
        binary, libdir = emitter_copy(os.path.join(work, "bin"))
    work = str(work)
    spool_dir = os.path.join(work, "spool")
    os.makedirs(spool_dir)
    if prefix:
        os.chown(spool_dir, 65534, 65534)
    if scenario.kind == "disk_full":
        # A small tmpfs on the spool directory, in the emitter's own mount
        # namespace (it goes away with the emitter).
        prefix = (*unshare, "sh", "-c",
                  f'mount -t tmpfs -o {DISK_FULL_MOUNT} tmpfs "$0" && exec "$@"', spool_dir)
    progress = Progress(os.path.join(work, "progress"))
    if prefix and prefix[0] == "setpriv":
        os.chown(progress.path, 65534, 65534)

    env = dict(BASE_ENV, OTELAGENT_E2E_PROGRESS=progress.path, **scenario.env)
    if libdir is not None:
        env["LD_LIBRARY_PATH"] = libdir
    if spool == "on":
        env["OTELAGENT_SPOOL_DIR"] = spool_dir
        if scenario.kind == "disk_full":
            env["OTELAGENT_SPOOL_MAX_BYTES"] = str(64 << 20)  # the disk fills first

    phases = list(scenario.phases)
    first_mode = phases.pop(0) if phases and phases[0][0] == 0 else (0, "ok", None, None)
    endpoint = FaultEndpoint(first_mode[1])
    if first_mode[1] == "status":
        endpoint.set_mode(*first_mode[1:])
    collector, processes = None, []
    try:
        target = endpoint.endpoint
        if scenario.kind == "collector":
            collector = Collector(tmp_path, endpoint).start()
            target = collector.endpoint
        elif scenario.kind == "dns":
            target = NO_SUCH_HOST
        em = Emitter("steady", target, env, [str(RATE), str(SECONDS)], prefix=prefix,
                     binary=binary)
        processes.append(em)
        if scenario.kind in ("read_only", "deleted"):
            phases.append((0.2, "spool", None, None))
        pending = sorted(phases, key=lambda p: p[0])
        for fraction, mode, status, headers in pending:
            progress.wait(int(TOTAL * fraction), em)
            if mode == "spool" and scenario.kind == "read_only":
                os.chmod(spool_dir, 0o500)
            elif mode == "spool":
                shutil.rmtree(spool_dir)
            else:
                endpoint.set_mode(mode, status, headers)
        stats_list = []
        if scenario.kind == "kill":
            progress.wait(TOTAL // 2, em)
            em.proc.kill()
            em.wait(30)
            endpoint.set_mode("ok")
        else:
            assert em.wait(120 + SECONDS) == 0, em.stderr[-3000:]
            stats_list.append(em.stats())
        ended = progress.read()

        if spool == "on" and scenario.kind in ("kill", "dns"):
            # The next process with the same spool directory sends what the
            # first one left there.
            resume = Emitter("resume", endpoint.endpoint, env)
            processes.append(resume)
            wait_for(resume.started, 60, "the resume process to start")
            expected = set(range(ended)) if scenario.kind == "kill" else None
            if expected is None:
                first = stats_list[0]
                expected_count = first["ended"] - dropped(first)
                wait_for(lambda: len(endpoint.received()[0]) >= expected_count, 60 + 2 * SECONDS,
                         "the resume process to send the spooled spans")
            else:
                wait_for(lambda: endpoint.received()[0] >= expected, 60 + 2 * SECONDS,
                         "the resume process to send the spans of the killed one")
            resume.resume()
            assert resume.wait(60) == 0, resume.stderr[-3000:]
            stats_list.append(resume.stats())
        if collector is not None:
            # What the collector acknowledged, it forwards.
            exported = stats_list[0]["exported"]
            wait_for(lambda: len(endpoint.received()[0]) >= exported, 30 + 2 * SECONDS,
                     f"the collector to forward {exported} spans")
    finally:
        for p in processes:  # left running by a failure
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        if collector is not None:
            collector.stop()
        endpoint.close()
        if prefix and prefix[0] == "setpriv":
            shutil.rmtree(work, ignore_errors=True)

    unique, repeats = endpoint.received()
    assert not endpoint.errors, endpoint.errors
    # One thread ends the spans in seq order: a received seq means every
    # lower one had ended too (a kill may land between an end and the
    # progress store).
    emitted = max([ended, *(s + 1 for s in unique)])
    assert unique <= set(range(emitted))
    if scenario.kind != "kill":
        assert emitted == TOTAL == stats_list[0]["ended"], (emitted, stats_list[0])
        assert stats_list[0]["sampled_out"] == 0
    if scenario.kind not in ("kill", "dns"):
        # The endpoint answers again at the end: the agent came through the
        # fault (the spool's own included) and drained everything.
        assert stats_list[0]["flush"] == "OK", stats_list[0]
    reasons = drop_reasons(stats_list)
    counted = sum(reasons.values())
    if scenario.kind == "kill" and spool == "off":
        # The killed process's counters died with it: the row shows the
        # window of spans that had ended but were still in memory.
        record(scenario, spool, emitted, unique, repeats, None, reasons)
        return
    lost = record(scenario, spool, emitted, unique, repeats, counted, reasons)

    assert lost == counted, (f"{lost} spans lost but {counted} counted as dropped: {reasons}; "
                             f"statistics {stats_list}")
    if spool == "on":
        unexpected = {k: v for k, v in reasons.items() if k not in scenario.allowed}
        assert not unexpected, f"with the spool on, spans were dropped: {unexpected}"
    if scenario.kind == "disk_full":
        assert sum(st.get("spool_full", 0) + st.get("spool_write_failed", 0)
                   for st in stats_list) > 0, f"the disk never filled: {stats_list}"
    if scenario.kind == "dns" and spool == "on":
        assert stats_list[0]["spooled"] > 0 and stats_list[1]["replayed"] > 0, stats_list
