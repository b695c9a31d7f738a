"""Wires the gateway: channels to the encoder and the index, the pipeline, its servicer."""

from contextlib import ExitStack

from imsearch.core.app import ServiceApp, start_service
from imsearch.core.auth import Role
from imsearch.core.channels import wait_for_channel
from imsearch.core.metrics import ServiceMetrics
from imsearch.v1 import encoder_pb2, search_pb2, search_pb2_grpc
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
    return start_service(
        "gateway",
        pipeline,
        lambda server: search_pb2_grpc.add_SearchServiceServicer_to_server(servicer, server),
        [SERVICE_NAME],
        settings,
        metrics,
        METHOD_ROLES,
    )
