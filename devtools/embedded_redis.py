"""Starts a real `redis-server` for `imsearch serve` when no Redis URL is configured.

It keeps its data in <data-dir>/redis with the append-only file on, so the LSH store survives
a restart of the suite just like the Qdrant shards do. It listens on loopback only, with a
generated password (in a 0600 config file, never on the command line where `ps` shows it),
and dies with the process that started it (Linux's parent-death signal), so a killed suite
leaves no orphan behind to fight the next one over the same files.
"""

import ctypes
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from devtools.ports import free_port

log = logging.getLogger(__name__)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the parent goes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _write_config(port: int, password: str, data_dir: Path) -> Path:
    options = {
        "port": str(port),
        "bind": "127.0.0.1",
        "protected-mode": "yes",
        "requirepass": password,
        "dir": str(data_dir.resolve()),
        "appendonly": "yes",
        "appendfsync": "everysec",
        "save": '""',
        "daemonize": "no",
        "logfile": str((data_dir / "redis.log").resolve()),
    }
    path = data_dir / "redis.conf"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as config:
        config.writelines(f"{key} {value}\n" for key, value in options.items())
    return path


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
        password = secrets.token_urlsafe(24)
        self.url = f"redis://:{password}@127.0.0.1:{self.port}/0"
        config = _write_config(self.port, password, data_dir)
        self._process = subprocess.Popen(
            [binary, str(config.resolve())],
            stdout=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self._wait_ready()
        log.info("embedded redis on 127.0.0.1:%d (data in %s)", self.port, data_dir)

    @property
    def pid(self) -> int:
        return self._process.pid

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
