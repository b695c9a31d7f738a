"""gRPC face of the encoder: protobuf in and out, nothing else."""

import grpc

from imsearch.core.errors import InvalidArgument
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc
from services.encoder.engine import Encoder
from services.encoder.images import Region
from services.encoder.model_spec import ModelSpec


def model_info(spec: ModelSpec, backend: str, is_default: bool) -> encoder_pb2.ModelInfo:
    prep = spec.preprocessing
    return encoder_pb2.ModelInfo(
        name=spec.name,
        dim=spec.dim,
        backend=backend,
        is_default=is_default,
        weights=spec.weights,
        modality=spec.modality,
        pairs_with=spec.pairs_with,
        preprocessing=None
        if prep is None
        else encoder_pb2.Preprocessing(
            resize=prep.resize,
            crop_size=prep.crop_size,
            mean=prep.mean,
            std=prep.std,
            layout=prep.layout,
            interpolation=prep.interpolation,
        ),
    )


def regions_of(request: encoder_pb2.EncodeRequest) -> list[Region | None]:
    """One region per image, None where the box is unset or zero-size (the whole image)."""
    return [
        (box.x, box.y, box.width, box.height) if (box.width or box.height or box.x or box.y) else None
        for box in request.regions
    ]


class EncoderServicer(encoder_pb2_grpc.EncoderServiceServicer):
    def __init__(self, encoder: Encoder) -> None:
        self._encoder = encoder

    def Encode(
        self, request: encoder_pb2.EncodeRequest, context: grpc.ServicerContext
    ) -> encoder_pb2.EncodeResponse:
        if request.texts:
            if request.images:
                raise InvalidArgument("give images or texts, not both")
            if request.thumbnail_size:
                raise InvalidArgument("thumbnails are made of images, not texts")
            spec, embeddings = self._encoder.encode_texts(request.model, list(request.texts))
            thumbnails: list[bytes] = []
        else:
            encoded = self._encoder.encode_images(
                request.model, list(request.images), regions_of(request), request.thumbnail_size
            )
            spec, embeddings, thumbnails = encoded.spec, encoded.embeddings, encoded.thumbnails
        return encoder_pb2.EncodeResponse(
            model=spec.name,
            dim=spec.dim,
            # tolist() first: protobuf copies a Python list ~7x faster than a numpy array.
            embeddings=[encoder_pb2.Embedding(values=row.tolist()) for row in embeddings],
            thumbnails=thumbnails,
        )

    def ListModels(
        self, request: encoder_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> encoder_pb2.ListModelsResponse:
        default = self._encoder.settings.default_model
        kinds = {name: m.backend.kind for name, m in self._encoder.models.items()}
        return encoder_pb2.ListModelsResponse(
            models=[
                model_info(spec, kinds.get(name, "ensemble"), name == default)
                for name, spec in sorted(self._encoder.specs().items())
            ]
        )
