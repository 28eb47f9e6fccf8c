"""Peak resident memory of a command, not floored by the benchmark process that started it.

Linux carries a process's resident size across `fork` and `exec` into `ru_maxrss`: a child forked from
a benchmark that has imported torch (or trained a model) starts its high-water mark at the parent's
resident size, and `os.wait4` reports at least that much whatever the child does. So the command is
started by a small launcher (a bare `python -S` of a few MiB): the launcher forks and execs the command,
waits for it, and writes the command's own `ru_maxrss` to a file. Nothing in the standard library or in
psutil reports a child's peak any other way without polling, which misses short peaks.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

LAUNCHER = """
import os, sys
out, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_with_peak(argv: list[str], env: dict[str, str], **popen) -> tuple[int, float, str | None]:
    """Run `argv`; (exit code, its peak RSS in MiB with its children, its stdout if `stdout=PIPE`)."""
    with tempfile.TemporaryDirectory(prefix="peak-") as tmp:
        report = Path(tmp) / "maxrss"
        proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(report), *argv], env=env, **popen)
        output = proc.stdout.read() if proc.stdout is not None else None
        code = proc.wait()
        peak_kib = int(report.read_text()) if report.exists() else 0
    return code, peak_kib / 1024, output
