"""Variants of an exported model: the same network embedding more views of each image
(test-time augmentation), served under a name of their own beside the original, so the two
can be compared or offered side by side. A variant is only a spec file: it runs its
network's ONNX file and Triton model (ModelSpec.runs)."""

from pathlib import Path

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
    folder = repository / variant.name
    folder.mkdir(exist_ok=True)
    (folder / SPEC_FILE).write_text(variant.model_dump_json(indent=2) + "\n")
    return variant
