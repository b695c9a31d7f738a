"""The LSH bucket store against a real redis-server."""

import numpy as np
import pytest
import redis

from services.index.stores.base import StoredPoint
from services.index.stores.redis_lsh import LshParams, RedisLshStore

DIM = 64


def clustered(n: int, clusters: int = 20, seed: int = 0, spread: float = 0.35) -> np.ndarray:
    """Points around 20 fixed centres (the same for every seed), as image embeddings cluster."""
    centres = np.random.default_rng(1234).standard_normal((clusters, DIM))
    rng = np.random.default_rng(seed)
    points = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def store_with(client: redis.Redis, vectors: np.ndarray, **params: int) -> RedisLshStore:
    store = RedisLshStore(client, LshParams(**params), prefix="test")
    store.ensure_collection("c", DIM)
    points = [StoredPoint(str(i), v, {"parity": i % 2}) for i, v in enumerate(vectors)]
    for start in range(0, len(points), 500):
        store.upsert("c", points[start : start + 500])
    return store


def test_signatures_are_deterministic_across_processes(redis_client: redis.Redis) -> None:
    vectors = clustered(10)
    first = store_with(redis_client, vectors)
    second = RedisLshStore(redis_client, LshParams(), prefix="test")  # a fresh process, same Redis
    np.testing.assert_array_equal(first.signatures("c", vectors), second.signatures("c", vectors))


def test_recall_against_exact_search_with_a_fraction_scored(redis_client: redis.Redis) -> None:
    vectors = clustered(4000)
    store = store_with(redis_client, vectors, tables=12, bits=10, full_scan_threshold=0)
    queries = clustered(50, seed=1)
    recalls, scored = [], []
    for query in queries:
        truth = set(np.argsort(-(vectors @ query))[:10].astype(str))
        hits, n = store.search("c", query, 10, None)
        recalls.append(len(truth & {h.id for h in hits}) / 10)
        scored.append(n / len(vectors))
    assert np.mean(recalls) >= 0.9
    assert np.mean(scored) <= 0.5


def test_replacing_a_point_leaves_its_old_buckets(redis_client: redis.Redis) -> None:
    vectors = clustered(20)
    store = store_with(redis_client, vectors, full_scan_threshold=0)
    moved = -vectors[0]  # the opposite direction: every signature bit flips
    store.upsert("c", [StoredPoint("0", moved, {"parity": 0})])
    assert store.count("c") == 20
    hits, _ = store.search("c", vectors[0], 1, None)
    assert not hits or hits[0].id != "0"
    hits, _ = store.search("c", moved, 1, None)
    assert hits[0].id == "0" and hits[0].score == pytest.approx(1.0, abs=1e-3)


def test_delete_and_filter(redis_client: redis.Redis) -> None:
    vectors = clustered(30)
    store = store_with(redis_client, vectors)
    store.delete("c", ["1", "2", "missing"])
    assert store.count("c") == 28
    assert {"1", "2"}.isdisjoint(store.iter_ids("c"))
    hits, scored = store.search("c", vectors[3], 30, {"parity": 1})
    assert scored == 28  # small collection: full scan
    assert hits and all(int(h.id) % 2 == 1 for h in hits)


def test_the_centre_is_fitted_at_the_threshold_and_earlier_points_rehashed(redis_client: redis.Redis) -> None:
    vectors = clustered(300)
    store = store_with(redis_client, vectors[:99], full_scan_threshold=100)
    assert store.search("c", vectors[5], 1, None)[1] == 99  # below the threshold: full scan
    store.upsert("c", [StoredPoint(str(i), vectors[i], {}) for i in range(99, 300)])
    fresh = RedisLshStore(redis_client, LshParams(full_scan_threshold=100), prefix="test")  # reads the centre
    for store_ in (store, fresh):
        hits, scored = store_.search("c", vectors[5], 1, None)
        assert hits[0].id == "5"  # a point stored before the centre existed is found in its buckets
        assert scored < 300


def test_probe_order_flips_the_least_certain_bits_first() -> None:
    from services.index.stores.redis_lsh import probe_flips

    margins = np.array([0.9, 0.1, 0.5, 0.05])
    assert probe_flips(margins, 4) == [0, 0b1000, 0b0010, 0b1010]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        LshParams(bits=40)
    with pytest.raises(ValueError):
        LshParams(probes=0)
