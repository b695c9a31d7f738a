"""Wires the gateway: channels to the encoder and index + pipeline + servicer + server."""

from dataclasses import dataclass

import grpc

from imsearch.common.metrics import ServiceMetrics
from imsearch.common.server import RunningServer, create_server, wait_for_channel
from imsearch.v1 import search_pb2, search_pb2_grpc
from services.gateway.pipeline import SearchPipeline
from services.gateway.servicer import SearchServicer
from services.gateway.settings import GatewaySettings

SERVICE_NAME = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name


@dataclass
class GatewayApp:
    server: RunningServer
    pipeline: SearchPipeline
    metrics: ServiceMetrics
    metrics_port: int | None
    channels: list[grpc.Channel]
    settings: GatewaySettings

    @property
    def address(self) -> str:
        return self.server.address

    def stop(self) -> None:
        self.server.stop()
        for channel in self.channels:
            channel.close()


def start_gateway(settings: GatewaySettings, connect_timeout: float = 60.0) -> GatewayApp:
    metrics = ServiceMetrics("gateway")
    encoder = wait_for_channel(settings.encoder_address, connect_timeout)
    index = wait_for_channel(settings.index_address, connect_timeout)
    pipeline = SearchPipeline(settings, encoder, index, metrics)
    servicer = SearchServicer(pipeline)
    server = create_server(
        lambda s: search_pb2_grpc.add_SearchServiceServicer_to_server(servicer, s),
        [SERVICE_NAME],
        settings.listen,
        metrics,
    )
    metrics_port = metrics.serve_http(settings.metrics_port) if settings.metrics_port >= 0 else None
    server.set_serving(True)
    return GatewayApp(server, pipeline, metrics, metrics_port, [encoder, index], settings)
