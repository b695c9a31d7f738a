"""The index service on a real 3-master Redis Cluster: found from any node's URL, consistent
with Qdrant, its collection's keys on every master, dropped without a trace."""

from pathlib import Path

import grpc
import numpy as np
from redis.cluster import RedisCluster

from devtools.redis_cluster import EmbeddedRedisCluster
from imsearch.v1 import index_pb2, index_pb2_grpc
from services.index.app import start_index
from services.index.redis_connection import connect_redis
from services.index.settings import IndexSettings

DIM, SIZE = 16, 1200


def test_the_index_runs_on_a_redis_cluster(redis_cluster: EmbeddedRedisCluster, tmp_path: Path) -> None:
    redis_cluster.flush()
    last_node = redis_cluster.url.replace(str(redis_cluster.ports[0]), str(redis_cluster.ports[-1]))
    settings = IndexSettings(listen="127.0.0.1:0", metrics_port=-1, data_dir=tmp_path, redis_url=last_node)
    assert isinstance(connect_redis(settings), RedisCluster)  # detected, from any node
    app = start_index(settings)
    try:
        stub = index_pb2_grpc.IndexServiceStub(grpc.insecure_channel(app.address))
        stub.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="c", dim=DIM))
        vectors = np.random.default_rng(0).standard_normal((SIZE, DIM)).astype(np.float32)
        for start in range(0, SIZE, 400):
            points = [
                index_pb2.Point(id=f"p{i}", vector=vectors[i].tolist()) for i in range(start, start + 400)
            ]
            stub.Upsert(index_pb2.UpsertRequest(collection="c", points=points))
        stub.Delete(index_pb2.DeleteRequest(collection="c", ids=["p7", "p8"]))
        audit = stub.Verify(index_pb2.VerifyRequest(collection="c"))
        assert (audit.points, audit.lsh_points, audit.missing_in_lsh, audit.extra_in_lsh, audit.diverged) == (
            SIZE - 2, SIZE - 2, 0, 0, 0,
        )  # fmt: skip
        for i in (0, 333, 1100):
            hits = stub.Search(
                index_pb2.SearchVectorRequest(
                    collection="c", vector=vectors[i].tolist(), top_k=3, index=index_pb2.INDEX_KIND_LSH
                )
            ).hits
            assert hits[0].id == f"p{i}"
        assert all(n > 0 for n in redis_cluster.keys_per_master("imsearch:lsh:{c.s*").values())
        assert stub.DropCollection(index_pb2.DropCollectionRequest(collection="c")).dropped
        assert sum(redis_cluster.keys_per_master("imsearch:lsh:*").values()) == 0
    finally:
        app.stop()
