"""Starts the `tritonserver` binary bundled in nvidia-pytriton, on CPU, for tests and local use.

    python -m devtools.triton.server --model-repository build/triton-cpu --grpc-port 8001

The binary and its Python-backend stub live in a separate environment (`.venv-triton`, made by
`make setup`) because the stub needs numpy<2. Three things make it run outside pytriton: the
stub copied next to the Python backend, the Python LIBDIR and pytriton's bundled libraries on
LD_LIBRARY_PATH, and that environment's `bin/` first on PATH (the stub takes its `sys.path`
from the `python` it finds there).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import tritonclient.grpc as triton_grpc

from devtools.ports import free_port

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ENV = REPO / ".venv-triton"


class TritonServer:
    def __init__(
        self,
        model_repository: Path,
        env_dir: Path = DEFAULT_ENV,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        work_dir: Path | None = None,
    ) -> None:
        site = next((env_dir / "lib").glob("python3*/site-packages"), None)
        if site is None or not (site / "pytriton").is_dir():
            raise FileNotFoundError(f"no nvidia-pytriton in {env_dir}: run `make setup`")
        bundle = site / "pytriton" / "tritonserver"
        backends = (work_dir or REPO / "build") / "triton-backends"
        python_backend = backends / "python"
        python_backend.mkdir(parents=True, exist_ok=True)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        for source in (
            bundle / "backends" / "python" / "libtriton_python.so",
            bundle / "backends" / "python" / "triton_python_backend_utils.py",
            bundle / "python_backend_stubs" / version / "triton_python_backend_stub",
        ):
            shutil.copy2(source, python_backend / source.name)
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.url = f"127.0.0.1:{self.grpc_port}"
        env = dict(os.environ)
        env["PATH"] = f"{env_dir / 'bin'}:{env.get('PATH', '')}"
        libs = [sysconfig.get_config_var("LIBDIR"), str(site / "nvidia_pytriton.libs")]
        env["LD_LIBRARY_PATH"] = ":".join([*libs, env.get("LD_LIBRARY_PATH", "")])
        self.log_path = backends.parent / f"tritonserver-{self.grpc_port}.log"
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                str(bundle / "bin" / "tritonserver"),
                f"--model-repository={model_repository.resolve()}",
                f"--backend-directory={backends.resolve()}",
                "--grpc-address=127.0.0.1",
                f"--grpc-port={self.grpc_port}",
                "--allow-http=false",
                "--allow-metrics=true",
                "--allow-gpu-metrics=false",
                f"--metrics-port={self.metrics_port}",
                "--metrics-interval-ms=200",  # counters refresh often enough to read after a burst
                "--log-verbose=0",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 120.0) -> None:
        client = triton_grpc.InferenceServerClient(self.url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({self._process.returncode}); see {self.log_path}")
            try:
                if client.is_server_ready():
                    return
            except triton_grpc.InferenceServerException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"tritonserver not ready after {timeout}s; see {self.log_path}")

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model-repository", type=Path, default=REPO / "build" / "triton-cpu")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    args = parser.parse_args()
    server = TritonServer(args.model_repository, grpc_port=args.grpc_port, metrics_port=args.metrics_port)
    print(f"tritonserver ready: gRPC {server.url}, metrics {server.metrics_url}", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()


if __name__ == "__main__":
    main()
