"""`python -m bench.peak FILE MODULE ARGS...`: run MODULE as `python -m` would, then
write this process's own peak RSS (MB) to FILE, plus that of the largest of its worker
processes, if it had any (ingest reads feeds in one on a machine of two cores or more).

Why not the parent's os.wait4: on Linux a child's ru_maxrss starts from its
parent's RSS at fork (the high-water mark survives exec), and the benchmark's
parent holds the loopback server with every feed. VmHWM in /proc/self/status is
the high-water mark of this process's memory alone.
"""

from __future__ import annotations

import resource
import runpy
import sys
from pathlib import Path


def peak_mb() -> float:
    try:
        with Path("/proc/self/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: best effort


def workers_mb() -> float:
    """The peak RSS of the largest child waited for: an upper bound of a worker's own, which
    on Linux starts from this process's RSS when it was started."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    out, module, *rest = sys.argv[1:]
    sys.argv = [module, *rest]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        Path(out).write_text(f"{peak_mb() + workers_mb():.1f}\n", encoding="ascii")


if __name__ == "__main__":
    main()
