"""A small run of the whole study (`imsearch study`) on two cosplay characters."""

import shutil
from pathlib import Path

from lab.eval.study import SETS, TRAINED, StudyOptions, StudySet, rewrite_report, run_study
from tests.conftest import data_dir_or_skip
from tests.helpers import DATA, MODEL_REPOSITORY, REPO


def test_study_writes_the_report_with_every_part(tmp_path: Path) -> None:
    data = data_dir_or_skip(DATA / "cosplay").parent
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    (work / "models" / "efficientnet_lite0").symlink_to(MODEL_REPOSITORY / "efficientnet_lite0")
    options = StudyOptions(
        data, tmp_path / "docs", work, seeds=(0,), classes=2, trained=(TRAINED[0],),
        pretrained=("efficientnet_lite0",), backbone="efficientnet_lite0",
    )  # fmt: skip
    report = run_study(options, "imsearch study --classes 2", (StudySet("cosplay", 10),)).read_text()
    out = tmp_path / "docs" / "results" / "cosplay"
    for figure in (
        "models.png",
        "recall_vs_qps.png",
        "classes.png",
        "curves_head.png",
    ):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG", figure
        assert f"results/cosplay/{figure})" in report
    for row in (
        "efficientnet_lite0",
        "color_histogram",
        "orb_bovw",
        "dense head on efficientnet_lite0 (trained here)",
    ):
        assert f"| {row} | exact |" in report and f"| {row} | lsh |" in report, row
    assert "| cosplay | DINOv2 | 0.96 |" in report  # the study's figure beside ours
    assert "`dinov2_s14`" in report  # listed as having no real weights here, with no numbers
    # 20 queries (10 per character) never trained on: the head is trained on the gallery's 90%.
    assert "queries = 20" in report and "training and" in report


def test_report_only_rewrites_the_committed_results_unchanged(tmp_path: Path) -> None:
    """The committed study's results.json files read back into the typed results and write the
    same results.json, report.md and results.md (`imsearch study --report-only`)."""
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    options = StudyOptions(DATA, docs, tmp_path / "work")
    assert rewrite_report(options, "imsearch study") == docs / "results.md"
    for path in [
        "results.md",
        *(f"results/{s.name}/{f}" for s in SETS for f in ("results.json", "report.md")),
    ]:
        assert (docs / path).read_text() == (REPO / "docs" / path).read_text(), path
