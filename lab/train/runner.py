"""`imsearch train KIND`: split -> train -> checkpoint + curves -> export into the model repository.

The training images are the gallery of the evaluation split made with the same dataset,
queries per class and seed (`lab.eval.protocol.split`), so no query image of that
evaluation is ever seen; a tenth of the gallery is held out for validation.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from lab.eval.protocol import split
from lab.train.autoencoder import AutoencoderParams, load_pixels, train_autoencoder
from lab.train.features import backbone_features
from lab.train.heads import HeadParams, train_head, train_tuned
from lab.train.history import History
from lab.train.splits import training_split
from lab.train.trunks import Tail, first_tuned_block, front_maps
from lab.zoo.export import export, export_if_missing
from lab.zoo.learned import head_checkpoint
from lab.zoo.modules import PooledFeatures
from lab.zoo.recipes import RECIPES, trained_head_recipe

Kind = Literal["head", "triplet", "autoencoder"]


@dataclass(frozen=True)
class TrainJob:
    kind: Kind
    dataset: Path
    name: str  # the model's name in the repository
    repository: Path
    out: Path  # checkpoint, history.json, curves.png
    backbone: str = "efficientnet_lite2"
    queries_per_class: int = 3
    seed: int = 0
    cache: Path | None = None  # backbone features, reused across runs
    classes: int | None = None  # a random subset of classes, as the evaluation's --classes
    tune_blocks: int = 0  # head/triplet: also fine-tune the backbone's last blocks (EfficientNet-Lite)


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    history: History
    train_images: int
    validation_images: int
    export_check: str


def train(
    job: TrainJob, head: HeadParams | None = None, autoencoder: AutoencoderParams | None = None
) -> TrainResult:
    data = split(job.dataset, job.queries_per_class, job.seed, job.classes)
    parts = training_split(data, seed=job.seed)
    train_labels, validation_labels = parts.label_ids(parts.train), parts.label_ids(parts.validation)
    title = f"{job.name}: {job.kind} on {job.dataset.name} (seed {job.seed})"
    job.out.mkdir(parents=True, exist_ok=True)
    checkpoint = job.out / f"{job.name}.pt"
    if job.kind == "autoencoder":
        params = dataclasses.replace(autoencoder or AutoencoderParams(), seed=job.seed)
        recipe = dataclasses.replace(RECIPES["autoencoder"], name=job.name)
        model, history = train_autoencoder(
            load_pixels([i.path for i in parts.train], recipe.preprocessing),
            train_labels,
            load_pixels([i.path for i in parts.validation], recipe.preprocessing),
            validation_labels,
            params,
            title,
        )
        torch.save(model.state_dict(), checkpoint)
    else:
        kind: Literal["dense", "triplet"] = "dense" if job.kind == "head" else "triplet"
        params_head = dataclasses.replace(head or HeadParams(), kind=kind, seed=job.seed)
        paths = [i.path for i in parts.train + parts.validation]
        n = len(parts.train)
        if job.tune_blocks:
            pooled = RECIPES[job.backbone].build("pretrained")
            if not isinstance(pooled, PooledFeatures):
                raise ValueError(f"--tune-blocks needs an EfficientNet-Lite backbone, not {job.backbone}")
            first = first_tuned_block(pooled, job.tune_blocks)
            cache = job.cache or job.out / "cache"
            maps = front_maps(pooled, first, RECIPES[job.backbone].preprocessing, paths, cache, job.backbone)
            trained, history = train_tuned(
                Tail(pooled, first), RECIPES[job.backbone].dim, maps[:n], train_labels, maps[n:],
                validation_labels, params_head, f"{title}, last {job.tune_blocks} blocks tuned",
            )  # fmt: skip
            torch.save(head_checkpoint(job.backbone, trained, kind, pooled), checkpoint)
        else:
            export_if_missing(RECIPES[job.backbone], job.repository)
            features = backbone_features(job.repository, job.backbone, paths, job.cache)
            trained, history = train_head(
                features[:n], train_labels, features[n:], validation_labels, params_head, title
            )
            torch.save(head_checkpoint(job.backbone, trained, kind), checkpoint)
        recipe = trained_head_recipe(job.name, checkpoint)
    history.save(job.out)
    check = export(recipe, job.repository, str(checkpoint))
    return TrainResult(checkpoint, history, len(parts.train), len(parts.validation), check.describe())
