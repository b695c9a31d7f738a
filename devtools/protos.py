"""Generates the gRPC Python code (with .pyi stubs) in imsearch/v1 from protos/, and the
HTTP API's OpenAPI description (services/gateway/http/openapi.json, proto comments included).

`--check` regenerates into a temporary folder and fails if the checked-in files differ,
so CI catches a proto edit whose generated code was not committed.
"""

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_tools import protoc

from services.gateway.http.openapi import OPENAPI_FILE, build_openapi, render

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
PACKAGE_DIR = Path("imsearch") / "v1"
# The mypy-protobuf plugins are installed beside this interpreter (the venv's bin/).
BIN = Path(sys.executable).parent


def include_paths() -> list[str]:
    """protoc's -I flags: our protos, the well-known types (grpc_tools) and the googleapis
    annotations (googleapis-common-protos keeps google/api/*.proto)."""
    annotations = Path(str(resources.files("google.api") / "annotations.proto"))
    well_known = resources.files("grpc_tools") / "_proto"
    return [f"-I{PROTO_DIR}", f"-I{well_known}", f"-I{annotations.parent.parent.parent}"]


def generate(out_dir: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / PACKAGE_DIR).glob("*.proto"))
    args = [
        "protoc",
        *include_paths(),
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


Names = dict[tuple[int, ...], str]  # source-info path -> full proto name


def _message_names(
    message: descriptor_pb2.DescriptorProto, prefix: str, path: tuple[int, ...], names: Names
) -> None:
    """The paths of a message, its fields (2), nested messages (3) and enums (4)."""
    name = f"{prefix}.{message.name}"
    names[path] = name
    for i, field in enumerate(message.field):
        names[(*path, 2, i)] = f"{name}.{field.name}"
    for i, nested in enumerate(message.nested_type):
        _message_names(nested, name, (*path, 3, i), names)
    for i, enum in enumerate(message.enum_type):
        _enum_names(enum, name, (*path, 4, i), names)


def _enum_names(
    enum: descriptor_pb2.EnumDescriptorProto, prefix: str, path: tuple[int, ...], names: Names
) -> None:
    name = f"{prefix}.{enum.name}"
    names[path] = name
    for i, value in enumerate(enum.value):
        names[(*path, 2, i)] = f"{name}.{value.name}"


def _comments(files: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """Leading (else trailing) comment of each message, field, enum, value, service and method,
    by full name, from protoc's source info."""
    comments: dict[str, str] = {}
    for file in files.file:
        names: Names = {}
        for i, message in enumerate(file.message_type):
            _message_names(message, file.package, (4, i), names)
        for i, enum in enumerate(file.enum_type):
            _enum_names(enum, file.package, (5, i), names)
        for i, service in enumerate(file.service):
            names[(6, i)] = f"{file.package}.{service.name}"
            for j, method in enumerate(service.method):
                names[(6, i, 2, j)] = f"{file.package}.{service.name}.{method.name}"
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            text = (location.leading_comments or location.trailing_comments).strip()
            if name and text:
                comments[name] = " ".join(line.strip() for line in text.splitlines())
    return comments


def openapi_text() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        descriptor_set = Path(tmp) / "search.pb"
        args = [
            "protoc",
            *include_paths(),
            "--include_source_info",
            "--include_imports",
            f"--descriptor_set_out={descriptor_set}",
            str(PACKAGE_DIR / "search.proto"),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    # A pool of its own, from the protos as they are now (not the imported generated code).
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)  # type: ignore[no-untyped-call]
    service = pool.FindServiceByName("imsearch.v1.SearchService")  # type: ignore[no-untyped-call]
    return render(build_openapi(service, _comments(files)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    check = parser.parse_args().check
    if not check:
        generate(ROOT)
        OPENAPI_FILE.write_text(openapi_text())
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
    if OPENAPI_FILE.read_text() != openapi_text():
        sys.exit(f"{OPENAPI_FILE.relative_to(ROOT)} is stale: run `make protos`")
    print("generated code and the OpenAPI description are up to date")


if __name__ == "__main__":
    main()
