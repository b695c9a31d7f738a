"""The evaluation harness end to end on a small set: protocol, every index, files written."""

import json
from pathlib import Path

import pytest
from PIL import Image

from imsearch.eval.harness import run, write
from imsearch.eval.protocol import split
from tests.conftest import data_dir_or_skip
from tests.helpers import MODEL_REPOSITORY, caltech_root

COLOURS = {"red": (220, 5, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}  # shades stay in one bin


@pytest.fixture
def colours(tmp_path: Path) -> Path:
    """Three classes of flat images whose shade varies a little: trivially separable by colour."""
    for name, (r, g, b) in COLOURS.items():
        (tmp_path / "colours" / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (64, 48), (r, g + 3 * i, b)).save(tmp_path / "colours" / name / f"{i}.png")
    (tmp_path / "colours" / "BACKGROUND_Google").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "colours" / "BACKGROUND_Google" / "x.png")
    return tmp_path / "colours"


def test_protocol_keeps_queries_out_of_the_gallery(colours: Path) -> None:
    data = split(colours, queries_per_class=2, seed=1)
    assert len(data.queries) == 6 and len(data.gallery) == 12  # BACKGROUND_Google dropped
    assert not {q.path for q in data.queries} & {g.path for g in data.gallery}
    assert split(colours, 2, seed=1) == data  # the seed fixes the split
    with pytest.raises(ValueError, match="too few"):
        split(colours, queries_per_class=6)


def test_harness_scores_every_index_and_writes_the_report(colours: Path, tmp_path: Path) -> None:
    data = split(colours, queries_per_class=2)
    results = run(
        data, ["color_histogram"], ["exact", "kdtree", "lsh", "hnsw"], 4, MODEL_REPOSITORY, {"set": "colours"}
    )
    model = results["models"]["color_histogram"]
    for index, outcome in model["indexes"].items():
        assert outcome["at_k"]["precision"]["mean"] == 1.0, index  # four same-colour images exist
        assert outcome["at_k"]["recall"]["mean"] == 1.0, index
        assert outcome["search_ms"]["p50"] > 0
    assert model["map_full"]["mean"] == 1.0
    write(results, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "results.json").read_text())["k"] == 4
    assert "| color_histogram | lsh | 1.000 ± 0.000" in (tmp_path / "out" / "report.md").read_text()


def test_pretrained_model_on_a_caltech_subset() -> None:
    data = split(data_dir_or_skip(caltech_root()), queries_per_class=2, seed=0, classes=4)
    results = run(data, ["efficientnet_lite0"], ["exact", "hnsw"], 10, MODEL_REPOSITORY, {})
    outcome = results["models"]["efficientnet_lite0"]["indexes"]
    print(f"\nCaltech-101, 4 classes, 8 queries: P@10 {outcome['exact']['at_k']['precision']['mean']:.2f}")
    assert outcome["exact"]["at_k"]["precision"]["mean"] >= 0.7
    assert outcome["hnsw"]["at_k"]["precision"] == outcome["exact"]["at_k"]["precision"]
