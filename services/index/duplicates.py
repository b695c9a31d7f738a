"""Near-duplicate groups: points joined by cosine >= a threshold, found point by point.

Each stored point asks the HNSW graph for its nearest neighbours; every pair above the
threshold joins their groups (union-find). Memory holds the points that have a duplicate,
never the collection.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from services.index.stores.base import ScoredPoint, StoredPoint


@dataclass
class DuplicateGroups:
    groups: list[tuple[list[str], float]]  # sorted ids, the weakest joining score; largest first
    points_scanned: int
    groups_found: int


def find_groups(
    batches: Iterable[list[StoredPoint]],
    neighbours_of: Callable[[StoredPoint], list[ScoredPoint]],
    min_score: float,
    max_groups: int,
) -> DuplicateGroups:
    parent: dict[str, str] = {}
    weakest: dict[str, float] = {}  # per root

    def root(point_id: str) -> str:
        parent.setdefault(point_id, point_id)
        while parent[point_id] != point_id:
            parent[point_id] = parent[parent[point_id]]  # path halving
            point_id = parent[point_id]
        return point_id

    scanned = 0
    for batch in batches:
        for point in batch:
            scanned += 1
            for hit in neighbours_of(point):
                if hit.id == point.id or hit.score < min_score:
                    continue
                a, b = root(point.id), root(hit.id)
                low = min(weakest.get(a, 1.0), weakest.get(b, 1.0), hit.score)
                if a != b:
                    parent[b] = a
                    weakest.pop(b, None)
                weakest[a] = low
    members: dict[str, list[str]] = {}
    for point_id in parent:
        members.setdefault(root(point_id), []).append(point_id)
    groups = sorted(
        ((sorted(ids), weakest.get(r, 1.0)) for r, ids in members.items() if len(ids) > 1),
        key=lambda group: (-len(group[0]), group[0]),
    )
    return DuplicateGroups(groups[:max_groups], scanned, len(groups))
