"""The paper's experiments as data: each figure's perturbation, metric, levels and repeats.

A figure command is this table's row plus the shared machinery (`commands.figure`):
adding a figure of a registered perturbation is one row here and a three-line module
`replication/figureN.py`. Figures 3 and 4 share one results table (same perturbation,
same grid) and differ only in the metric they plot. Figure 5 is Figure 3's experiment
on the network the paper ran it on, VGG-16 (Keras Applications' VGG16), every layer in
network order.
"""

from dataclasses import dataclass

METRICS = {"top1": "top-1 accuracy", "top5": "top-5 accuracy"}


def steps(stop: float, step: float) -> tuple[float, ...]:
    """0, step, 2·step, … stop, rounded so that the levels read as written (0.3, not 0.30000000000000004)."""
    return tuple(round(i * step, 9) for i in range(round(stop / step) + 1))


@dataclass(frozen=True)
class Experiment:
    """One sweep and its figure."""

    number: int | None  # the paper's figure number; None for a sweep of one's own
    perturbation: str  # a registered perturbation's name
    metric: str  # "top5" or "top1"
    levels: tuple[float, ...]  # the default grid (level 0: the unperturbed network)
    repeats: int = 5  # random draws per layer and level
    model: str = "alexnet"  # the network the paper ran it on: the command's default --model

    @property
    def name(self) -> str:
        return f"figure{self.number}" if self.number is not None else f"sweep-{self.perturbation}"

    @property
    def label(self) -> str:
        """How titles and headings name it: "Figure 1", or "Sweep" for one's own."""
        return f"Figure {self.number}" if self.number is not None else "Sweep"


EXPERIMENTS = {
    1: Experiment(1, "synapse", "top5", steps(1.0, 0.1)),
    2: Experiment(2, "node", "top5", steps(1.0, 0.1)),
    3: Experiment(3, "gaussian", "top5", steps(2.0, 0.25)),
    4: Experiment(4, "gaussian", "top1", steps(2.0, 0.25)),
    5: Experiment(5, "gaussian", "top5", steps(2.0, 0.25), model="vgg16"),
}
