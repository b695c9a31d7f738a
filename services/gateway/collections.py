"""Which model each collection is bound to, as the index records it, cached in the gateway.

The index is the record: a collection's model is written at creation and checked by the index
on every write and search that names one, so a stale entry here (the collection dropped and
made again with another model, through another gateway) is refused there, never mixed in; the
pipeline then forgets the entry and asks again.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from imsearch.core.errors import FailedPrecondition
from imsearch.core.validation import validate_name
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc, index_pb2, index_pb2_grpc


@dataclass(frozen=True)
class Binding:
    collection: str
    model: str
    dim: int


class CollectionBindings:
    def __init__(
        self,
        encoder: encoder_pb2_grpc.EncoderServiceStub,
        index: index_pb2_grpc.IndexServiceStub,
        default_model: str,
        default_collection: str,
        timeout: Callable[[str], float],
    ) -> None:
        """`timeout(what)` gives the time left for the next hop (the caller's deadline)."""
        self._encoder, self._index, self._timeout = encoder, index, timeout
        self._lock = threading.Lock()
        self._served: dict[str, encoder_pb2.ModelInfo] = {}
        self._bindings: dict[str, Binding] = {}
        self._refresh_models()
        if default_model not in self._served:
            raise ValueError(f"encoder does not serve model {default_model!r}")
        self.default_model = default_model
        self.default_collection = validate_name("collection", default_collection)

    def _refresh_models(self) -> dict[str, encoder_pb2.ModelInfo]:
        listed = self._encoder.ListModels(
            encoder_pb2.ListModelsRequest(), timeout=self._timeout("listing models")
        )
        with self._lock:
            self._served = {m.name: m for m in listed.models}
            return dict(self._served)

    def model_dim(self, model: str) -> int:
        """The dimension of an image model the encoder serves; FAILED_PRECONDITION otherwise."""
        validate_name("model", model)
        served = dict(self._served)
        if model not in served:
            served = self._refresh_models()  # the encoder may have gained it since
        if model not in served:
            raise FailedPrecondition(
                f"the encoder does not serve model {model!r}; it serves: {', '.join(sorted(served))}"
            )
        if served[model].modality == "text":
            raise FailedPrecondition(
                f"model {model!r} embeds texts; a collection holds images: "
                f"bind it to the image model {served[model].pairs_with!r}"
            )
        return int(served[model].dim)

    def text_model_for(self, image_model: str) -> str:
        """The served text model that embeds into `image_model`'s space, for text search."""
        for served in (dict(self._served), self._refresh_models()):
            for name, info in sorted(served.items()):
                if info.modality == "text" and info.pairs_with == image_model:
                    return name
        raise FailedPrecondition(
            f"no text model pairs with {image_model!r}: text search needs a collection of a CLIP image "
            "model (such as clip_vit_b32) with its text tower (clip_vit_b32_text) served by the encoder"
        )

    def create(
        self, collection: str, model: str, params: index_pb2.IndexParams | None = None
    ) -> index_pb2.CollectionInfo:
        validate_name("collection", collection)
        model = model or self.default_model
        info: index_pb2.CollectionInfo = self._index.EnsureCollection(
            index_pb2.EnsureCollectionRequest(
                collection=collection, dim=self.model_dim(model), model=model, params=params
            ),
            timeout=self._timeout("creating the collection"),
        )
        self.forget(collection)
        return info

    def resolve(self, collection: str) -> Binding:
        """The named collection's binding, or the default collection's for "" (made if it is
        missing, as at start-up). NOT_FOUND for an unknown collection; FAILED_PRECONDITION when
        its model is not served."""
        name = collection or self.default_collection
        binding = self._bindings.get(name)
        if binding is not None:
            return binding
        validate_name("collection", name)
        try:
            info = self._index.GetCollectionInfo(
                index_pb2.GetCollectionInfoRequest(collection=name), timeout=self._timeout("resolving")
            )
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or name != self.default_collection:
                raise
            info = self.create(name, self.default_model)
        # A collection made before bindings records no model: the default one made it.
        model = info.model or self.default_model
        self.model_dim(model)
        binding = Binding(name, model, info.dim)
        with self._lock:
            self._bindings[name] = binding
        return binding

    def describe(self, collection: str) -> index_pb2.CollectionInfo:
        name = collection or self.default_collection
        info: index_pb2.CollectionInfo = self._index.GetCollectionInfo(
            index_pb2.GetCollectionInfoRequest(collection=validate_name("collection", name)),
            timeout=self._timeout("describing the collection"),
        )
        if not info.model and name == self.default_collection:
            info.model = self.default_model
        return info

    def forget(self, collection: str) -> None:
        with self._lock:
            self._bindings.pop(collection or self.default_collection, None)
