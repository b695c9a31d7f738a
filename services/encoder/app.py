"""Wires the encoder service: engine + servicer + gRPC server + metrics endpoint."""

from dataclasses import dataclass

from imsearch.common.metrics import ServiceMetrics
from imsearch.common.server import RunningServer, create_server
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc
from services.encoder.engine import Encoder
from services.encoder.servicer import EncoderServicer
from services.encoder.settings import EncoderSettings

SERVICE_NAME = encoder_pb2.DESCRIPTOR.services_by_name["EncoderService"].full_name


@dataclass
class EncoderApp:
    server: RunningServer
    encoder: Encoder
    metrics: ServiceMetrics
    metrics_port: int | None

    @property
    def address(self) -> str:
        return self.server.address

    def stop(self) -> None:
        self.server.stop()
        self.encoder.close()


def start_encoder(settings: EncoderSettings) -> EncoderApp:
    metrics = ServiceMetrics("encoder")
    encoder = Encoder(settings, metrics)
    servicer = EncoderServicer(encoder)
    server = create_server(
        lambda s: encoder_pb2_grpc.add_EncoderServiceServicer_to_server(servicer, s),
        [SERVICE_NAME],
        settings.listen,
        metrics,
    )
    metrics_port = metrics.serve_http(settings.metrics_port) if settings.metrics_port >= 0 else None
    server.set_serving(True)  # models are loaded: ready
    return EncoderApp(server, encoder, metrics, metrics_port)
