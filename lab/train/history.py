"""What a training run records per epoch, and its curves as a PNG (the study's figure 1)."""

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")  # no screen here; PNGs only
import matplotlib.pyplot as plt

log = logging.getLogger(__name__)


def precision_at_k(
    queries: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray, k: int
) -> float:
    """Mean P@k of each query's top k gallery images by cosine (embeddings L2-normalised)."""
    top = np.argsort(-(queries @ gallery.T), axis=1)[:, :k]
    return float((gallery_labels[top] == query_labels[:, None]).mean())


@dataclass
class History:
    title: str
    loss_name: str
    k: int
    loss: list[float] = field(default_factory=list)  # mean training loss per epoch
    validation_precision: list[float] = field(default_factory=list)  # P@k of held-out gallery images
    best_epoch: int = 0  # 1-based; the weights kept are this epoch's

    def record(self, loss: float, precision: float) -> bool:
        """Adds an epoch; True when it is the best so far on validation."""
        self.loss.append(loss)
        self.validation_precision.append(precision)
        if precision > max(self.validation_precision[:-1], default=-1.0):
            self.best_epoch = len(self.loss)
            return True
        return False

    def save(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "history.json").write_text(json.dumps(asdict(self), indent=2) + "\n")
        plot_curves(self, out / "curves.png")


def plot_curves(history: History, path: Path) -> None:
    epochs = range(1, len(history.loss) + 1)
    figure, (loss_axis, precision_axis) = plt.subplots(1, 2, figsize=(9, 3.4))
    loss_axis.plot(epochs, history.loss, color="tab:red")
    loss_axis.set(xlabel="epoch", ylabel=history.loss_name, title="training loss")
    precision_axis.plot(epochs, history.validation_precision, color="tab:blue")
    precision_axis.axvline(history.best_epoch, color="grey", linestyle=":", label="kept")
    precision_axis.set(xlabel="epoch", ylabel=f"P@{history.k}", title="validation precision", ylim=(0, 1))
    precision_axis.legend(loc="lower right")
    figure.suptitle(history.title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


class BestEpoch:
    """Scores each epoch on the held-out images and keeps the weights of the best one."""

    def __init__(self, module: torch.nn.Module, history: History) -> None:
        self._module = module
        self.history = history
        self._best = self._copy()

    def _copy(self) -> dict[str, torch.Tensor]:
        return {name: value.clone() for name, value in self._module.state_dict().items()}

    def end_epoch(
        self,
        losses: list[float],
        validation: np.ndarray,
        validation_labels: list[int],
        train: np.ndarray,
        train_labels: list[int],
    ) -> None:
        """`validation` and `train` are the epoch's embeddings of the two image sets."""
        precision = precision_at_k(
            validation, np.asarray(validation_labels), train, np.asarray(train_labels), self.history.k
        )
        if self.history.record(float(np.mean(losses)), precision):
            self._best = self._copy()
        log.info("%s: epoch %d loss %.4f validation P@%d %.3f", self.history.title, len(self.history.loss),
                 self.history.loss[-1], self.history.k, precision)  # fmt: skip

    def restore(self) -> None:
        self._module.load_state_dict(self._best)
        self._module.eval()
