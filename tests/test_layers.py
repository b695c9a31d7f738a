"""The layers hold: the import contracts catch a wrong import, and the runtime services start and
answer with the lab's stack (and, for the gateway and index, every inference runtime) missing."""

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.embedded_redis import EmbeddedRedis
from services.encoder.app import EncoderApp, start_encoder
from services.encoder.settings import EncoderSettings
from tests.helpers import MODEL_REPOSITORY, REPO, jpeg

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("imsearch", "services", "devtools", "lab", "bench", "cli", "tests")

# Runs in a fresh interpreter in which importing any of argv[1]'s packages fails, as it would
# where they are not installed; then runs argv[2] (a statement) with argv[3:] as `args`.
BLOCKING_PRELUDE = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, Missing())
args = sys.argv[3:]
exec(sys.argv[2])
assert not BLOCKED & {name.split(".")[0] for name in sys.modules}, "a blocked module got in"
"""

LAB_STACK = "torch,transformers,onnx,sklearn,matplotlib,pytorch_metric_learning,sentence_transformers"
RUNTIMES = "onnxruntime,cv2,PIL,tritonclient"

IMPORT_EVERY_MODULE = """
import importlib, pkgutil
for package in args:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        importlib.import_module(info.name)
print("imported", ", ".join(args))
"""

# Starts the index and the gateway (against the encoder at args[0]), adds two images and
# searches with the first: it must come back on top.
INDEX_AND_GATEWAY_ANSWER = """
from pathlib import Path
from imsearch.client import SearchClient
from services.gateway.app import start_gateway
from services.gateway.settings import GatewaySettings
from services.index.app import start_index
from services.index.settings import IndexSettings
encoder, redis_url, data_dir, *images = args
index = start_index(IndexSettings(
    listen="127.0.0.1:0", metrics_port=-1, redis_url=redis_url, data_dir=Path(data_dir)))
gateway = start_gateway(GatewaySettings(
    listen="127.0.0.1:0", metrics_port=-1, encoder_address=encoder, index_address=index.address))
client = SearchClient(gateway.address)
client.add_images((Path(p).name, Path(p).read_bytes(), {}) for p in images)
print("top:", client.search(Path(images[0]).read_bytes(), top_k=2, index="exact").results[0].id)
client.close(); gateway.stop(); index.stop()
"""


def run_blocked(blocked: str, statement: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKING_PRELUDE, blocked, statement, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def encoder() -> Iterator[EncoderApp]:
    app = start_encoder(
        EncoderSettings(listen="127.0.0.1:0", metrics_port=-1, model_repository=MODEL_REPOSITORY)
    )
    yield app
    app.stop()


def test_every_service_module_imports_without_the_lab_stack() -> None:
    done = run_blocked(LAB_STACK, IMPORT_EVERY_MODULE, "services", "imsearch")
    assert done.returncode == 0, done.stderr
    lean = run_blocked(f"{LAB_STACK},{RUNTIMES}", IMPORT_EVERY_MODULE, "services.gateway", "services.index")
    assert lean.returncode == 0, lean.stderr


def test_the_blocker_does_block() -> None:
    """The check above could not pass by accident: the encoder does need onnxruntime."""
    done = run_blocked(RUNTIMES, IMPORT_EVERY_MODULE, "services.encoder")
    assert done.returncode != 0 and "blocked by the test" in done.stderr


def test_index_and_gateway_serve_without_inference_runtimes(
    encoder: EncoderApp, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    images = []
    for seed in (1, 2):
        path = tmp_path / f"image{seed}.jpg"
        path.write_bytes(jpeg(seed))
        images.append(str(path))
    done = run_blocked(
        f"{LAB_STACK},{RUNTIMES}",
        INDEX_AND_GATEWAY_ANSWER,
        encoder.address,
        redis_server.url,
        str(tmp_path / "data"),
        *images,
    )
    assert done.returncode == 0, done.stderr
    assert "top: image1.jpg" in done.stdout


def copy_of_the_code(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """lint-imports on the tree at `root` (first on the path, before the installed checkout)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *(f"--contract={c}" for c in contracts)],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(LINT_IMPORTS.parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("services/gateway/pipeline.py", "import lab.zoo.recipes", "layers"),  # a service uses the lab
        ("services/index/engine.py", "import services.encoder.engine", "layers"),  # a service, another
        ("imsearch/core/server.py", "import imsearch.client", "layers"),  # the core, the SDK above it
        ("services/encoder/engine.py", "import torch", "runtime-without-lab-stack"),
        ("services/index/engine.py", "import onnxruntime", "lean-gateway-and-index"),
        ("services/gateway/pipeline.py", "import redis", "lean-gateway"),
    ],
)
def test_import_contracts_fail_on_a_wrong_import(
    tmp_path: Path, module: str, bad_import: str, contract: str
) -> None:
    root = copy_of_the_code(tmp_path)
    with (root / module).open("a") as f:
        f.write(f"\n{bad_import}  # noqa\n")
    result = lint_imports(root, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout, result.stdout


def test_import_contracts_hold_on_the_copy(tmp_path: Path) -> None:
    """The copy itself passes, so the failures above come from the injected imports alone."""
    result = lint_imports(copy_of_the_code(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
