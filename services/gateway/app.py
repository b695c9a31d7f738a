"""Wires the gateway: channels to the encoder and the index, the pipeline, its servicer."""

import secrets
from contextlib import ExitStack

from imsearch.core.app import ServiceApp, start_service
from imsearch.core.auth import Role
from imsearch.core.channels import wait_for_channel
from imsearch.core.metrics import ServiceMetrics
from imsearch.v1 import encoder_pb2, search_pb2, search_pb2_grpc
from services.gateway.http.bindings import service_bindings
from services.gateway.http.front import FrontConfig, create_app
from services.gateway.http.openapi import load_openapi
from services.gateway.http.server import HttpServer, HttpTls
from services.gateway.pipeline import SearchPipeline
from services.gateway.servicer import SearchServicer
from services.gateway.settings import GatewaySettings

SERVICE_NAME = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name
ENCODER_SERVICE = encoder_pb2.DESCRIPTOR.services_by_name["EncoderService"].full_name
GatewayApp = ServiceApp[SearchPipeline]
# What each public call needs; the internal services need admin for everything.
METHOD_ROLES = {
    "Search": Role.SEARCH,
    "SearchBatch": Role.SEARCH,
    "FindDuplicates": Role.SEARCH,
    "GetStats": Role.SEARCH,
    "ListCollections": Role.SEARCH,
    "DescribeCollection": Role.SEARCH,
    "AddImage": Role.WRITE,
    "AddImages": Role.WRITE,
    "DeleteImages": Role.WRITE,
}


def start_gateway(settings: GatewaySettings, connect_timeout: float = 60.0) -> GatewayApp:
    metrics = ServiceMetrics("gateway")
    with ExitStack() as on_failure:  # the channels close unless the pipeline takes them over
        hops = settings.hop_security()
        # Encoding is idempotent: a call that meets a dying replica is retried on another.
        encoder = wait_for_channel(settings.encoder_address, connect_timeout, hops, [ENCODER_SERVICE])
        on_failure.callback(encoder.close)
        index = wait_for_channel(settings.index_address, connect_timeout, hops)
        on_failure.callback(index.close)
        pipeline = SearchPipeline(settings, encoder, index, metrics)
        on_failure.pop_all()
    servicer = SearchServicer(pipeline)
    # Certificate-verified HTTP callers reach the gRPC port with this token (admin, as a
    # verified certificate is there); it never leaves the process.
    front_token = secrets.token_urlsafe(32) if settings.http_listen and settings.tls_client_ca else None
    app = start_service(
        "gateway",
        pipeline,
        lambda server: search_pb2_grpc.add_SearchServiceServicer_to_server(servicer, server),
        [SERVICE_NAME],
        settings,
        metrics,
        METHOD_ROLES,
        loopback_port=settings.http_listen is not None,
        extra_admin_token=front_token,
    )
    if settings.http_listen is not None:
        try:
            address = f"127.0.0.1:{app.server.loopback_port}"
            front = start_http_front(settings, address, front_token, metrics)
        except BaseException:
            app.stop(0)
            raise
        app.http_url = front.url
        app.on_stop.append(front.stop)
    return app


def start_http_front(
    settings: GatewaySettings, gateway_address: str, front_token: str | None, metrics: ServiceMetrics
) -> HttpServer:
    """The HTTP/JSON API (search.proto's google.api.http paths) and the search page."""
    assert settings.http_listen is not None
    config = FrontConfig(
        gateway_address,
        settings.http_max_body_bytes,
        settings.http_call_timeout_s,
        settings.stream_idle_timeout_s,
        front_token,
    )
    bindings = service_bindings(search_pb2.DESCRIPTOR.services_by_name["SearchService"])
    app = create_app(config, bindings, load_openapi(), metrics)
    tls = (
        HttpTls(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        if settings.tls_cert and settings.tls_key
        else None
    )
    return HttpServer(app, settings.http_listen, tls)
