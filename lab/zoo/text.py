"""CLIP ViT-B/32's text tower, exported beside its image tower for text-to-image search.

    imsearch models export clip_vit_b32_text [--weights pretrained|random|PATH]

Inputs are token ids and an attention mask (int64, 77 positions, CLIP's tokenizer); the
output is the 512-d projected text embedding, in the same space as `clip_vit_b32` image
embeddings. The folder's imsearch.json marks it a text model paired with that image model, so
the encoder serves it and the gateway uses it for text search in `clip_vit_b32` collections.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from lab.zoo.export import FP32_TOLERANCE, ExportResult

NAME = "clip_vit_b32_text"
HUB_ID = "openai/clip-vit-base-patch32"
CONTEXT = 77
CLIP_B32_TEXT: dict[str, Any] = {
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_attention_heads": 8,
    "num_hidden_layers": 12,
    "max_position_embeddings": CONTEXT,
    "vocab_size": 49408,
    "projection_dim": 512,
}
TRITON_CONFIG = f"""\
# Triton config for the GPU build of Triton (onnxruntime backend). Written by the export command.
name: "{NAME}"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [
  {{ name: "input_ids", data_type: TYPE_INT64, dims: [ {CONTEXT} ] }},
  {{ name: "attention_mask", data_type: TYPE_INT64, dims: [ {CONTEXT} ] }}
]
output [ {{ name: "embedding", data_type: TYPE_FP32, dims: [ 512 ] }} ]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
instance_group [ {{ count: 1, kind: KIND_GPU }} ]
"""


class TextEmbeddings(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embeds: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).text_embeds
        return embeds


def build(weights: str, config: dict[str, Any] | None = None) -> torch.nn.Module:
    import transformers

    torch.manual_seed(0)
    if weights == "pretrained":
        model = transformers.CLIPTextModelWithProjection.from_pretrained(HUB_ID)
    else:
        model = transformers.CLIPTextModelWithProjection(
            transformers.CLIPTextConfig(**(config or CLIP_B32_TEXT))
        )
        if weights != "random":
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return TextEmbeddings(model).eval()


def sample_tokens(count: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token sequences of different lengths: start token, random ids, end token, padding."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((count, CONTEXT), dtype=np.int64)
    mask = np.zeros((count, CONTEXT), dtype=np.int64)
    for row, length in enumerate(rng.integers(4, CONTEXT, count)):
        ids[row, :length] = [49406, *rng.integers(1, 49405, length - 2), 49407]
        mask[row, :length] = 1
    return ids, mask


def export_text_tower(
    out: Path,
    weights: str = "pretrained",
    name: str = NAME,
    pairs_with: str = "clip_vit_b32",
    config: dict[str, Any] | None = None,
) -> ExportResult:
    """`config` (random weights only) sizes the architecture, e.g. a tiny one for tests."""
    model = build(weights, config)
    dim = int((config or CLIP_B32_TEXT)["projection_dim"])
    onnx_path = out / name / "1" / "model.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    ids, mask = sample_tokens()
    axes = {"input_ids": {0: "batch"}, "attention_mask": {0: "batch"}, "embedding": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.from_numpy(ids[:2]), torch.from_numpy(mask[:2])),
            str(onnx_path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
        expected = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    diff = float(np.abs(np.asarray(got) - expected).max())
    if diff > FP32_TOLERANCE:
        raise SystemExit(f"{name}: onnxruntime differs from PyTorch by {diff:.2e}")
    triton = TRITON_CONFIG.replace(f'"{NAME}"', f'"{name}"').replace("dims: [ 512 ]", f"dims: [ {dim} ]")
    (out / name / "config.pbtxt").write_text(triton)
    spec = {
        "name": name,
        "dim": dim,
        "weights": "pretrained, hub " + HUB_ID
        if weights == "pretrained"
        else f"{weights} (no accuracy claimed)",
        "modality": "text",
        "pairs_with": pairs_with,
        "context_length": CONTEXT,
    }
    (out / name / "imsearch.json").write_text(json.dumps(spec, indent=2) + "\n")
    return ExportResult(onnx_path, diff, float(np.abs(expected).max()), f"{len(ids)} token sequences")
