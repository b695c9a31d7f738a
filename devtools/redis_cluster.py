"""A real Redis Cluster on loopback, for tests and benchmarks: N masters from `redis-server
--cluster-enabled yes`, joined by `redis-cli --cluster create`, no replicas.

Each node's cluster bus listens on its port + 10000, so ports are picked below 55536. The nodes
have a generated password (in each node's 0600 config file) and die with the process that
started them, as the embedded single Redis does.
"""

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from devtools.embedded_redis import die_with_parent
from devtools.ports import free_port

BUS_OFFSET = 10000  # Redis Cluster's bus port is the client port + 10000


def _cluster_port() -> int:
    while True:
        port = free_port()
        if port + BUS_OFFSET < 65536:
            return port


class EmbeddedRedisCluster:
    def __init__(self, folder: Path, masters: int = 3) -> None:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise SystemExit("redis-server and redis-cli are needed (Debian: apt-get install redis-server)")
        self._password = secrets.token_urlsafe(24)
        self.ports = [_cluster_port() for _ in range(masters)]
        self._processes: list[subprocess.Popen[bytes]] = []
        for port in self.ports:
            node = folder / f"node-{port}"
            node.mkdir(parents=True, exist_ok=True)
            config = node / "redis.conf"
            descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(
                    f"port {port}\nbind 127.0.0.1\ncluster-enabled yes\ncluster-config-file nodes.conf\n"
                    f'dir {node.resolve()}\nsave ""\nappendonly no\nrequirepass {self._password}\n'
                    f"masterauth {self._password}\nlogfile {(node / 'redis.log').resolve()}\n"
                )
            self._processes.append(
                subprocess.Popen(
                    [binary, str(config.resolve())], stdout=subprocess.DEVNULL, preexec_fn=die_with_parent
                )
            )
        for port in self.ports:
            self._wait(lambda p=port: redis.Redis(port=p, password=self._password).ping())
        subprocess.run(
            [cli, "-a", self._password, "--no-auth-warning", "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self._wait(self._all_ok)
        self.url = f"redis://:{self._password}@127.0.0.1:{self.ports[0]}/0"

    def _all_ok(self) -> bool:
        for port in self.ports:
            info = redis.Redis(port=port, password=self._password).cluster("info")
            if info.get("cluster_state") != "ok":
                return False
        return True

    @staticmethod
    def _wait(ready: "object", timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():  # type: ignore[operator]
                    return
            except redis.exceptions.RedisError:
                pass
            time.sleep(0.1)
        raise SystemExit("the Redis Cluster did not come up in time")

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0], password=self._password)

    def keys_per_master(self, pattern: str = "*") -> dict[int, int]:
        """How many keys matching `pattern` each master holds."""
        return {
            port: sum(
                1
                for _ in redis.Redis(port=port, password=self._password).scan_iter(match=pattern, count=1000)
            )
            for port in self.ports
        }

    def flush(self) -> None:
        for port in self.ports:
            redis.Redis(port=port, password=self._password).flushall()

    def stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            process.wait(timeout=15)
