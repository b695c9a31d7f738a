"""Locks a role's dependencies from the wheelhouse, with markers evaluated for the image's Python.

pip evaluates environment markers against the interpreter it runs on; the host's Python 3.11 is
not the image's (Debian bookworm's 3.11.2), and some requirements depend on the difference:
redis needs async-timeout when `python_full_version < "3.11.3"`. So build.sh asks the base image
for its marker environment (`--print-env`, run there with the standard library only), and this
script walks the requirements of the wheels in the wheelhouse under that environment:

    lock.py --env ENV.json --wheelhouse DIR --app IMSEARCH.whl --role ROLE   # name==version lines
    lock.py --env ENV.json --wheelhouse DIR --app IMSEARCH.whl --missing     # requirements to fetch

Every name must have exactly one wheel in the wheelhouse (one resolution made it) whose version
satisfies every requirement on it; anything else is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import Version
except ImportError:
    try:  # the host's bare python3: pip's own copy
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
        from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename  # type: ignore[no-redef]
        from pip._vendor.packaging.version import Version  # type: ignore[no-redef]
    except ImportError:  # the image's python3 (--print-env needs only the standard library)
        pass

ROLES = ("gateway", "encoder", "index")


def print_env() -> None:
    """The marker environment of this interpreter (what packaging's default_environment gives)."""

    def version(info: object) -> str:
        v = f"{info.major}.{info.minor}.{info.micro}"  # type: ignore[attr-defined]
        if info.releaselevel != "final":  # type: ignore[attr-defined]
            v += info.releaselevel[0] + str(info.serial)  # type: ignore[attr-defined]
        return v

    env = {
        "implementation_name": sys.implementation.name,
        "implementation_version": version(sys.implementation.version),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }
    print(json.dumps(env, indent=1))


def metadata(wheel: Path) -> tuple[str, Version, list[Requirement]]:
    name, ver, _, _ = parse_wheel_filename(wheel.name)
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        msg = Parser().parsestr(zf.read(meta).decode())
    return canonicalize_name(name), ver, [Requirement(r) for r in msg.get_all("Requires-Dist") or []]


def walk(
    env: dict[str, str], wheels: dict[str, tuple[Version, list[Requirement]]], root: str, extras: set[str]
) -> tuple[dict[str, Version], list[str], list[str]]:
    """Closure of `root[extras]`: (chosen versions, missing requirements, conflicts)."""
    chosen: dict[str, Version] = {}
    missing: list[str] = []
    conflicts: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        version, requires = wheels[name]
        chosen[name] = version
        for req in requires:
            applies = any(
                req.marker is None or req.marker.evaluate({**env, "extra": extra})
                for extra in ({""} | set(wanted))
            )
            if not applies:
                continue
            dep = canonicalize_name(req.name)
            if dep not in wheels:
                missing.append(str(Requirement(f"{req.name}{req.specifier}")))
                continue
            if not req.specifier.contains(wheels[dep][0], prereleases=True):
                conflicts.append(f"{name} needs {req}, the wheelhouse has {dep} {wheels[dep][0]}")
            todo.append((dep, frozenset(canonicalize_name(e) for e in req.extras)))
    return chosen, sorted(set(missing)), conflicts


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--print-env", action="store_true")
    ap.add_argument("--env", type=Path)
    ap.add_argument("--wheelhouse", type=Path)
    ap.add_argument("--app", type=Path)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--role", choices=ROLES)
    group.add_argument("--missing", action="store_true", help="requirements not in the wheelhouse, all roles")
    args = ap.parse_args()
    if args.print_env:
        print_env()
        return 0
    env = json.loads(args.env.read_text())
    wheels: dict[str, tuple[Version, list[Requirement]]] = {}
    for wheel in sorted([*args.wheelhouse.glob("*.whl"), args.app]):
        name, version, requires = metadata(wheel)
        if name in wheels and wheels[name][0] != version:
            print(f"lock.py: two versions of {name} in the wheelhouse", file=sys.stderr)
            return 1
        wheels[name] = (version, requires)
    root = metadata(args.app)[0]
    if args.missing:
        needed: set[str] = set()
        for role in ROLES:
            needed.update(walk(env, wheels, root, {role})[1])
        print("\n".join(sorted(needed)))
        return 0
    chosen, missing, conflicts = walk(env, wheels, root, {args.role})
    if missing or conflicts:
        print(f"lock.py: {args.role}: missing {missing}, conflicts {conflicts}", file=sys.stderr)
        return 1
    for name in sorted(chosen):
        if name != root:
            print(f"{name}=={chosen[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
