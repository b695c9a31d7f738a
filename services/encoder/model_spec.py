"""A model's preprocessing and provenance, kept as data next to the model (`imsearch.json`).

Layout of one model in the repository (Triton's layout plus our spec file):

    model_repository/<name>/imsearch.json    this spec
    model_repository/<name>/config.pbtxt     Triton's config
    model_repository/<name>/1/model.onnx     built by the export command, not committed
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from services.encoder.augment import Augmentation

SPEC_FILE = "imsearch.json"


class Preprocessing(BaseModel):
    resize: int = Field(gt=0, description="shorter side is resized to this many pixels")
    crop_size: int = Field(gt=0, description="then a centre crop of this size is taken")
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"


class ModelSpec(BaseModel):
    name: str
    dim: int = Field(gt=0)
    preprocessing: Preprocessing | None = None  # image models only
    weights: str = Field(description="where the weights come from, for `models list`")
    # "onnx": 1/model.onnx run by onnxruntime or Triton; otherwise a built-in classic feature.
    # "ensemble": no network of its own; the `ensemble` members' embeddings, concatenated.
    runtime: Literal["onnx", "color_histogram", "orb_bovw", "ensemble"] = "onnx"
    # "image" models embed image files; "text" models embed strings (CLIP's tokenizer) into
    # the space of the image model named by `pairs_with` (a CLIP text tower and its image tower).
    modality: Literal["image", "text"] = "image"
    pairs_with: str = ""
    context_length: int = Field(default=77, gt=1)
    # Test-time views (services.encoder.augment): each one more inference per image.
    test_time_augmentation: tuple[Augmentation, ...] = ()
    # A variant (other views of the same network) runs this model's ONNX file and Triton model.
    runs: str = ""
    # An ensemble's members (image models of the same repository): each embeds the image, and
    # the unit embeddings are concatenated, each weighted 1/sqrt(k), so the result is a unit
    # vector whose cosine is the members' mean cosine. dim is the sum of theirs.
    ensemble: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> "ModelSpec":
        if (self.runtime == "ensemble") != bool(self.ensemble):
            raise ValueError(f"{self.name}: an ensemble names its members, and only an ensemble does")
        if self.modality == "image" and self.preprocessing is None and self.runtime != "ensemble":
            raise ValueError(f"{self.name}: an image model needs its preprocessing")
        if self.modality == "text" and not self.pairs_with:
            raise ValueError(f"{self.name}: a text model names the image model it pairs with")
        if self.test_time_augmentation and (self.modality != "image" or self.runtime != "onnx"):
            raise ValueError(f"{self.name}: test-time augmentation is for ONNX image models")
        return self

    @property
    def image_preprocessing(self) -> Preprocessing:
        if self.preprocessing is None:
            raise ValueError(f"{self.name} is a {self.modality} model: it has no image preprocessing")
        return self.preprocessing

    @classmethod
    def load(cls, model_dir: Path) -> "ModelSpec":
        return cls.model_validate_json((model_dir / SPEC_FILE).read_text())

    @property
    def network(self) -> str:
        """The model folder (and Triton model) whose network this one runs."""
        return self.runs or self.name

    def onnx_path(self, repository: Path, version: int = 1) -> Path:
        return repository / self.network / str(version) / "model.onnx"
