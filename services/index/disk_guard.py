"""Refuses writes before the disk under the data directory fills up.

A full disk under the embedded Qdrant shard once killed the whole suite with SIGBUS (its files
are memory-mapped) and no log line. Checking the free space before each write turns that into
a clean RESOURCE_EXHAUSTED while searches go on being served.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

from imsearch.core.errors import ResourceExhausted

MB = 1024 * 1024


@dataclass(frozen=True)
class DiskGuard:
    path: Path
    min_free_bytes: int

    def free_bytes(self) -> int:
        self.path.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.path).free

    def check(self, what: str = "write") -> None:
        free = self.free_bytes()
        if free < self.min_free_bytes:
            raise ResourceExhausted(
                f"{what} refused: {free // MB} MB free under {self.path}, below the "
                f"{self.min_free_bytes // MB} MB reserve (min_free_disk_mb); searches still work"
            )
