"""Starts a real `redis-server` for `imsearch serve` when no Redis URL is configured.

It keeps its data in <data-dir>/redis with the append-only file on, so the LSH store survives
a restart of the suite just like the Qdrant shards do. It listens on loopback only, with a
generated password (in a 0600 config file, never on the command line where `ps` shows it),
and dies with the process that started it (Linux's parent-death signal), so a killed suite
leaves no orphan behind to fight the next one over the same files. With `tls` it serves TLS
only (rediss://), optionally demanding client certificates.
"""

import ctypes
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from devtools.ports import free_port

log = logging.getLogger(__name__)


_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class RedisTls:
    cert: Path  # the server's certificate and key
    key: Path
    ca: Path  # verifies client certificates, and the server's for our own readiness check
    client_cert: Path | None = None  # set both to demand client certificates (mutual TLS)
    client_key: Path | None = None

    def config(self, port: int) -> dict[str, str]:
        return {
            "port": "0",  # no plain-text port at all
            "tls-port": str(port),
            "tls-cert-file": str(self.cert.resolve()),
            "tls-key-file": str(self.key.resolve()),
            "tls-ca-cert-file": str(self.ca.resolve()),
            "tls-auth-clients": "yes" if self.client_cert else "no",
        }

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"ssl_ca_certs": str(self.ca), "ssl_cert_reqs": "required"}
        if self.client_cert and self.client_key:
            options |= {"ssl_certfile": str(self.client_cert), "ssl_keyfile": str(self.client_key)}
        return options


def die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the parent goes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _write_config(port: int, password: str, data_dir: Path, tls: RedisTls | None) -> Path:
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
    if tls is not None:
        options |= tls.config(port)
    path = data_dir / "redis.conf"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as config:
        config.writelines(f"{key} {value}\n" for key, value in options.items())
    return path


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int | None = None, tls: RedisTls | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit(
                "redis-server not found: install it (Debian: apt-get install redis-server) "
                "or point the index at a Redis with IMSEARCH_INDEX_REDIS_URL"
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        password = secrets.token_urlsafe(24)
        self.tls = tls
        scheme = "redis" if tls is None else "rediss"
        self.url = f"{scheme}://:{password}@127.0.0.1:{self.port}/0"
        config = _write_config(self.port, password, data_dir, tls)
        self._process = subprocess.Popen(
            [binary, str(config.resolve())],
            stdout=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        self._wait_ready()
        log.info("embedded redis on 127.0.0.1:%d (data in %s)", self.port, data_dir)

    @property
    def pid(self) -> int:
        return self._process.pid

    def _wait_ready(self, timeout: float = 15.0) -> None:
        client = redis.Redis.from_url(self.url, **(self.tls.client_options() if self.tls else {}))
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
