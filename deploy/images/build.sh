#!/usr/bin/env bash
# Builds the imsearch OCI images with buildah, offline apart from the Debian mirror and PyPI:
#
#   1. base      debootstrap of Debian bookworm (minbase + python3 + ca-certificates, security
#                updates applied), imported as localhost/imsearch-base:bookworm-YYYYMMDD;
#                the encoder's shared libraries and a static busybox are downloaded as .debs
#                from the same package lists.
#   2. wheels    build/wheels/: every dependency of the encoder, index and gateway extras as
#                cp311 manylinux wheels (pip wheel on the host, pinned by pyproject.toml and,
#                for the transitive ones, by the tested .venv's versions), one locked
#                requirements file per role (lock.py, with the markers of the image's Python),
#                and the imsearch wheel itself (pip wheel --no-deps, rebuilt every time).
#   3. images    deploy/images/Containerfile, one target per role:
#                localhost/imsearch-{gateway,encoder,index,model-repository}:VERSION
#
# Idempotent: the base image (or its rootfs tarball) and the wheelhouse are reused when present
# and still matching; an image whose inputs are unchanged is not rebuilt, and the others use
# buildah's layer cache (KEEP_BUILD_CACHE=1 keeps the cache of earlier builds too). Run as root.
#
#   deploy/images/build.sh            # all three steps
#   deploy/images/build.sh base       # or: wheels | images (each reuses what earlier steps made)
#   deploy/images/build.sh clean      # removes the images, their layer cache and build/{images,wheels}
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), PYTHON (the host's
# Python 3.11 with pip; default .venv/bin/python, else python3), IMSEARCH_IMAGE_ROLES (default
# "gateway encoder index model-repository"), REBUILD_BASE=1 / REBUILD_WHEELS=1 to start over.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

HERE=deploy/images
WORK=build/images           # rootfs, .debs, build context (build/ is git-ignored)
WHEELS=build/wheels         # the wheelhouse
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PIP_VERSION=26.3            # the pip that installs the wheels inside the build stage (not shipped)
# Shared libraries opencv-python's cv2 links against (libGL, glib, X11 SM/ICE/Xext): encoder only.
ENCODER_DEBS="libgl1 libglib2.0-0 libsm6 libice6 libxext6"
ROLES=(${IMSEARCH_IMAGE_ROLES:-gateway encoder index model-repository})
BUILDAH=(buildah --storage-driver vfs)

if [[ -z ${PYTHON:-} ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (debootstrap, chroot and buildah's vfs storage need it)"
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || die "$tool missing: apt-get install -y buildah debootstrap"
done
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || die "$PYTHON is not Python 3.11 (the images run Debian bookworm's python3 3.11, ABI cp311)"

image_exists() { "${BUILDAH[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------------------------------------
# 1. The base image.
# ---------------------------------------------------------------------------------------------
ROOTFS=$WORK/rootfs
ROOTFS_TAR=$WORK/rootfs-$SUITE.tar
BASE_TAG_FILE=$WORK/base-image   # the tag of the imported base, e.g. localhost/imsearch-base:bookworm-20251204

make_rootfs() {
  local date deb; date=$(date -u +%Y%m%d)
  log "debootstrap $SUITE (minbase + python3) into $ROOTFS"
  rm -rf "$ROOTFS" "$WORK/debs"
  mkdir -p "$WORK/logs"
  local blog=$WORK/logs/base.log
  debootstrap --variant=minbase --include=python3,ca-certificates --components=main \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$blog" 2>&1 || { tail -n 30 "$blog" >&2; die "debootstrap failed (log $blog)"; }

  # Security and point-release updates on top of the release, from the same mirror.
  cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
  # No documentation, man pages or translations in any image (copyright files stay).
  cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/01-imsearch-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
EOF
  cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
  mount -t proc proc "$ROOTFS/proc"
  trap 'umount "$ROOTFS/proc" 2>/dev/null || true' EXIT
  chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive LC_ALL=C sh -eu -c '
    apt-get update -qq
    apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade
    apt-get clean
    apt-get -y -qq --no-install-recommends --download-only install '"$ENCODER_DEBS"' busybox-static
  ' >>"$blog" 2>&1 || { tail -n 30 "$blog" >&2; die "apt-get in the new rootfs failed (log $blog)"; }
  mkdir -p "$WORK/debs/encoder" "$WORK/debs/busybox"
  mv "$ROOTFS"/var/cache/apt/archives/busybox-static_*.deb "$WORK/debs/busybox/"
  mv "$ROOTFS"/var/cache/apt/archives/*.deb "$WORK/debs/encoder/"
  chroot "$ROOTFS" dpkg-query -W -f '${Package}=${Version}\n' >"$WORK/base-packages.txt"
  for deb in "$WORK"/debs/encoder/*.deb; do dpkg-deb -f "$deb" Package Version | paste -sd= | sed 's/Package: //; s/=Version: /=/'; done \
    | sort >"$WORK/debs/encoder-packages.txt"
  echo "$ENCODER_DEBS" >"$WORK/debs/requested"
  umount "$ROOTFS/proc"
  trap - EXIT

  # Trim: what dpkg installed before the exclusions above, caches, apt lists, logs, host files.
  find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$ROOTFS"/usr/share/{man,info,locale,lintian}/* "$ROOTFS"/var/cache/apt/* \
    "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/* \
    "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache
  : >"$ROOTFS/etc/resolv.conf"
  : >"$ROOTFS/etc/machine-id" 2>/dev/null || true
  echo imsearch >"$ROOTFS/etc/hostname"
  echo "$date" >"$ROOTFS/etc/imsearch-base-date"

  log "packing $ROOTFS_TAR"
  tar --numeric-owner --xattrs -C "$ROOTFS" -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$ROOTFS"
}

import_base() {
  local date tag ctr
  date=$(tar -xOf "$ROOTFS_TAR" ./etc/imsearch-base-date)
  tag=localhost/imsearch-base:$SUITE-$date
  log "importing $ROOTFS_TAR as $tag"
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$ctr" "$ROOTFS_TAR" /
  "${BUILDAH[@]}" config --cmd '["/bin/bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --label "org.opencontainers.image.title=imsearch-base" \
    --label "org.opencontainers.image.description=debootstrap --variant=minbase $SUITE + python3, ca-certificates, $date" \
    --label "org.opencontainers.image.created=$date" "$ctr"
  "${BUILDAH[@]}" commit --rm --quiet "$ctr" "$tag" >/dev/null
  echo "$tag" >"$BASE_TAG_FILE"
}

step_base() {
  if [[ ${REBUILD_BASE:-0} == 1 ]]; then
    rm -f "$ROOTFS_TAR" "$BASE_TAG_FILE"
  fi
  # The .debs come from the same package lists as the base: a new list means a new base.
  if [[ $(cat "$WORK/debs/requested" 2>/dev/null) != "$ENCODER_DEBS" ]]; then
    rm -f "$ROOTFS_TAR" "$BASE_TAG_FILE"
  fi
  if [[ -s $BASE_TAG_FILE ]] && image_exists "$(cat "$BASE_TAG_FILE")"; then
    log "base: reusing $(cat "$BASE_TAG_FILE")"
    return
  fi
  if [[ ! -s $ROOTFS_TAR ]]; then
    make_rootfs
  fi
  import_base
}

# ---------------------------------------------------------------------------------------------
# 2. The wheelhouse.
# ---------------------------------------------------------------------------------------------
SRC=$WORK/src   # a clean copy of the working tree (tracked and untracked, not ignored files)

copy_source() {
  rm -rf "$SRC"
  mkdir -p "$SRC"
  local f
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do if [[ -f $f ]]; then printf '%s\0' "$f"; fi; done \
    | tar --null --no-recursion -T - -cf - | tar -C "$SRC" -xf -
}

wheel_stamp() {
  # Changes when a pin that matters changes: the core's and the three roles' requirements, the
  # constraints on packages in the wheelhouse, the image's Python, lock.py, pip. (Not the dev
  # extras: they are not in any image.)
  "$PYTHON" - "$WHEELS" "$HERE/lock.py" "$PIP_VERSION" <<'EOF'
import hashlib, json, pathlib, re, sys, tomllib

wheels, lock, pip = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
project = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
extras = project.get("optional-dependencies", {})
pins = [project.get("requires-python"), project.get("dependencies")] + [extras.get(r) for r in ("encoder", "index", "gateway")]
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
have = {norm(p.name.split("-")[0]) for p in (wheels / "deps").glob("*.whl")}
constraints = sorted(
    line for line in (wheels / "constraints.txt").read_text().splitlines()
    if norm(re.split(r"[=<>!~ ;\[]", line, maxsplit=1)[0]) in have
)
env = (wheels / "image-env.json").read_text()
print(hashlib.sha256(json.dumps([pins, constraints, env, lock.read_text(), pip]).encode()).hexdigest())
EOF
}

image_env() {
  # platform_release/platform_version name the kernel: dropped, they differ run to run.
  local ctr rc=0
  ctr=$("${BUILDAH[@]}" from --pull=false --quiet --name "imsearch-build-env-$$" "$(cat "$BASE_TAG_FILE")")
  "${BUILDAH[@]}" run --isolation chroot "$ctr" -- python3 - --print-env <"$HERE/lock.py" \
    | grep -v -e '"platform_release"' -e '"platform_version"' || rc=$?
  "${BUILDAH[@]}" rm "$ctr" >/dev/null
  return "$rc"
}

image_python_version() { sed -n 's/.*"python_full_version": "\(.*\)".*/\1/p' "$WHEELS/image-env.json"; }

step_wheels() {
  mkdir -p "$WHEELS"
  copy_source
  # The project itself: always rebuilt from the working tree (cheap), into its own folder so a
  # change to the code leaves the dependency layers of the images cached.
  log "wheels: imsearch $VERSION (pip wheel --no-deps) into $WHEELS/app"
  rm -rf "$WHEELS/app"
  mkdir -p "$WHEELS/app"
  # A fixed SOURCE_DATE_EPOCH: the same code gives the same wheel, byte for byte (so the image
  # layers above it stay cached).
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-315532800} \
    "$PYTHON" -m pip wheel --quiet --no-cache-dir --no-deps --wheel-dir "$WHEELS/app" "$SRC"

  # Transitive dependencies: the versions the test suite ran against (.venv), when there is one.
  if [[ -x .venv/bin/pip ]]; then
    .venv/bin/pip freeze --exclude-editable | grep -v -e ' @ ' -e '^imsearch==' >"$WHEELS/constraints.txt.new"
  else
    : >"$WHEELS/constraints.txt.new"
  fi
  if cmp -s "$WHEELS/constraints.txt.new" "$WHEELS/constraints.txt"; then
    rm "$WHEELS/constraints.txt.new"
  else
    mv "$WHEELS/constraints.txt.new" "$WHEELS/constraints.txt"
  fi
  # The marker environment of the image's interpreter (python_full_version and the rest).
  [[ -s $BASE_TAG_FILE ]] && image_exists "$(cat "$BASE_TAG_FILE")" || die "no base image yet: run $0 base"
  image_env >"$WHEELS/image-env.json.new"
  if cmp -s "$WHEELS/image-env.json.new" "$WHEELS/image-env.json"; then
    rm "$WHEELS/image-env.json.new"
  else
    mv "$WHEELS/image-env.json.new" "$WHEELS/image-env.json"
  fi
  local stamp; stamp=$(wheel_stamp)
  if [[ ${REBUILD_WHEELS:-0} != 1 && -f $WHEELS/deps/.stamp && $(cat "$WHEELS/deps/.stamp") == "$stamp" ]]; then
    log "wheels: reusing $WHEELS/deps ($(ls "$WHEELS/deps" | grep -c '\.whl$') wheels)"
    rm -rf "$SRC"
    return
  fi
  log "wheels: pip wheel (encoder, index and gateway dependencies) into $WHEELS/deps"
  rm -rf "$WHEELS/deps" "$WHEELS/tools"
  mkdir -p "$WHEELS/deps" "$WHEELS/tools"
  "$PYTHON" -m pip wheel --quiet --no-cache-dir --wheel-dir "$WHEELS/deps" \
    --constraint "$WHEELS/constraints.txt" "$SRC[encoder,index,gateway]"
  rm -f "$WHEELS"/deps/imsearch-*.whl
  "$PYTHON" -m pip download --quiet --no-cache-dir --no-deps --only-binary=:all: \
    --dest "$WHEELS/tools" "pip==$PIP_VERSION"
  # Requirements whose markers hold on the image's Python but not on the host's (redis needs
  # async-timeout below 3.11.3: the image has 3.11.2): fetched until the closure is complete.
  local round missing app; app=$(ls "$WHEELS"/app/imsearch-*.whl)
  for round in 1 2 3 4 5; do
    missing=$("$PYTHON" "$HERE/lock.py" --env "$WHEELS/image-env.json" --wheelhouse "$WHEELS/deps" --app "$app" --missing)
    [[ -n $missing ]] || break
    [[ $round != 5 ]] || die "wheelhouse still misses: $missing"
    log "wheels: for the image's Python $(image_python_version): $(echo $missing)"
    (cd "$WHEELS/deps" && ls ./*.whl | sed -E 's#^\./([^-]+)-([^-]+)-.*#\1==\2#') >"$WHEELS/pins.txt"
    # shellcheck disable=SC2086
    "$PYTHON" -m pip wheel --quiet --no-cache-dir --wheel-dir "$WHEELS/deps" \
      --constraint "$WHEELS/constraints.txt" --constraint "$WHEELS/pins.txt" $missing
    rm -f "$WHEELS/pins.txt"
  done
  # Every wheel must install on the image's interpreter: CPython 3.11, glibc 2.36, x86_64.
  local bad
  bad=$(ls "$WHEELS/deps" | grep '\.whl$' | grep -v -E -e '-(py3|py2\.py3)-none-any\.whl$' \
    -e '-cp311-cp311-(manylinux|linux_x86_64)' -e '-cp3[0-9]+-abi3-manylinux' || true)
  [[ -z $bad ]] || die "wheels not for cp311 manylinux x86_64: $bad"
  # One locked requirements file per role (name==version, the image's markers).
  local role
  for role in gateway encoder index; do
    "$PYTHON" "$HERE/lock.py" --env "$WHEELS/image-env.json" --wheelhouse "$WHEELS/deps" --app "$app" \
      --role "$role" >"$WHEELS/deps/requirements-$role.txt"
  done
  (cd "$WHEELS/deps" && sha256sum ./*.whl >SHA256SUMS)
  wheel_stamp >"$WHEELS/deps/.stamp"  # again: it reads the constraints of what is here now
  rm -rf "$SRC"
}

# ---------------------------------------------------------------------------------------------
# 3. The images.
# ---------------------------------------------------------------------------------------------
CONTEXT=$WORK/context

make_context() {
  log "build context $CONTEXT"
  rm -rf "$CONTEXT"
  mkdir -p "$CONTEXT"/{wheels,app,debs,busybox/bin,model_repository,triton_repository}
  cp -al "$WHEELS"/deps/. "$CONTEXT/wheels/"
  cp -al "$WHEELS"/tools/. "$CONTEXT/wheels/"
  cp -al "$WHEELS"/app/. "$CONTEXT/app/"
  cp -al "$WORK"/debs/encoder/. "$CONTEXT/debs/"
  # A static busybox and the applets an init container needs (copying the models out).
  dpkg-deb --fsys-tarfile "$WORK"/debs/busybox/busybox-static_*.deb | tar -xOf - ./bin/busybox >"$CONTEXT/busybox/bin/busybox"
  chmod 0755 "$CONTEXT/busybox/bin/busybox"
  local applet
  for applet in sh cp ls mkdir cat chmod find rm mv ln test true env sha256sum du; do
    ln -s busybox "$CONTEXT/busybox/bin/$applet"
  done
  # The encoder serves every model with an imsearch.json (and, for a network, its ONNX file).
  local dir name n=0
  for dir in model_repository/*/; do
    name=$(basename "$dir")
    [[ -f $dir/imsearch.json ]] || continue
    if grep -q '"runtime": *"color_histogram"\|"runtime": *"orb' "$dir/imsearch.json" \
       || compgen -G "$dir/[0-9]*/model.onnx" >/dev/null; then
      cp -a "$dir" "$CONTEXT/model_repository/$name"
      n=$((n + 1))
    else
      echo "  skipping model_repository/$name: no exported ONNX file (run make setup / imsearch models export)" >&2
      continue
    fi
    # Triton's repository: the models with a config.pbtxt and a version folder.
    if [[ -f $dir/config.pbtxt ]] && compgen -G "$dir/[0-9]*/model.onnx" >/dev/null; then
      cp -a "$dir" "$CONTEXT/triton_repository/$name"
    fi
  done
  [[ -f $CONTEXT/model_repository/efficientnet_lite0/1/model.onnx ]] \
    || die "model_repository/efficientnet_lite0/1/model.onnx missing: run make setup first"
  chmod -R a+rX "$CONTEXT/model_repository" "$CONTEXT/triton_repository"
}

# What a role's image is made of: the Containerfile, the base image, the build arguments and
# the content of the context folders its target copies.
inputs_digest() {
  local role=$1 base=$2 dirs
  case $role in
    gateway | index) dirs="wheels app" ;;
    encoder) dirs="wheels app debs model_repository" ;;
    model-repository) dirs="busybox triton_repository" ;;
  esac
  {
    echo "$role $VERSION $PIP_VERSION"
    "${BUILDAH[@]}" images --noheading --no-trunc --format '{{.ID}}' "$base"
    sha256sum "$HERE/Containerfile" | cut -d' ' -f1
    # shellcheck disable=SC2086
    (cd "$CONTEXT" && find $dirs \( -type f -o -type l \) -print0 | sort -z | xargs -0 sha256sum -- \
       && find $dirs -type l -printf '%p -> %l\n' | sort && find $dirs -printf '%m %p\n' | sort)
  } | sha256sum | cut -d' ' -f1
}

# vfs stores every layer as a full copy of the tree: drop the cached intermediate images of
# earlier builds (untagged, built on an imsearch base) that this build did not use.
# With `all`, every one of them (build.sh clean).
prune_cache() {
  local used="" base_layer=none
  if [[ ${1:-} != all ]]; then
    used=$(cat "$WORK"/logs/bud-*.log | grep -oE -- '^--> (Using cache )?[0-9a-f]{11,64}' | grep -oE '[0-9a-f]{11,64}' | cut -c1-11 | sort -u)
  fi
  if [[ -s $BASE_TAG_FILE ]] && image_exists "$(cat "$BASE_TAG_FILE")"; then
    base_layer=$("${BUILDAH[@]}" inspect --type image "$(cat "$BASE_TAG_FILE")" \
      | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["OCIv1"]["rootfs"]["diff_ids"][0])')
  fi
  local id n=0
  for id in $("${BUILDAH[@]}" images -a --json | "$PYTHON" -c 'import json, sys; print(" ".join(i["id"] for i in json.load(sys.stdin) if not i["names"]))'); do
    grep -qx "${id:0:11}" <<<"$used" && continue
    "${BUILDAH[@]}" inspect --type image "$id" 2>/dev/null | "$PYTHON" -c '
import json, sys
d = json.load(sys.stdin)["OCIv1"]
ours = d["rootfs"]["diff_ids"][:1] == [sys.argv[1]] or (d.get("config", {}).get("Labels") or {}).get("org.opencontainers.image.title") == "imsearch-base"
sys.exit(0 if ours else 1)' "$base_layer" || continue
    "${BUILDAH[@]}" rmi "$id" >/dev/null 2>&1 && n=$((n + 1))
  done
  log "pruned $n cached images of earlier builds"
}

step_images() {
  [[ -s $BASE_TAG_FILE ]] || die "no base image yet: run $0 base"
  [[ -f $WHEELS/deps/.stamp && -d $WHEELS/app ]] || die "no wheelhouse yet: run $0 wheels"
  local base; base=$(cat "$BASE_TAG_FILE")
  make_context
  # Bind-mounted inputs are not in buildah's cache key; their digests, as build arguments, are.
  local app_sha debs_sha
  app_sha=$(sha256sum "$CONTEXT/app/imsearch-$VERSION-py3-none-any.whl" | cut -d' ' -f1)
  debs_sha=$(cd "$CONTEXT/debs" && LC_ALL=C sha256sum ./*.deb | sha256sum | cut -d' ' -f1)
  local role tag digest id
  mkdir -p "$WORK/logs" "$WORK/stamps"
  for role in "${ROLES[@]}"; do
    tag=localhost/imsearch-$role:$VERSION
    digest=$(inputs_digest "$role" "$base")
    id=$("${BUILDAH[@]}" images --noheading --no-trunc --format '{{.ID}}' "$tag" 2>/dev/null | head -1 || true)
    if [[ -n $id && -f $WORK/stamps/$role && $(cat "$WORK/stamps/$role") == "$digest $id" ]]; then
      log "image $tag: up to date (same Containerfile, base and inputs)"
      continue
    fi
    log "image $tag (target $role, FROM $base; log $WORK/logs/bud-$role.log)"
    if ! "${BUILDAH[@]}" bud --isolation chroot --layers --force-rm \
      --file "$HERE/Containerfile" --target "$role" \
      --build-arg "BASE_IMAGE=$base" --build-arg "VERSION=$VERSION" --build-arg "PIP_VERSION=$PIP_VERSION" \
      --build-arg "APP_SHA256=$app_sha" --build-arg "DEBS_SHA256=$debs_sha" \
      --tag "$tag" "$CONTEXT" >"$WORK/logs/bud-$role.log" 2>&1; then
      tail -n 30 "$WORK/logs/bud-$role.log" >&2
      die "building $tag failed"
    fi
    printf '    %s steps from the layer cache\n' "$(grep -c -- '--> Using cache' "$WORK/logs/bud-$role.log" || true)" >&2
    id=$("${BUILDAH[@]}" images --noheading --no-trunc --format '{{.ID}}' "$tag" | head -1)
    echo "$digest $id" >"$WORK/stamps/$role"
  done
  if [[ ${KEEP_BUILD_CACHE:-0} != 1 ]] && ls "$WORK"/logs/bud-*.log >/dev/null 2>&1; then
    prune_cache
  fi
  "${BUILDAH[@]}" images --filter reference='localhost/imsearch-*'
}

# Removes the images, their layer cache, the base image, build/images and build/wheels.
step_clean() {
  local role
  if ! "${BUILDAH[@]}" images -a --format '{{.Name}}' | grep -v -e '^localhost/imsearch-' -e '^<none>$' -q; then
    # Nothing else in this storage: drop everything (the scratch-based stages' cache too).
    "${BUILDAH[@]}" rmi --all --force >/dev/null 2>&1 || true
    rm -rf "$WORK" "$WHEELS"
    log "removed every image (all were imsearch's), $WORK and $WHEELS"
    return
  fi
  for role in gateway encoder index model-repository; do
    "${BUILDAH[@]}" rmi "localhost/imsearch-$role:$VERSION" >/dev/null 2>&1 || true
  done
  prune_cache all
  "${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/imsearch-base:' \
    | xargs -r "${BUILDAH[@]}" rmi >/dev/null 2>&1 || true
  prune_cache all  # what only the base held up
  rm -rf "$WORK" "$WHEELS"
  log "removed the imsearch images, their cache, $WORK and $WHEELS"
}

timed() {
  local t0=$SECONDS
  "$@"
  log "$1: $((SECONDS - t0)) s"
}

case ${1:-all} in
  base) timed step_base ;;
  wheels) timed step_wheels ;;
  images) timed step_images ;;
  all) timed step_base; timed step_wheels; timed step_images ;;
  clean) step_clean ;;
  *) die "usage: $0 [all|base|wheels|images|clean]" ;;
esac
