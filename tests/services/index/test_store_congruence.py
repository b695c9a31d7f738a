"""The embedded (qdrant-edge) and server (qdrant-client) adapters answer the same queries alike.

The server adapter runs here against qdrant-client's local mode: the same client API that talks
to a Qdrant server in production, so this checks our adapter code, not Qdrant itself.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from imsearch.core.filters import Filter
from services.index.stores.base import CollectionSpec, StoredPoint, VectorStore
from services.index.stores.qdrant_edge import SPEC_FILE, QdrantEdgeStore
from services.index.stores.qdrant_server import QdrantServerStore

DIM = 32


@pytest.fixture(params=["edge", "client"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    made: VectorStore = (
        QdrantEdgeStore(tmp_path / "qdrant")
        if request.param == "edge"
        else QdrantServerStore(location=":memory:")
    )
    made.create_collection("c", CollectionSpec(DIM, "m"))
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, DIM)).astype(np.float32)
    made.upsert("c", [StoredPoint(f"p{i}", v, {"label": f"l{i % 3}", "n": i}) for i, v in enumerate(vectors)])
    yield made
    made.close()


def expected_top(query: np.ndarray, k: int, keep: set[int] | None = None) -> list[str]:
    vectors = np.random.default_rng(0).standard_normal((300, DIM)).astype(np.float32)
    scores = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ (query / np.linalg.norm(query))
    order = [int(i) for i in np.argsort(-scores) if keep is None or int(i) in keep]
    return [f"p{i}" for i in order[:k]]


def test_exact_search_matches_brute_force(store: VectorStore) -> None:
    query = np.random.default_rng(5).standard_normal(DIM).astype(np.float32)
    hits = store.search("c", query, 10, None, exact=True, with_vectors=False)
    assert [h.id for h in hits] == expected_top(query, 10)


def test_filter_and_metadata(store: VectorStore) -> None:
    query = np.random.default_rng(6).standard_normal(DIM).astype(np.float32)
    hits = store.search("c", query, 5, Filter.of({"label": "l1"}), exact=True, with_vectors=True)
    assert [h.id for h in hits] == expected_top(query, 5, keep={i for i in range(300) if i % 3 == 1})
    assert all(h.metadata["label"] == "l1" for h in hits)
    assert all(h.vector is not None and h.vector.shape == (DIM,) for h in hits)


def test_replace_delete_retrieve_and_iterate(store: VectorStore) -> None:
    store.upsert("c", [StoredPoint("p0", np.ones(DIM, np.float32), {"label": "new"})])
    store.delete("c", ["p1", "missing"])
    assert store.count("c") == 299
    (p0,) = store.retrieve("c", ["p0"])
    assert p0.metadata == {"label": "new"}
    np.testing.assert_allclose(p0.vector, np.ones(DIM) / np.sqrt(DIM), atol=1e-6)
    assert store.retrieve("c", ["p1"]) == []
    batches = list(store.iter_points("c", batch=64))
    assert len({p.id for batch in batches for p in batch}) == 299 and max(map(len, batches)) <= 64
    light = [p for batch in store.iter_points("c", batch=64, with_vectors=False) for p in batch]
    assert len(light) == 299 and all(p.vector.size == 0 and p.digest for p in light)
    (bare,) = store.retrieve("c", ["p0"], with_vectors=False)
    assert (bare.vector.size, bare.metadata, bare.digest) == (0, {"label": "new"}, p0.digest)
    assert store.collections() == {"c": CollectionSpec(DIM, "m")}


def test_the_qdrant_api_key_never_travels_in_clear_text() -> None:
    with pytest.raises(ValueError, match="only over https"):
        QdrantServerStore(url="http://qdrant:6333", api_key="secret")


def test_an_unreachable_qdrant_server_is_unavailable_not_internal() -> None:
    from devtools.ports import free_port
    from imsearch.core.errors import Unavailable

    store = QdrantServerStore(url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(Unavailable, match="qdrant unreachable"):
        store.collections()


def test_dropping_a_collection_removes_it_and_a_new_one_starts_empty(store: VectorStore) -> None:
    assert store.drop_collection("c") and not store.drop_collection("c")
    assert store.collections() == {}
    store.create_collection("c", CollectionSpec(DIM, "other"))
    assert store.collections() == {"c": CollectionSpec(DIM, "other")} and store.count("c") == 0


def test_the_embedded_store_keeps_each_model_across_a_restart(tmp_path: Path) -> None:
    first = QdrantEdgeStore(tmp_path / "qdrant")
    first.create_collection("bound", CollectionSpec(DIM, "m"))
    first.create_collection("legacy", CollectionSpec(DIM, "m"))
    first.close()
    (tmp_path / "qdrant" / "legacy" / SPEC_FILE).unlink()  # as shards made before bindings
    again = QdrantEdgeStore(tmp_path / "qdrant")
    assert again.collections() == {"bound": CollectionSpec(DIM, "m"), "legacy": CollectionSpec(DIM, "")}
    again.close()
