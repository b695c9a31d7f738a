"""Crash consistency, repeatably: SIGKILL of the index process, then of its Redis, during
upserts; after each restart every acknowledged point is stored and the stores agree
(two rounds of `bench.chaos`'s index chaos; the benchmark runs more)."""

import random
from pathlib import Path

from bench.chaos import index_chaos


def test_no_acknowledged_upsert_is_lost_and_the_stores_agree_after_sigkill(tmp_path: Path) -> None:
    lines: list[str] = []
    outcome = index_chaos(tmp_path, rounds=2, rng=random.Random(0), report=lines.append)
    assert outcome.kills == 2 and len(lines) == 2
    assert "killed index" in lines[0] and "killed redis" in lines[1]
    assert all(" 0 acknowledged not stored" in line for line in lines), lines
    assert (outcome.lost, outcome.inconsistencies) == (0, 0), lines
    assert int(lines[0].split(";")[1].split()[0]) > 0  # some upserts were acknowledged before the kill
