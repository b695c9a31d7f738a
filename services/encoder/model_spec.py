"""A model's preprocessing and provenance, kept as data next to the model (`imsearch.json`).

Layout of one model in the repository (Triton's layout plus our spec file):

    model_repository/<name>/imsearch.json    this spec
    model_repository/<name>/config.pbtxt     Triton's config
    model_repository/<name>/1/model.onnx     built by the export command, not committed
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

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
    preprocessing: Preprocessing
    weights: str = Field(description="where the weights come from, for `models list`")
    # "onnx": 1/model.onnx run by onnxruntime or Triton; otherwise a built-in classic feature.
    runtime: Literal["onnx", "color_histogram", "orb_bovw"] = "onnx"

    @classmethod
    def load(cls, model_dir: Path) -> "ModelSpec":
        return cls.model_validate_json((model_dir / SPEC_FILE).read_text())

    def onnx_path(self, repository: Path, version: int = 1) -> Path:
        return repository / self.name / str(version) / "model.onnx"
