"""Readiness probe for our TLS gRPC servers: exit 0 when the standard health service says SERVING.

The kubelet's own `grpc` probe speaks plaintext only, so with TLS on each pod runs this (with the
image's Python and grpcio) against itself:

    python grpc_health_probe.py PORT SERVER_NAME CA_FILE [CLIENT_CERT CLIENT_KEY]

SERVER_NAME is a name in the server's certificate (the Service name); the client certificate is
for servers that demand mutual TLS. Health needs no token (our servers let health through).
"""

import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_S = 3.0


def probe(port: int, server_name: str, ca: Path, cert: Path | None = None, key: Path | None = None) -> int:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    options = [("grpc.ssl_target_name_override", server_name)]
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S
            )
        except grpc.RpcError as exc:
            print(f"health check failed: {exc.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"not serving: {status}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 5):
        print(__doc__, file=sys.stderr)
        return 2
    cert, key = (Path(argv[3]), Path(argv[4])) if len(argv) == 5 else (None, None)
    return probe(int(argv[0]), argv[1], Path(argv[2]), cert, key)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
