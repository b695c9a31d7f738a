"""One index's search figures: recall@K and QPS per core at half the size and at the full size."""

from dataclasses import dataclass

from bench.capacity.rates import Rate


@dataclass
class SearchFigures:
    label: str
    recall_half: float  # at half the size
    recall: float
    rate_half: Rate
    rate: Rate
    candidates: float = 0.0  # LSH: mean fraction of the collection in the probed buckets

    @property
    def qps(self) -> float:
        """Queries per CPU-second at the full size: QPS per core."""
        return self.rate.cpu

    @property
    def qps_half(self) -> float:
        return self.rate_half.cpu
