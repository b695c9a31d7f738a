"""CPU seconds another process has used, for benchmarks that count where the cores went."""

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system time of every thread of `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
