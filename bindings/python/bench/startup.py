"""Process start-up cost of the preload: `/bin/true` and `python -c pass`,
without LD_PRELOAD, with libotelagent_preload.so (what the README tells users
to preload) and with the full libotelagent.so. Configurations interleaved
run by run (os.posix_spawn + waitpid, wall clock), medians and p90 in ms, and
the median's difference from the run without the preload.

    .venv/bin/python bindings/python/bench/startup.py [--runs 300]"""

import argparse
import os
import py_compile
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(os.path.dirname(HERE), "otelagent", "_lib")
PRELOAD = os.path.join(LIB, "libotelagent_preload.so")
FULL = os.path.join(LIB, "libotelagent.so.2")
BOOTSTRAP = os.path.join(os.path.dirname(HERE), "otelagent", "_bootstrap")


def spawn_ms(argv, env):
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env)
    os.waitpid(pid, 0)
    return (time.perf_counter() - t0) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    # As an installed package has them (pip compiles at install time), even
    # where PYTHONDONTWRITEBYTECODE is set.
    for name in ("sitecustomize.py", "_otelagent_activation.py"):
        py_compile.compile(os.path.join(BOOTSTRAP, name), doraise=True)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("OTEL", "LD_PRELOAD", "PYTHONPATH"))}
    configs = [("none", base), ("libotelagent_preload.so", dict(base, LD_PRELOAD=PRELOAD)),
               ("libotelagent.so (full)", dict(base, LD_PRELOAD=FULL))]
    commands = [("/bin/true", ["/bin/true"]), ("python -c pass", [args.python, "-c", "pass"])]
    print(f"{args.runs} runs per row, interleaved; python = {args.python}")
    print()
    print("| command | preload | median ms | p90 ms | added (median) |")
    print("|---|---|---:|---:|---:|")
    for label, argv in commands:
        times = {name: [] for name, _ in configs}
        for _name, env in configs:  # warm the page cache
            spawn_ms(argv, env)
        for _ in range(args.runs):
            for cfg_name, env in configs:
                times[cfg_name].append(spawn_ms(argv, env))
        base_median = statistics.median(times["none"])
        for cfg_name, _ in configs:
            t = sorted(times[cfg_name])
            med = statistics.median(t)
            p90 = t[int(len(t) * 0.9)]
            print(f"| `{label}` | {cfg_name} | {med:.3f} | {p90:.3f} | "
                  f"{med - base_median:+.3f} |")


if __name__ == "__main__":
    main()
