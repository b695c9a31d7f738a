"""Local stand-ins for production infrastructure, shared by the suite, the tests and the lab.

An embedded `redis-server`, free loopback ports, the CPU Triton launcher and its repository
builder, a 3-master Redis Cluster, the generator of the gRPC code, and the offline checks of
the Kubernetes manifests (devtools.k8s). Nothing in `services/` imports this package.
"""
