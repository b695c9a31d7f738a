#!/usr/bin/env bash
# Smoke test of the images deploy/images/build.sh made (localhost/imsearch-*:VERSION).
#
# For each image, static checks on its filesystem (no pip, no wheels, no pip cache, no compilers,
# a non-root user), then the three services started inside their images with
# `buildah run --isolation chroot` (which shares the host's network) on free loopback ports:
# the encoder, the index (pointed at the host's Redis, its /data a host folder owned by 10001)
# and the gateway in front of them. Each must answer grpc.health.v1 Check with SERVING and run
# as uid 10001; then two images are added and one found again through the gateway, each service is
# stopped with SIGTERM and must exit 0 having written nothing outside /tmp and /data (a
# read-only root filesystem would do). The gateway image must not import torch, onnxruntime,
# cv2, PIL, tritonclient, qdrant_client or redis. The model-repository image's default command
# must copy Triton's repository into /models. Exits non-zero at the first failure.
#
#   deploy/images/smoke.sh
#
# Environment: SMOKE_PYTHON (a Python with grpcio-health-checking and the imsearch client;
# default .venv/bin/python), SMOKE_REDIS_URL (default redis://127.0.0.1:6379/15; the keys go
# under a prefix of their own and are deleted afterwards), SMOKE_TIMEOUT_S (per service, 120).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

PY=${SMOKE_PYTHON:-$ROOT/.venv/bin/python}
REDIS_URL=${SMOKE_REDIS_URL:-redis://127.0.0.1:6379/15}
TIMEOUT_S=${SMOKE_TIMEOUT_S:-120}
B=(buildah --storage-driver vfs)
PREFIX="imsearch-smoke-$$:lsh"
TMP=$(mktemp -d /tmp/imsearch-smoke.XXXXXX)
START=$SECONDS

declare -A RUNNER=()   # role -> pid of its `buildah run`
declare -A SERVICE=()  # role -> pid of the service process (found by its port)
declare -A PORT=()

say() { printf '%s\n' "$*"; }
ok() { printf 'ok    %s\n' "$*"; }
fail() {
  printf 'FAIL  %s\n' "$*" >&2
  local log
  for log in "$TMP"/*.log; do
    [[ -s $log ]] || continue
    printf -- '--- %s (last 25 lines)\n' "$(basename "$log")" >&2
    tail -n 25 "$log" >&2
  done
  exit 1
}

# The deepest descendant of a process: under `buildah run` (buildah-chroot-runtime,
# buildah-chroot-exec), the service's python3.
leaf_of() {
  local pid=$1 child
  while child=$(ps -o pid= --ppid "$pid" 2>/dev/null | head -1 | tr -d ' ') && [[ -n $child ]]; do
    pid=$child
  done
  echo "$pid"
}

cleanup() {
  local role pid i
  for role in "${!RUNNER[@]}"; do
    pid=${SERVICE[$role]:-$(leaf_of "${RUNNER[$role]}")}
    kill -TERM "$pid" 2>/dev/null || true
  done
  for role in "${!RUNNER[@]}"; do
    for i in $(seq 1 30); do
      kill -0 "${RUNNER[$role]}" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "${RUNNER[$role]}" 2>/dev/null; then
      kill -KILL "$(leaf_of "${RUNNER[$role]}")" "${RUNNER[$role]}" 2>/dev/null || true
    fi
    wait "${RUNNER[$role]}" 2>/dev/null || true
  done
  # The working containers this run made (named imsearch-smoke-PID-...).
  "${B[@]}" containers --format '{{.ContainerName}}' 2>/dev/null | grep "^imsearch-smoke-$$-" \
    | while read -r ctr; do
        "${B[@]}" umount "$ctr" >/dev/null 2>&1 || true
        "${B[@]}" rm "$ctr" >/dev/null 2>&1 || true
      done
  "$PY" - "$REDIS_URL" "$PREFIX" <<'EOF' 2>/dev/null || true
import sys, redis
r = redis.Redis.from_url(sys.argv[1])
keys = list(r.scan_iter(match=sys.argv[2] + "*", count=1000))
if keys:
    r.delete(*keys)
EOF
  rm -rf "$TMP"
}
trap cleanup EXIT

[[ $(id -u) == 0 ]] || fail "run as root (buildah's vfs storage)"
[[ -x $PY ]] || fail "no $PY: run make setup, or set SMOKE_PYTHON"
"$PY" -c 'import grpc_health.v1, imsearch.client, redis' || fail "$PY lacks grpcio-health-checking, the imsearch client or redis"
VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

image() { echo "localhost/imsearch-$1:$VERSION"; }

N=0
new_container() {
  # Called in $(...): the counter would not survive, so the name takes $RANDOM as well.
  N=$((N + 1))
  "${B[@]}" from --pull=false --quiet --name "imsearch-smoke-$$-$1-$N$RANDOM" "$(image "$1")" \
    || fail "no image $(image "$1"): run deploy/images/build.sh"
}

# A list from the image's OCI config (Entrypoint, Cmd), one item a line.
image_config() {
  "${B[@]}" inspect --type image "$(image "$1")" \
    | "$PY" -c 'import json, sys; print("\n".join(json.load(sys.stdin)["OCIv1"]["config"].get(sys.argv[1]) or []))' "$2"
}

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Static checks on an image's filesystem, from the host (as root, so nothing is out of sight).
check_filesystem() {
  local role=$1 ctr mnt found
  ctr=$(new_container "$role")
  mnt=$("${B[@]}" mount "$ctr")
  found=$(find "$mnt" -xdev \( -name '*.whl' -o -path '*/.cache/pip' -o -name 'pip' -path '*/bin/*' \
    -o -name 'gcc*' -path '*/bin/*' -o -name 'cc' -path '*/bin/*' -o -name 'make' -path '*/bin/*' \
    -o -name 'ld' -path '*/bin/*' -o -name 'pip' -path '*/site-packages/*' \) -print | sed "s#^$mnt##")
  [[ -z $found ]] || fail "$role: build tools, pip or wheels in the image: $found"
  local user; user=$("${B[@]}" inspect --type container --format '{{.OCIv1.Config.User}}' "$ctr")
  [[ $user == 10001:10001 ]] || fail "$role: image user is '$user', not 10001:10001"
  "${B[@]}" umount "$ctr" >/dev/null
  ok "$role: user 10001:10001; no pip, pip cache, wheels or compilers in the image"
}

# Starts a service's image with its own entrypoint. Extra arguments: buildah run options.
start_service() {
  local role=$1; shift
  local ctr entry
  ctr=$(new_container "$role")
  mapfile -t entry < <(image_config "$role" Entrypoint)
  [[ ${entry[*]} == "python3 -m services.$role" ]] || fail "$role: entrypoint is '${entry[*]}'"
  # buildah run mounts a fresh copy over each VOLUME of the image, hiding a -v bind mount on
  # the same path: drop the image's volumes from this working container (ours are given).
  local volume
  for volume in $("${B[@]}" inspect --type container "$ctr" \
      | "$PY" -c 'import json, sys; print(" ".join(json.load(sys.stdin)["OCIv1"]["config"].get("Volumes") or {}))'); do
    "${B[@]}" config --volume "$volume-" "$ctr"
  done
  touch "$TMP/$role.stamp"
  sleep 1  # the stamp's mtime must be older than anything the service writes
  "${B[@]}" run --isolation chroot "$@" "$ctr" -- "${entry[@]}" >"$TMP/$role.log" 2>&1 &
  RUNNER[$role]=$!
  STARTED_CTR=$ctr
}

# Waits for grpc.health.v1 Check to say SERVING (failing early if the service exits).
wait_serving() {
  local role=$1 addr=$2
  "$PY" - "$addr" "$TIMEOUT_S" "${RUNNER[$role]}" <<'EOF' || fail "$role: health check on $addr"
import os, sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

addr, timeout, runner = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline, last = time.monotonic() + timeout, None
with grpc.insecure_channel(addr) as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    while time.monotonic() < deadline:
        try:
            last = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
            if last == health_pb2.HealthCheckResponse.SERVING:
                # Once more after the first dependency check (health_interval_s, 0.5 s here):
                # until it has run, a service reports SERVING whatever its dependencies say.
                time.sleep(1.0)
                again = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
                if again == health_pb2.HealthCheckResponse.SERVING:
                    sys.exit(0)
                last = "SERVING, then " + health_pb2.HealthCheckResponse.ServingStatus.Name(again)
                break
            last = health_pb2.HealthCheckResponse.ServingStatus.Name(last)
        except grpc.RpcError as exc:
            last = exc.code().name
        try:
            os.kill(runner, 0)
        except ProcessLookupError:
            print(f"the service exited (last health answer: {last})", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.5)
print(f"not SERVING after {timeout:.0f} s (last answer: {last})", file=sys.stderr)
sys.exit(1)
EOF
}

# The service's process on the host (chroot isolation: an ordinary process) and its uid.
check_service_process() {
  local role=$1 port=$2 pid uid
  pid=$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  [[ -n $pid ]] || fail "$role: no process listens on $port"
  [[ $pid == "$(leaf_of "${RUNNER[$role]}")" ]] || fail "$role: port $port is held by pid $pid, not by our buildah run"
  SERVICE[$role]=$pid
  uid=$(stat -c %u "/proc/$pid")
  [[ $uid == 10001 ]] || fail "$role: the service runs as uid $uid, not 10001"
  ok "$role: SERVING on 127.0.0.1:$port (grpc.health.v1), pid $pid, uid $uid ($(tr '\0' ' ' <"/proc/$pid/cmdline"))"
}

# SIGTERM, a clean exit, and nothing written to the root filesystem outside /tmp and /data.
stop_and_check_writes() {
  local role=$1 ctr=$2 rc=0 mnt written
  kill -TERM "${SERVICE[$role]}"
  wait "${RUNNER[$role]}" || rc=$?
  unset "SERVICE[$role]" "RUNNER[$role]"
  [[ $rc == 0 ]] || fail "$role: exited with $rc after SIGTERM"
  mnt=$("${B[@]}" mount "$ctr")
  written=$(cd "$mnt" && find . -xdev -newer "$TMP/$role.stamp" \
    -not -path './tmp' -not -path './tmp/*' -not -path './data' -not -path './data/*' \
    -not -path './dev' -not -path './dev/*' -not -path './proc' -not -path './sys' -not -path './run' -not -path './run/*' \
    -not -path './etc/hosts' -not -path './etc/resolv.conf' -not -path './etc/hostname' -not -path './etc' -not -path '.' \
    -print)
  "${B[@]}" umount "$ctr" >/dev/null
  [[ -z $written ]] || fail "$role: wrote to the root filesystem: $written"
  ok "$role: exited 0 on SIGTERM; wrote nothing outside /tmp and /data"
}

say "== images"
"${B[@]}" images --filter reference='localhost/imsearch-*'

say "== filesystems"
for role in gateway encoder index; do
  check_filesystem "$role"
done

say "== gateway: no inference runtime, image library, Qdrant or Redis client"
ctr=$(new_container gateway)
for module in torch onnxruntime cv2 PIL tritonclient qdrant_client qdrant_edge redis; do
  if out=$("${B[@]}" run --isolation chroot "$ctr" -- python3 -c "import $module" 2>&1); then
    fail "gateway: python3 -c 'import $module' succeeded"
  fi
  [[ $out == *"ModuleNotFoundError: No module named '$module'"* ]] || fail "gateway: import $module failed oddly: $out"
done
"${B[@]}" run --isolation chroot "$ctr" -- python3 -c 'import grpc, services.gateway.app' \
  || fail "gateway: services.gateway.app does not import"
ok "gateway: import torch, onnxruntime, cv2, PIL, tritonclient, qdrant_client, qdrant_edge, redis all fail (ModuleNotFoundError)"
for role in encoder index; do
  ctr=$(new_container "$role")
  if "${B[@]}" run --isolation chroot "$ctr" -- python3 -c 'import torch' >/dev/null 2>&1; then
    fail "$role: torch is importable"
  fi
  ok "$role: no torch"
done

say "== services"
for role in encoder index gateway; do
  PORT[$role]=$(free_port)
done

# Encoder: the model repository baked into the image; metrics on a loopback port.
start_service encoder \
  -e IMSEARCH_ENCODER_LISTEN="127.0.0.1:${PORT[encoder]}" -e IMSEARCH_ENCODER_HEALTH_INTERVAL_S=0.5 -e IMSEARCH_ENCODER_METRICS_PORT="$(free_port)"
ENCODER_CTR=$STARTED_CTR

# Index: Redis on the host, the embedded Qdrant shard in /data (a host folder, as a volume).
mkdir -p "$TMP/data"
chown 10001:10001 "$TMP/data"
start_service index -v "$TMP/data:/data" \
  -e IMSEARCH_INDEX_LISTEN="127.0.0.1:${PORT[index]}" -e IMSEARCH_INDEX_HEALTH_INTERVAL_S=0.5 -e IMSEARCH_INDEX_METRICS_PORT=-1 \
  -e IMSEARCH_INDEX_REDIS_URL="$REDIS_URL" -e IMSEARCH_INDEX_REDIS_PREFIX="$PREFIX"
INDEX_CTR=$STARTED_CTR

t0=$SECONDS
wait_serving encoder "127.0.0.1:${PORT[encoder]}"
check_service_process encoder "${PORT[encoder]}"
wait_serving index "127.0.0.1:${PORT[index]}"
check_service_process index "${PORT[index]}"
say "      (encoder and index SERVING $((SECONDS - t0)) s after start)"

HTTP_PORT=$(free_port)
start_service gateway \
  -e IMSEARCH_GATEWAY_LISTEN="127.0.0.1:${PORT[gateway]}" -e IMSEARCH_GATEWAY_HEALTH_INTERVAL_S=0.5 -e IMSEARCH_GATEWAY_METRICS_PORT=-1 \
  -e IMSEARCH_GATEWAY_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" \
  -e IMSEARCH_GATEWAY_ENCODER_ADDRESS="127.0.0.1:${PORT[encoder]}" \
  -e IMSEARCH_GATEWAY_INDEX_ADDRESS="127.0.0.1:${PORT[index]}"
GATEWAY_CTR=$STARTED_CTR
wait_serving gateway "127.0.0.1:${PORT[gateway]}"
check_service_process gateway "${PORT[gateway]}"

# One image in, found again: gateway -> encoder (ONNX in the image) -> index (Qdrant + Redis).
"$PY" - "127.0.0.1:${PORT[gateway]}" <<'EOF' || fail "search through the gateway"
import io, sys
from PIL import Image
from imsearch.client import SearchClient

def jpeg(colour):
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), colour).save(buf, "JPEG")
    return buf.getvalue()

client = SearchClient(sys.argv[1], timeout=60)
added = client.add_images([("smoke-red", jpeg((220, 20, 20)), {"label": "red"}),
                           ("smoke-blue", jpeg((20, 20, 220)), {"label": "blue"})])
assert added == 2, added
for index in ("exact", "hnsw", "lsh"):
    hits = client.search(jpeg((220, 20, 20)), top_k=2, index=index).results
    assert hits and hits[0].id == "smoke-red", (index, [(h.id, h.score) for h in hits])
client.close()
print("ok    search: 2 images added through the gateway; a red query finds smoke-red first (exact, hnsw, lsh)")
EOF
# The HTTP front from the same image: the page and the OpenAPI file ship in the wheel.
"$PY" - "http://127.0.0.1:$HTTP_PORT" <<'EOF' || fail "HTTP front of the gateway"
import json, sys, urllib.request

base = sys.argv[1]
page = urllib.request.urlopen(f"{base}/", timeout=30).read().decode()
assert "<html" in page.lower(), page[:200]
assert json.load(urllib.request.urlopen(f"{base}/openapi.json", timeout=30))["openapi"].startswith("3.1")
listed = json.load(urllib.request.urlopen(f"{base}/v1/collections", timeout=30))["collections"]
assert any(c["points"] == "2" for c in listed), listed
print("ok    HTTP: the search page, /openapi.json and GET /v1/collections (2 points) from the gateway image")
EOF
[[ -n $(find "$TMP/data" -mindepth 1 -print -quit) ]] || fail "index: nothing written to its /data volume"

for role in gateway index encoder; do
  case $role in
    gateway) stop_and_check_writes gateway "$GATEWAY_CTR" ;;
    index) stop_and_check_writes index "$INDEX_CTR" ;;
    encoder) stop_and_check_writes encoder "$ENCODER_CTR" ;;
  esac
done

say "== model-repository"
ctr=$(new_container model-repository)
mnt=$("${B[@]}" mount "$ctr")
top=$(cd "$mnt" && ls -A | tr '\n' ' ')
"${B[@]}" umount "$ctr" >/dev/null
[[ $top == "bin model_repository " ]] || fail "model-repository: top level is '$top', not only bin and model_repository"
mkdir -p "$TMP/models"
chown 10001:10001 "$TMP/models"
mapfile -t cmd < <(image_config model-repository Cmd)
"${B[@]}" run --isolation chroot -v "$TMP/models:/models" "$ctr" -- "${cmd[@]}" >"$TMP/model-repository.log" 2>&1 \
  || fail "model-repository: its command failed"
[[ -f $TMP/models/efficientnet_lite0/config.pbtxt ]] || fail "model-repository: no efficientnet_lite0/config.pbtxt copied"
cmp -s "$TMP/models/efficientnet_lite0/1/model.onnx" model_repository/efficientnet_lite0/1/model.onnx \
  || fail "model-repository: the copied model.onnx differs from model_repository/"
owner=$(stat -c %u "$TMP/models/efficientnet_lite0/1/model.onnx")
[[ $owner == 10001 ]] || fail "model-repository: copied as uid $owner, not 10001"
ok "model-repository: only /bin (busybox) and /model_repository; its command copied $(cd "$TMP/models" && find . -type f | wc -l) files into /models as uid 10001"

say "== all passed in $((SECONDS - START)) s"
