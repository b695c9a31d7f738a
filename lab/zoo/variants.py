"""Models made of exported ones, each only a spec file served beside them: a variant embeds
more views of each image with the same network (test-time augmentation; it runs its
network's ONNX file and Triton model, ModelSpec.runs), and an ensemble joins the embeddings of
several models (normalised concatenation, ModelSpec.ensemble)."""

from pathlib import Path

from imsearch.core.validation import validate_name
from services.encoder.augment import Augmentation
from services.encoder.model_spec import SPEC_FILE, ModelSpec


def write_augmented_variant(repository: Path, base: str, augment: tuple[Augmentation, ...]) -> ModelSpec:
    """Writes <repository>/<base>_<augment...>/imsearch.json and returns its spec."""
    original = ModelSpec.load(repository / base)
    if original.runs:
        raise ValueError(f"{base} is itself a variant of {original.runs}: make one of {original.runs}")
    if not augment:
        raise ValueError("name at least one augmentation")
    variant = original.model_copy(
        update={
            "name": "_".join([base, *augment]),
            "test_time_augmentation": augment,
            "runs": base,
            "weights": f"{original.weights}; views: original + {', '.join(augment)}",
        }
    )
    ModelSpec.model_validate(variant.model_dump())  # the same checks as a loaded spec
    return _write(repository, variant)


def write_ensemble(repository: Path, name: str, members: tuple[str, ...]) -> ModelSpec:
    """Writes <repository>/<name>/imsearch.json: the members' unit embeddings, concatenated."""
    if len(members) < 2 or len(set(members)) != len(members):
        raise ValueError("an ensemble needs two or more different members")
    specs = [ModelSpec.load(repository / member) for member in members]
    if any(spec.modality != "image" or spec.runtime == "ensemble" for spec in specs):
        raise ValueError("every member must be an image model (not an ensemble)")
    ensemble = ModelSpec(
        name=name,
        dim=sum(spec.dim for spec in specs),
        runtime="ensemble",
        ensemble=members,
        weights="ensemble of " + ", ".join(members),
    )
    return _write(repository, ensemble)


def _write(repository: Path, spec: ModelSpec) -> ModelSpec:
    folder = repository / validate_name("model", spec.name)
    folder.mkdir(exist_ok=True)
    (folder / SPEC_FILE).write_text(spec.model_dump_json(indent=2) + "\n")
    return spec
