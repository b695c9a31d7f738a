"""The kinds of index a search can use: one enum from the wire to the stores and the reports."""

from enum import StrEnum

from imsearch.core.errors import InvalidArgument
from imsearch.v1 import index_pb2


class IndexKind(StrEnum):
    HNSW = "hnsw"  # Qdrant's HNSW graph (the default)
    LSH = "lsh"  # our random-hyperplane LSH buckets in Redis
    EXACT = "exact"  # brute force over every stored vector: the ground truth

    @classmethod
    def parse(cls, name: str) -> "IndexKind":
        try:
            return cls(name)
        except ValueError:
            raise InvalidArgument(f"unknown index {name!r}; use {', '.join(cls)}") from None

    @classmethod
    def from_proto(cls, value: int) -> "IndexKind":
        """INDEX_KIND_UNSPECIFIED means the server's default, HNSW."""
        if value == index_pb2.INDEX_KIND_UNSPECIFIED:
            return cls.HNSW
        for kind, wire in _WIRE.items():
            if wire == value:
                return kind
        raise InvalidArgument(f"unknown index {value}; use {', '.join(cls)}")

    def to_proto(self) -> "index_pb2.IndexKind.ValueType":
        return _WIRE[self]


_WIRE: dict[IndexKind, "index_pb2.IndexKind.ValueType"] = {
    IndexKind.HNSW: index_pb2.INDEX_KIND_HNSW,
    IndexKind.LSH: index_pb2.INDEX_KIND_LSH,
    IndexKind.EXACT: index_pb2.INDEX_KIND_EXACT,
}
