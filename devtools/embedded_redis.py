"""Starts a real `redis-server` for `imsearch serve` when no Redis URL is configured.

It keeps its data in <data-dir>/redis with the append-only file on, so the LSH store survives
a restart of the suite just like the Qdrant shards do.
"""

import logging
import shutil
import subprocess
import time
from pathlib import Path

import redis

from devtools.ports import free_port

log = logging.getLogger(__name__)


def _options(port: int, data_dir: Path) -> list[str]:
    options = {
        "port": str(port),
        "bind": "127.0.0.1",
        "dir": str(data_dir.resolve()),
        "appendonly": "yes",
        "appendfsync": "everysec",
        "save": "",
        "daemonize": "no",
        "logfile": str((data_dir / "redis.log").resolve()),
    }
    return [part for key, value in options.items() for part in (f"--{key}", value)]


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit(
                "redis-server not found: install it (Debian: apt-get install redis-server) "
                "or point the index at a Redis with IMSEARCH_INDEX_REDIS_URL"
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process = subprocess.Popen(
            [binary, *_options(self.port, data_dir)],
            stdout=subprocess.DEVNULL,
        )
        self._wait_ready()
        log.info("embedded redis on %s (data in %s)", self.url, data_dir)

    def _wait_ready(self, timeout: float = 15.0) -> None:
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SystemExit(f"redis-server exited with code {self._process.returncode}")
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise SystemExit("redis-server did not start in time")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()  # redis flushes the append-only file on SIGTERM
            self._process.wait(timeout=15)
