"""The embedded Redis: password-protected, loopback only, and gone when its parent is killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from cli.suite import lock_data_dir
from devtools.embedded_redis import EmbeddedRedis
from tests.helpers import REPO


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state in /proc says it is dead.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_it_needs_its_password_and_keeps_it_off_the_command_line(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    try:
        assert redis.Redis.from_url(server.url).ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=server.port, protocol=2).ping()
        password = server.url.split(":")[2].split("@")[0]
        assert password not in Path(f"/proc/{server.pid}/cmdline").read_text()
        assert (tmp_path / "redis.conf").stat().st_mode & 0o077 == 0
    finally:
        server.stop()


def test_it_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); from pathlib import Path\n"
        "from devtools.embedded_redis import EmbeddedRedis\n"
        f"server = EmbeddedRedis(Path({str(tmp_path)!r}))\n"
        "print(server.pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    assert alive(pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    give_up = time.monotonic() + 10
    while alive(pid) and time.monotonic() < give_up:
        time.sleep(0.05)
    assert not alive(pid)


def test_one_suite_per_data_directory(tmp_path: Path) -> None:
    first = lock_data_dir(tmp_path)
    try:
        with pytest.raises(SystemExit, match=f"in use by another imsearch suite \\(pid {os.getpid()}\\)"):
            lock_data_dir(tmp_path)
    finally:
        first.close()
    lock_data_dir(tmp_path).close()  # free again once the holder has gone
