"""The evaluation harness end to end on a small set: protocol, every index, files written."""

import json
from pathlib import Path

import pytest
from PIL import Image

from lab.eval.harness import run
from lab.eval.parents import load_mapping, parents_for
from lab.eval.protocol import split
from lab.eval.report import write
from lab.eval.results import Estimate, EvalResults
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
        {0: data},
        ["color_histogram"],
        ["exact", "kdtree", "lsh", "hnsw"],
        4,
        MODEL_REPOSITORY,
        {"set": "colours"},
    )
    model = results.models["color_histogram"]
    assert list(model.indexes) == ["exact", "kdtree", "lsh", "hnsw"]
    for index, outcome in model.indexes.items():
        assert outcome.at_k["precision"].mean == 1.0, index  # four same-colour images exist
        assert outcome.at_k["recall"].mean == 1.0, index
        assert outcome.ann_recall.mean == 1.0, index  # 12 images: every index is exact here
        assert outcome.search_ms.p50 > 0
    assert model.map_full.mean == 1.0
    assert set(model.per_class) == set(COLOURS) and model.per_class["red"]["precision"] == 1.0
    parents = {"red": "Warm", "green": "Cold", "blue": "Cold"}
    write(results, tmp_path / "out", parents)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["k"] == 4
    assert EvalResults.load(tmp_path / "out" / "results.json") == results  # the file reads back whole
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| color_histogram | lsh | 1.000 ± 0.000" in report
    assert "| Cold (2) | 1.000 |" in report
    for figure in ("models.png", "recall_vs_qps.png", "classes.png"):
        assert (tmp_path / "out" / figure).read_bytes()[:4] == b"\x89PNG"
        assert f"]({figure})" in report


def test_several_seeds_average_their_splits(colours: Path) -> None:
    splits = {seed: split(colours, 2, seed) for seed in (0, 1, 2)}
    results = run(splits, ["color_histogram"], ["exact"], 4, MODEL_REPOSITORY, {})
    model = results.models["color_histogram"]
    assert results.seeds == [0, 1, 2] and model.seeds == 3
    assert model.precision() == Estimate(mean=1.0, ci95=0.0)


def test_reviewed_parent_mapping_covers_caltech() -> None:
    mapping = load_mapping()
    assert set(mapping.values()) == {
        "Animals",
        "Miscellaneous",
        "Electronics",
        "Vehicles",
        "Nature",
        "Furniture",
        "Clothes",
        "Appliances",
    }
    assert mapping["emu"] == "Animals" and mapping["airplanes"] == "Vehicles"
    root = data_dir_or_skip(caltech_root())
    classes = {d.name for d in root.iterdir() if d.is_dir()} - {"BACKGROUND_Google", "Faces_easy"}
    assert parents_for(classes) == mapping and set(mapping) == classes
    assert parents_for({"not_a_caltech_class"}) is None


def test_pretrained_model_on_a_caltech_subset() -> None:
    data = split(data_dir_or_skip(caltech_root()), queries_per_class=2, seed=0, classes=4)
    results = run({0: data}, ["efficientnet_lite0"], ["exact", "hnsw"], 10, MODEL_REPOSITORY, {})
    model = results.models["efficientnet_lite0"]
    print(f"\nCaltech-101, 4 classes, 8 queries: P@10 {model.precision().mean:.2f}")
    assert model.precision().mean >= 0.7
    assert model.precision("hnsw") == model.precision("exact")


def test_text_model_suggests_parents_offline() -> None:
    from lab.eval.parents import suggest

    suggested = suggest(["airplanes", "dolphin", "sunflower", "laptop"])
    assert suggested == {
        "airplanes": "Vehicles",
        "dolphin": "Animals",
        "sunflower": "Nature",
        "laptop": "Electronics",
    }
