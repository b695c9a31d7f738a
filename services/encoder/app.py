"""Wires the encoder service: the encoder (models loaded) behind its servicer."""

from imsearch.core.app import ServiceApp, start_service
from imsearch.core.metrics import ServiceMetrics
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc
from services.encoder.engine import Encoder
from services.encoder.servicer import EncoderServicer
from services.encoder.settings import EncoderSettings

SERVICE_NAME = encoder_pb2.DESCRIPTOR.services_by_name["EncoderService"].full_name
EncoderApp = ServiceApp[Encoder]


def start_encoder(settings: EncoderSettings) -> EncoderApp:
    metrics = ServiceMetrics("encoder")
    encoder = Encoder(settings, metrics)  # loads every model: SERVING only after this
    servicer = EncoderServicer(encoder)
    return start_service(
        "encoder",
        encoder,
        lambda server: encoder_pb2_grpc.add_EncoderServiceServicer_to_server(servicer, server),
        [SERVICE_NAME],
        settings,
        metrics,
    )
