"""gRPC face of the gateway: the public SearchService."""

from collections.abc import Iterator

import grpc

from imsearch.core.index_kind import IndexKind
from imsearch.v1 import index_pb2, search_pb2, search_pb2_grpc
from services.gateway.pipeline import SearchPipeline
from services.gateway.queries import SearchResult


def response_of(request: search_pb2.SearchRequest, result: SearchResult) -> search_pb2.SearchResponse:
    return search_pb2.SearchResponse(
        results=[
            search_pb2.SearchResult(
                id=h.id,
                score=h.score,
                metadata=None if request.omit_metadata else h.metadata,
                vector=h.vector if request.with_vectors else [],
                thumbnail=h.thumbnail,
            )
            for h in result.hits
        ],
        model=result.binding.model,
        collection=result.binding.collection,
        index=IndexKind.from_proto(request.index).to_proto(),  # the index used (the default resolved)
        reranked=result.reranked,
        candidates_scored=result.candidates_scored,
    )


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, pipeline: SearchPipeline) -> None:
        self._pipeline = pipeline

    def CreateCollection(
        self, request: search_pb2.CreateCollectionRequest, context: grpc.ServicerContext
    ) -> index_pb2.CollectionInfo:
        params = request.params if request.HasField("params") else None
        return self._pipeline.create_collection(request.collection, request.model, params)

    def ListCollections(
        self, request: index_pb2.ListCollectionsRequest, context: grpc.ServicerContext
    ) -> index_pb2.ListCollectionsResponse:
        return index_pb2.ListCollectionsResponse(collections=self._pipeline.list_collections())

    def DescribeCollection(
        self, request: index_pb2.GetCollectionInfoRequest, context: grpc.ServicerContext
    ) -> index_pb2.CollectionInfo:
        return self._pipeline.collections.describe(request.collection)

    def DropCollection(
        self, request: index_pb2.DropCollectionRequest, context: grpc.ServicerContext
    ) -> index_pb2.DropCollectionResponse:
        return index_pb2.DropCollectionResponse(dropped=self._pipeline.drop_collection(request.collection))

    def AddImage(
        self, request: search_pb2.AddImageRequest, context: grpc.ServicerContext
    ) -> search_pb2.AddImageResponse:
        outcome = self._pipeline.add([request], request.collection)
        return search_pb2.AddImageResponse(id=request.id, duplicates=outcome.duplicates)

    def AddImages(
        self, request_iterator: Iterator[search_pb2.AddImageRequest], context: grpc.ServicerContext
    ) -> search_pb2.AddImagesResponse:
        outcome = self._pipeline.add_stream(request_iterator)
        return search_pb2.AddImagesResponse(
            added=outcome.stored, duplicates=outcome.duplicates, already_stored=outcome.already_stored
        )

    def FindDuplicates(
        self, request: index_pb2.FindDuplicatesRequest, context: grpc.ServicerContext
    ) -> index_pb2.FindDuplicatesResponse:
        return self._pipeline.find_duplicates(request)

    def Search(
        self, request: search_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> search_pb2.SearchResponse:
        return response_of(request, self._pipeline.search(request))

    def SearchBatch(
        self, request: search_pb2.SearchBatchRequest, context: grpc.ServicerContext
    ) -> search_pb2.SearchBatchResponse:
        results = self._pipeline.search_batch(list(request.queries))
        return search_pb2.SearchBatchResponse(
            responses=[
                response_of(query, result) for query, result in zip(request.queries, results, strict=True)
            ]
        )

    def DeleteImages(
        self, request: search_pb2.DeleteImagesRequest, context: grpc.ServicerContext
    ) -> search_pb2.DeleteImagesResponse:
        return search_pb2.DeleteImagesResponse(
            deleted=self._pipeline.delete(list(request.ids), request.collection)
        )

    def GetStats(
        self, request: search_pb2.GetStatsRequest, context: grpc.ServicerContext
    ) -> search_pb2.Stats:
        binding, info = self._pipeline.stats(request.collection)
        return search_pb2.Stats(model=binding.model, dim=binding.dim, collection=info)

    def VerifyIndex(
        self, request: index_pb2.VerifyRequest, context: grpc.ServicerContext
    ) -> index_pb2.VerifyResponse:
        return self._pipeline.verify(request.repair, request.collection)
