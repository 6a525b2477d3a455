"""Peak-memory helper shared by the benchmarks.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is the wrong figure for a child process: Linux keeps
the high-water mark across ``fork`` + ``execve``, so a subprocess started by a process that once
held 8.5 GB reports at least 8.5 GB. ``VmHWM`` in ``/proc/self/status`` belongs to the process's
own address space, which ``execve`` replaces, so it starts from zero in every new program.
"""

from __future__ import annotations


def peak_rss_mib() -> float:
    """This process's peak resident memory since its last ``execve`` (``VmHWM``), in MiB (Linux only).

    Raises:
        RuntimeError: ``/proc/self/status`` has no ``VmHWM`` line (not Linux).
    """
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError("peak_rss_mib: no VmHWM in /proc/self/status (Linux only)")
