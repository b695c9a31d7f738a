"""The encoder's core: preprocess -> infer (micro-batched) -> postprocess, per model.

Only `infer` touches the runtime; decoding and preprocessing run on the request threads, so
CPU work of one request overlaps inference of another.
"""

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imsearch.core.deadline import current_deadline
from imsearch.core.errors import Cancelled, DeadlineExceeded, InvalidArgument, NotFound
from imsearch.core.metrics import ServiceMetrics
from imsearch.core.validation import validate_name
from services.encoder.augment import merge as merge_views
from services.encoder.augment import views as augment_views
from services.encoder.backends.base import InferenceBackend
from services.encoder.backends.classic import ColorHistogramBackend, OrbBagOfWordsBackend
from services.encoder.backends.onnxruntime import OnnxRuntimeBackend
from services.encoder.backends.triton import TritonBackend
from services.encoder.batcher import BatcherHooks, MicroBatcher
from services.encoder.images import Region, crop_region, decode_image, preprocess, validate_region
from services.encoder.model_spec import SPEC_FILE, ModelSpec
from services.encoder.settings import EncoderSettings
from services.encoder.thumbnails import make_thumbnail, validate_thumbnail_size
from services.encoder.tokenizer import clip_tokenizer

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    spec: ModelSpec
    backend: InferenceBackend
    batcher: MicroBatcher


@dataclass
class EncodedImages:
    spec: ModelSpec
    embeddings: np.ndarray  # (n, dim), L2-normalised
    thumbnails: list[bytes]  # one per image when asked for, else none


def l2_normalize(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    normalized: np.ndarray = features / np.maximum(norms, 1e-12)
    return normalized


def discover_models(repository: Path) -> list[ModelSpec]:
    """Every model folder in the repository that has a spec file."""
    return [ModelSpec.load(d) for d in sorted(repository.iterdir()) if (d / SPEC_FILE).is_file()]


class Encoder:
    def __init__(
        self,
        settings: EncoderSettings,
        metrics: ServiceMetrics,
        backends: dict[str, InferenceBackend] | None = None,
    ) -> None:
        """Loads the models; `backends` may supply ready runtimes (e.g. Triton) by model name."""
        self.settings = settings
        self._metrics = metrics
        self.models: dict[str, LoadedModel] = {}
        self.ensembles: dict[str, ModelSpec] = {}
        backends = backends or {}
        found = discover_models(settings.model_repository)
        wanted = set(settings.models)  # empty: every model; an ensemble brings its members
        wanted |= {member for spec in found if spec.name in wanted for member in spec.ensemble}
        for spec in found:
            if wanted and spec.name not in wanted:
                continue
            if spec.runtime == "ensemble":
                self.ensembles[spec.name] = spec  # checked once its members are loaded
                continue
            backend = backends.get(spec.name)
            if backend is None and spec.runtime == "color_histogram":
                backend = ColorHistogramBackend(spec.name)
            if backend is None and spec.runtime == "orb_bovw":
                codebook = np.load(settings.model_repository / spec.name / "codebook.npy")
                backend = OrbBagOfWordsBackend(spec.name, codebook)
            if backend is None and settings.backend == "triton":
                backend = TritonBackend(spec.network, settings.triton_url, settings.triton_timeout_s)
            if backend is None:
                onnx_path = spec.onnx_path(settings.model_repository)
                if not onnx_path.is_file() and not settings.models:
                    log.warning("skipping model %s: %s is not built", spec.name, onnx_path)
                    continue
                backend = OnnxRuntimeBackend(spec.name, onnx_path, settings.intra_op_threads)
            if backend.output_dim != spec.dim:
                raise ValueError(f"{spec.name}: model outputs {backend.output_dim}, spec says {spec.dim}")
            self.models[spec.name] = LoadedModel(spec, backend, self._batcher(spec.name, backend))
        for spec in self.ensembles.values():
            self._check_ensemble(spec)
        if settings.default_model not in self.models and settings.default_model not in self.ensembles:
            raise NotFound(
                f"default model {settings.default_model!r} not found in {settings.model_repository}"
            )

    def _batcher(self, name: str, backend: InferenceBackend) -> MicroBatcher:
        metrics = self._metrics
        sizes, fills = metrics.batch_size.labels(name), metrics.batch_fill.labels(name)

        def on_batch(size: int) -> None:
            sizes.observe(size)
            fills.observe(size / self.settings.max_batch)

        hooks = BatcherHooks(
            on_batch=on_batch,
            on_queue_wait=metrics.queue_wait_seconds.labels(name).observe,
            on_dropped=lambda reason: metrics.dropped.labels(name, reason).inc(),
        )
        batcher = MicroBatcher(
            backend.infer,
            max_batch=self.settings.max_batch,
            max_wait=self.settings.max_wait_ms / 1000.0,
            hooks=hooks,
            workers=self.settings.batch_workers,
            max_queue=self.settings.max_queue,
        )
        metrics.queue_depth.labels(name).set_function(lambda: batcher.depth)
        return batcher

    def _check_ensemble(self, spec: ModelSpec) -> None:
        missing = [m for m in spec.ensemble if m not in self.models]
        if missing:
            raise ValueError(f"{spec.name}: members {', '.join(missing)} are not served here")
        members = [self.models[m].spec for m in spec.ensemble]
        if any(m.modality != "image" for m in members):
            raise ValueError(f"{spec.name}: every member must be an image model")
        if spec.dim != sum(m.dim for m in members):
            raise ValueError(f"{spec.name}: dim {spec.dim} is not its members' {sum(m.dim for m in members)}")

    def specs(self) -> dict[str, ModelSpec]:
        """Every model served, ensembles included."""
        return {**{name: m.spec for name, m in self.models.items()}, **self.ensembles}

    def spec(self, name: str) -> ModelSpec:
        """A served model's spec, ensembles included ("" for the default)."""
        ensemble = self._ensemble(name)
        return ensemble if ensemble is not None else self.model(name).spec

    def _ensemble(self, name: str) -> ModelSpec | None:
        return self.ensembles.get(name or self.settings.default_model)

    def model(self, name: str) -> LoadedModel:
        loaded = self.models.get(validate_name("model", name) if name else self.settings.default_model)
        if loaded is None:
            raise NotFound(f"unknown model {name!r}; available: {', '.join(sorted(self.specs()))}")
        return loaded

    def encode(
        self, model_name: str, images: list[bytes], regions: Sequence[Region | None] = ()
    ) -> tuple[ModelSpec, np.ndarray]:
        """Encoded image files -> (spec, L2-normalised (n, dim) float32 embeddings); with
        `regions` (one per image, None for whole), only those parts of them."""
        encoded = self.encode_images(model_name, images, regions)
        return encoded.spec, encoded.embeddings

    def encode_images(
        self,
        model_name: str,
        images: list[bytes],
        regions: Sequence[Region | None] = (),
        thumbnail_size: int = 0,
    ) -> EncodedImages:
        """`encode`, and with `thumbnail_size` a JPEG thumbnail of each image (or region)."""
        validate_thumbnail_size(thumbnail_size)
        if not images:
            raise InvalidArgument("no images given")
        if regions and len(regions) != len(images):
            raise InvalidArgument(
                f"{len(regions)} regions for {len(images)} images: give one per image, or none"
            )
        if len(images) > self.settings.max_images_per_request:
            raise InvalidArgument(
                f"{len(images)} images in one request, over the limit of "
                f"{self.settings.max_images_per_request}"
            )
        ensemble = self._ensemble(model_name)
        if ensemble is not None:
            return self._encode_ensemble(ensemble, images, regions, thumbnail_size)
        loaded = self.model(model_name)
        if loaded.spec.modality != "image":
            raise InvalidArgument(f"model {loaded.spec.name!r} embeds texts, not images: send texts")
        prep = loaded.spec.image_preprocessing
        deadline = current_deadline()
        pixels, thumbnails = [], []
        for position, data in enumerate(images):
            try:
                deadline.check(f"decoding image {position}")  # the caller gone: no more work for it
            except (DeadlineExceeded, Cancelled) as gone:
                reason = "expired" if isinstance(gone, DeadlineExceeded) else "cancelled"
                self._metrics.dropped.labels(loaded.spec.name, reason).inc(len(images) - position)
                raise
            region = regions[position] if regions else None
            try:
                if region is not None:
                    validate_region(region)
            except InvalidArgument as exc:
                raise InvalidArgument(f"image {position}: {exc}") from None
            # JPEG draft decoding keeps enough resolution for the region to fill the model input.
            target = max(
                prep.resize if region is None else math.ceil(prep.resize / min(region[2], region[3], 1.0)),
                thumbnail_size,
            )
            try:
                with self._metrics.stage("decode"):
                    image = decode_image(
                        data,
                        self.settings.max_image_bytes,
                        self.settings.max_image_pixels,
                        target,
                        self.settings.max_image_aspect_ratio,
                    )
                    if region is not None:
                        image = crop_region(image, region, self.settings.max_image_aspect_ratio)
            except InvalidArgument as exc:
                raise InvalidArgument(f"image {position}: {exc}") from None
            with self._metrics.stage("preprocess"):
                pixels.append(preprocess(image, prep))
            if thumbnail_size:
                with self._metrics.stage("thumbnail"):
                    thumbnails.append(make_thumbnail(image, thumbnail_size))
        augment = loaded.spec.test_time_augmentation
        with self._metrics.stage("encode"):
            if augment:
                views = augment_views(np.stack(pixels), prep.layout, augment)
                features = merge_views([loaded.batcher.run(view, deadline) for view in views])
            else:
                features = loaded.batcher.run(np.stack(pixels), deadline)
        return EncodedImages(loaded.spec, l2_normalize(features), thumbnails)

    def _encode_ensemble(
        self, spec: ModelSpec, images: list[bytes], regions: Sequence[Region | None], thumbnail_size: int
    ) -> EncodedImages:
        """Each member decodes and embeds the images at its own preprocessing (a decode is about
        a quarter of a CNN member's CPU); the unit embeddings are joined, 1/sqrt(k) each. The
        first member makes the thumbnails."""
        parts = [
            self.encode_images(member, images, regions, thumbnail_size if i == 0 else 0)
            for i, member in enumerate(spec.ensemble)
        ]
        embeddings = [part.embeddings for part in parts]
        joined: np.ndarray = np.concatenate(embeddings, axis=1) / np.float32(np.sqrt(len(parts)))
        return EncodedImages(spec, joined, parts[0].thumbnails)

    def encode_texts(self, model_name: str, texts: list[str]) -> tuple[ModelSpec, np.ndarray]:
        """Strings -> (spec, L2-normalised (n, dim) embeddings) with a text model."""
        if len(texts) > self.settings.max_images_per_request:
            raise InvalidArgument(
                f"{len(texts)} texts in one request, over the limit of {self.settings.max_images_per_request}"
            )
        loaded = self.model(model_name)
        if loaded.spec.modality != "text":
            raise InvalidArgument(f"model {loaded.spec.name!r} embeds images, not texts")
        tokens = clip_tokenizer(loaded.spec.context_length).encode(texts)
        with self._metrics.stage("encode"):
            features = loaded.batcher.run(tokens, current_deadline())
        return loaded.spec, l2_normalize(features)

    def health_problem(self) -> str | None:
        dead = [name for name, loaded in self.models.items() if not loaded.batcher.alive]
        return f"inference workers stopped for {', '.join(dead)}" if dead else None

    def close(self) -> None:
        for loaded in self.models.values():
            loaded.batcher.close()
            loaded.backend.close()
