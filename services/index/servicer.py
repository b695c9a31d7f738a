"""gRPC face of the index service."""

from collections.abc import Iterable

import grpc
import numpy as np

from imsearch.core.errors import InvalidArgument
from imsearch.core.filters import parse_filter
from imsearch.core.index_kind import IndexKind
from imsearch.core.structs import to_dict, to_struct
from imsearch.core.validation import validate_name
from imsearch.v1 import index_pb2, index_pb2_grpc
from services.index.engine import IndexEngine, IndexParameters, NewPoint
from services.index.examples import Examples, ExampleStrategy
from services.index.k_reciprocal import KReciprocal
from services.index.query_expansion import QueryExpansion
from services.index.stores.base import INT8

NAME_OF_QUANTIZATION = {
    index_pb2.VECTOR_QUANTIZATION_NONE: "",
    index_pb2.VECTOR_QUANTIZATION_INT8: INT8,
}
QUANTIZATION_OF = {name: value for value, name in NAME_OF_QUANTIZATION.items()}


def require_collection(name: str) -> str:
    return validate_name("collection", name)


def examples_of(request: index_pb2.SearchVectorRequest) -> Examples:
    def vectors(given: Iterable[index_pb2.Vector]) -> list[np.ndarray]:
        return [np.asarray(v.values, dtype=np.float32) for v in given]

    return Examples(
        positive_ids=list(request.positive_ids),
        negative_ids=list(request.negative_ids),
        positive_vectors=vectors(request.positive_vectors),
        negative_vectors=vectors(request.negative_vectors),
        strategy=ExampleStrategy.from_proto(request.strategy),
    )


def k_reciprocal_of(message: index_pb2.KReciprocal) -> KReciprocal:
    """The message's parameters, unset ones at the paper's defaults."""
    default = KReciprocal()
    return KReciprocal(
        message.k1 or default.k1,
        message.k2 or default.k2,
        message.original_weight if message.HasField("original_weight") else default.lambda_,
        message.candidates or default.candidates,
    )


class IndexServicer(index_pb2_grpc.IndexServiceServicer):
    def __init__(self, engine: IndexEngine) -> None:
        self._engine = engine

    def _info(self, collection: str) -> index_pb2.CollectionInfo:
        info = self._engine.info(collection)
        spec = self._engine.spec(collection)
        return index_pb2.CollectionInfo(
            collection=collection,
            model=info.model,
            dim=info.dim,
            hnsw_m=spec.hnsw_m,
            hnsw_ef_construct=spec.hnsw_ef_construct,
            quantization=QUANTIZATION_OF[spec.quantization],
            points=info.points,
            lsh_points=info.lsh_points,
            hnsw_built=info.hnsw_built,
            lsh_tables=info.lsh_tables,
            lsh_bits=info.lsh_bits,
        )

    def EnsureCollection(
        self, request: index_pb2.EnsureCollectionRequest, context: grpc.ServicerContext
    ) -> index_pb2.CollectionInfo:
        collection = require_collection(request.collection)
        given = request.params
        if given.quantization not in NAME_OF_QUANTIZATION:
            raise InvalidArgument(f"unknown quantization {given.quantization}")
        params = IndexParameters(
            given.lsh_tables,
            given.lsh_bits,
            given.hnsw_m,
            given.hnsw_ef_construct,
            NAME_OF_QUANTIZATION[given.quantization],
        )
        self._engine.ensure_collection(collection, request.dim, request.model, params)
        return self._info(collection)

    def ListCollections(
        self, request: index_pb2.ListCollectionsRequest, context: grpc.ServicerContext
    ) -> index_pb2.ListCollectionsResponse:
        return index_pb2.ListCollectionsResponse(
            collections=[self._info(name) for name in self._engine.list_collections()]
        )

    def DropCollection(
        self, request: index_pb2.DropCollectionRequest, context: grpc.ServicerContext
    ) -> index_pb2.DropCollectionResponse:
        dropped = self._engine.drop_collection(require_collection(request.collection))
        return index_pb2.DropCollectionResponse(dropped=dropped)

    def Upsert(
        self, request: index_pb2.UpsertRequest, context: grpc.ServicerContext
    ) -> index_pb2.UpsertResponse:
        collection = require_collection(request.collection)
        self._engine.check_model(collection, request.model)
        items: list[NewPoint] = [
            (p.id, np.asarray(p.vector, dtype=np.float32), to_dict(p.metadata), p.thumbnail)
            for p in request.points
        ]
        upserted = self._engine.upsert(collection, items)
        return index_pb2.UpsertResponse(upserted=upserted)

    def Delete(
        self, request: index_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> index_pb2.DeleteResponse:
        deleted = self._engine.delete(require_collection(request.collection), list(request.ids))
        return index_pb2.DeleteResponse(deleted=deleted)

    def Search(
        self, request: index_pb2.SearchVectorRequest, context: grpc.ServicerContext
    ) -> index_pb2.SearchVectorResponse:
        collection = require_collection(request.collection)
        self._engine.check_model(collection, request.model)
        examples = examples_of(request)
        arguments = (
            request.top_k,
            IndexKind.from_proto(request.index),
            parse_filter(request.filter, request.where if request.HasField("where") else None),
            request.with_vectors,
            request.offset,
            request.min_score if request.HasField("min_score") else None,
        )
        expansion = (
            QueryExpansion(request.expansion.neighbours, request.expansion.alpha)
            if request.HasField("expansion")
            else None
        )
        k_reciprocal = k_reciprocal_of(request.k_reciprocal) if request.HasField("k_reciprocal") else None
        if examples:
            if expansion is not None or k_reciprocal is not None:
                raise InvalidArgument(
                    "query expansion and k-reciprocal re-ranking are for a search by vector"
                )
            if request.vector:
                examples.positive_vectors.append(np.asarray(request.vector, dtype=np.float32))
            outcome = self._engine.search_by_example(collection, examples, *arguments)
        else:
            outcome = self._engine.search(
                collection, request.vector, *arguments, expansion=expansion, k_reciprocal=k_reciprocal
            )
        if request.with_thumbnails:
            self._engine.attach_thumbnails(collection, outcome.hits)
        return index_pb2.SearchVectorResponse(
            hits=[
                index_pb2.Hit(
                    id=h.id,
                    score=h.score,
                    metadata=to_struct(h.metadata),
                    vector=h.vector.tolist() if h.vector is not None else [],
                    thumbnail=h.thumbnail,
                )
                for h in outcome.hits
            ],
            candidates_scored=outcome.candidates_scored,
        )

    def FindDuplicates(
        self, request: index_pb2.FindDuplicatesRequest, context: grpc.ServicerContext
    ) -> index_pb2.FindDuplicatesResponse:
        found = self._engine.find_duplicates(
            require_collection(request.collection), request.min_score or 0.95, request.max_groups or 100
        )
        return index_pb2.FindDuplicatesResponse(
            groups=[index_pb2.DuplicateGroup(ids=ids, min_score=score) for ids, score in found.groups],
            points_scanned=found.points_scanned,
            groups_found=found.groups_found,
        )

    def GetVectors(
        self, request: index_pb2.GetVectorsRequest, context: grpc.ServicerContext
    ) -> index_pb2.GetVectorsResponse:
        collection, ids = require_collection(request.collection), list(request.ids)
        if request.ids_only:
            stored = self._engine.stored_ids(collection, ids)
            return index_pb2.GetVectorsResponse(points=[index_pb2.Point(id=i) for i in stored])
        points = self._engine.get_vectors(collection, ids)
        return index_pb2.GetVectorsResponse(
            points=[
                index_pb2.Point(
                    id=p.id, vector=p.vector.tolist(), metadata=to_struct(p.metadata), thumbnail=p.thumbnail
                )
                for p in points
            ]
        )

    def GetCollectionInfo(
        self, request: index_pb2.GetCollectionInfoRequest, context: grpc.ServicerContext
    ) -> index_pb2.CollectionInfo:
        return self._info(require_collection(request.collection))

    def Verify(
        self, request: index_pb2.VerifyRequest, context: grpc.ServicerContext
    ) -> index_pb2.VerifyResponse:
        audit = self._engine.verify(require_collection(request.collection), request.repair)
        return index_pb2.VerifyResponse(
            points=audit.points,
            lsh_points=audit.lsh_points,
            missing_in_lsh=audit.missing_in_lsh,
            extra_in_lsh=audit.extra_in_lsh,
            diverged=audit.diverged,
            repaired=audit.repaired,
            sample_ids=audit.sample_ids,
            undigested=audit.undigested,
        )
