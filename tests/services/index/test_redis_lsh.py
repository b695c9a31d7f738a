"""The LSH bucket store against a real redis-server and a real 3-master Redis Cluster."""

import numpy as np
import pytest
from redis.crc import key_slot

from devtools.redis_cluster import EmbeddedRedisCluster
from imsearch.core.filters import Filter
from services.index.stores.base import StoredPoint
from services.index.stores.redis_lsh import CLUSTER_SHARDS, LshParams, RedisClient, RedisLshStore

DIM = 64


def clustered(n: int, clusters: int = 20, seed: int = 0, spread: float = 0.35) -> np.ndarray:
    """Points around 20 fixed centres (the same for every seed), as image embeddings cluster."""
    centres = np.random.default_rng(1234).standard_normal((clusters, DIM))
    rng = np.random.default_rng(seed)
    points = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def store_with(client: RedisClient, vectors: np.ndarray, **params: int) -> RedisLshStore:
    store = RedisLshStore(client, LshParams(**params), prefix="test")
    store.ensure_collection("c", DIM)
    points = [StoredPoint(str(i), v, {"parity": i % 2}) for i, v in enumerate(vectors)]
    for start in range(0, len(points), 500):
        store.upsert("c", points[start : start + 500])
    return store


def test_signatures_are_deterministic_across_processes(lsh_client: RedisClient) -> None:
    vectors = clustered(10)
    first = store_with(lsh_client, vectors)
    second = RedisLshStore(lsh_client, LshParams(), prefix="test")  # a fresh process, same Redis
    np.testing.assert_array_equal(first.signatures("c", vectors), second.signatures("c", vectors))


def test_recall_against_exact_search_with_a_fraction_scored(lsh_client: RedisClient) -> None:
    vectors = clustered(4000)
    store = store_with(lsh_client, vectors, tables=12, bits=10, full_scan_threshold=0)
    queries = clustered(50, seed=1)
    recalls, looked_at = [], []
    for query in queries:
        truth = set(np.argsort(-(vectors @ query))[:10].astype(str))
        result = store.search("c", query, 10, None)
        recalls.append(len(truth & {h.id for h in result.hits}) / 10)
        looked_at.append(result.candidates / len(vectors))
        assert result.rescored <= LshParams().rescore
    assert np.mean(recalls) >= 0.9
    assert np.mean(looked_at) <= 0.5


def test_signature_shortlist_keeps_recall_while_rescoring_few(lsh_client: RedisClient) -> None:
    vectors = clustered(4000)
    shortlisted = store_with(lsh_client, vectors, full_scan_threshold=0, rescore=100)
    every = RedisLshStore(lsh_client, LshParams(rescore=0, full_scan_threshold=0), prefix="test")
    recall: dict[str, list[float]] = {"shortlist": [], "every": []}
    for query in clustered(50, seed=1):
        truth = set(np.argsort(-(vectors @ query))[:10].astype(str))
        short, full = shortlisted.search("c", query, 10, None), every.search("c", query, 10, None)
        assert short.candidates == full.candidates == full.rescored > 100 == short.rescored
        recall["shortlist"].append(len(truth & {h.id for h in short.hits}) / 10)
        recall["every"].append(len(truth & {h.id for h in full.hits}) / 10)
    # 100 of ~430 candidates, picked by signature distance (832 bits), hold nearly all the true top
    # 10; a random 100 would hold about a quarter of them.
    assert np.mean(recall["shortlist"]) >= np.mean(recall["every"]) - 0.03


def test_a_filter_applies_before_the_shortlist(lsh_client: RedisClient) -> None:
    vectors = clustered(2000)
    store = store_with(lsh_client, vectors, tables=12, bits=10, full_scan_threshold=0, rescore=20)
    result = store.search("c", vectors[1], 10, Filter.of({"parity": 1}))
    assert len(result.hits) == 10 and all(int(h.id) % 2 == 1 for h in result.hits)
    assert result.hits[0].id == "1" and result.hits[0].metadata == {"parity": 1}


def test_replacing_a_point_leaves_its_old_buckets(lsh_client: RedisClient) -> None:
    vectors = clustered(20)
    store = store_with(lsh_client, vectors, full_scan_threshold=0)
    moved = -vectors[0]  # the opposite direction: every signature bit flips
    store.upsert("c", [StoredPoint("0", moved, {"parity": 0})])
    assert store.count("c") == 20
    hits = store.search("c", vectors[0], 1, None).hits
    assert not hits or hits[0].id != "0"
    hits = store.search("c", moved, 1, None).hits
    assert hits[0].id == "0" and hits[0].score == pytest.approx(1.0, abs=1e-3)


def test_delete_and_filter(lsh_client: RedisClient) -> None:
    vectors = clustered(30)
    store = store_with(lsh_client, vectors)
    store.delete("c", ["1", "2", "missing"])
    assert store.count("c") == 28
    assert {"1", "2"}.isdisjoint(i for batch in store.iter_ids("c") for i in batch)
    result = store.search("c", vectors[3], 30, Filter.of({"parity": 1}))
    assert result.candidates == result.rescored == 14  # small collection: all 14 odd ids scored
    assert result.hits and all(int(h.id) % 2 == 1 for h in result.hits)


def test_the_centre_is_fitted_at_the_threshold_and_earlier_points_rehashed(lsh_client: RedisClient) -> None:
    vectors = clustered(300)
    store = store_with(lsh_client, vectors[:99], full_scan_threshold=100)
    assert store.search("c", vectors[5], 1, None).rescored == 99  # below the threshold: full scan
    store.upsert("c", [StoredPoint(str(i), vectors[i], {}) for i in range(99, 300)])
    fresh = RedisLshStore(lsh_client, LshParams(full_scan_threshold=100), prefix="test")  # reads the centre
    for store_ in (store, fresh):
        result = store_.search("c", vectors[5], 1, None)
        assert result.hits[0].id == "5"  # a point stored before the centre existed is found in its buckets
        assert result.candidates < 300


def test_probe_order_flips_the_least_certain_bits_first() -> None:
    from services.index.stores.redis_lsh import probe_flips

    margins = np.array([[0.9, 0.1, 0.5, 0.05], [0.05, 0.9, 0.1, 0.5]])
    assert probe_flips(margins, 4).tolist() == [[0, 0b1000, 0b0010, 0b1010], [0, 0b0001, 0b0100, 0b0101]]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        LshParams(bits=40)
    with pytest.raises(ValueError):
        LshParams(probes=0)
    with pytest.raises(ValueError):
        LshParams(rescore=-1)


def keys(client: RedisClient, pattern: str) -> set[bytes]:
    return set(client.scan_iter(match=pattern, count=1000))


def test_dropping_a_collection_removes_its_keys_and_no_others(lsh_client: RedisClient) -> None:
    """Names that prefix each other ("c", "c2") keep apart: keys are `prefix:{name...}:...`."""
    store = store_with(lsh_client, clustered(1200))  # past the full-scan threshold: buckets used
    store.ensure_collection("c2", DIM)
    store.upsert("c2", [StoredPoint("x", clustered(1, seed=3)[0], {})])
    others = keys(lsh_client, "test:{c2[.}]*")
    assert len(keys(lsh_client, "test:{c.s*:b:*")) > 64  # bucket sets of every table
    assert store.drop_collection("c") > 1200
    assert keys(lsh_client, "test:{c[.}]*") == set() and keys(lsh_client, "test:{c2[.}]*") == others
    assert store.search("c2", clustered(1, seed=3)[0], 1, None).hits[0].id == "x"
    with pytest.raises(Exception, match="does not exist"):
        store.search("c", clustered(1)[0], 1, None)


def test_one_collection_spreads_over_every_cluster_master(redis_cluster: EmbeddedRedisCluster) -> None:
    """Each shard's keys share one slot (its hash tag); the 16 shards land on all three masters."""
    redis_cluster.flush()
    store = store_with(redis_cluster.client(), clustered(2000))
    per_master = redis_cluster.keys_per_master("test:{c.s*")
    assert len(per_master) == 3 and all(n > 0 for n in per_master.values()), per_master
    slots = {key_slot(f"test:{{c.s{shard:02d}}}:vec".encode()) for shard in range(CLUSTER_SHARDS)}
    assert len(slots) == CLUSTER_SHARDS
    assert store.count("c") == 2000
