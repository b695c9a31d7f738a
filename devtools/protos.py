"""Generates the gRPC Python code (with .pyi stubs) in imsearch/v1 from protos/.

`--check` regenerates into a temporary folder and fails if the checked-in files differ,
so CI catches a proto edit whose generated code was not committed.
"""

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
PACKAGE_DIR = Path("imsearch") / "v1"
# The mypy-protobuf plugins are installed beside this interpreter (the venv's bin/).
BIN = Path(sys.executable).parent


def generate(out_dir: Path) -> None:
    well_known = str(resources.files("grpc_tools") / "_proto")
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / PACKAGE_DIR).glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_dir / PACKAGE_DIR / "__init__.py").write_text('"""Generated from protos/imsearch/v1."""\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    check = parser.parse_args().check
    if not check:
        generate(ROOT)
        return
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh, committed = Path(tmp) / PACKAGE_DIR, ROOT / PACKAGE_DIR
        names = sorted(p.name for p in fresh.iterdir())
        have = sorted(p.name for p in committed.glob("*") if p.is_file() and p.suffix in {".py", ".pyi"})
        _, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
        if mismatch or errors or names != have:
            sys.exit(
                f"generated code is stale ({mismatch + errors or 'file set differs'}): run `make protos`"
            )
    print("generated code is up to date")


if __name__ == "__main__":
    main()
