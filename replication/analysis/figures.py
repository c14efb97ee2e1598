"""The paper's figures (and any sweep's) from a results table.

Each figure is one panel: accuracy against perturbation level, one line per layer in
network order, error bars one standard deviation over the repeats, and a dashed line
at chance. Level 0 of every line is the shared unperturbed baseline. Matplotlib's
object API is used without pyplot, so saving needs no display and uses the Agg
renderer whatever backend the caller (a notebook, say) has selected.
"""

from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from replication.analysis.experiments import METRICS, Experiment
from replication.analysis.stats import DDOF, curve
from replication.files import atomic_output
from replication.perturb.registry import get_perturbation

# Guessing uniformly among 1000 classes: 5 chances in 1000 for top-5, 1 for top-1.
CHANCE = {"top5": 0.005, "top1": 0.001}


def curves(table: pd.DataFrame, perturbation: str, metric: str, layers, ddof: int = DDOF) -> dict[str, pd.DataFrame]:
    """Per layer with trials: level, mean, std (with `ddof`), n; level 0 is the baseline."""
    out = {}
    for layer in layers:
        if ((table["layer"] == layer) & (table["perturbation"] == perturbation)).any():
            out[layer] = curve(table, layer, perturbation, metric, ddof=ddof)
    return out


def plot_figure(table: pd.DataFrame, experiment: Experiment, layers, model_title: str, ddof: int = DDOF) -> Figure:
    """The paper's layout for an experiment.

    Args:
        table: the results (`run.table.read_table`, or `run.grid.grid_table`).
        experiment: which perturbation and metric to draw (`experiments.EXPERIMENTS`).
        layers: the layers to draw, in network order: one line each.
        model_title: the model's name in the title.
        ddof: of the error bars' standard deviation (1 ours, 0 the authors' plots).

    Returns:
        A matplotlib Figure (no pyplot state); `save_figure` writes it.
    """
    spec = experiment
    perturbation = get_perturbation(spec.perturbation)
    lines = curves(table, spec.perturbation, spec.metric, layers, ddof)
    crowded = len(lines) > 10  # a deep model: the legend goes beside the panel, not over it
    fig = Figure(figsize=(8.8 if crowded else 6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    handles = []
    for style, (layer, line) in zip(line_styles(len(lines)), lines.items()):
        bars = line["std"].fillna(0.0)  # one repeat has no spread to show
        handles.append(ax.errorbar(line["level"], line["mean"], yerr=bars, label=layer, markersize=3.5, linewidth=1.2,
                                   capsize=2.5, elinewidth=0.8, **style))
    chance = CHANCE[spec.metric]
    guesses = 5 if spec.metric == "top5" else 1
    handles.append(ax.axhline(chance, color="0.3", linestyle=(0, (1, 2)), linewidth=1.2,
                              label=f"chance ({chance:g} = {guesses} of 1000 classes)"))
    levels = [level for line in lines.values() for level in line["level"]] or [0.0, 1.0]
    # A margin on every side, so that the points and error bars at the ends are drawn whole.
    low, high = min(levels), max(levels)
    pad = 0.03 * ((high - low) or 1.0)
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(perturbation.level_label)
    ax.set_ylabel(METRICS[spec.metric])
    images = int(table["images"].iloc[0]) if len(table) else 0
    repeats = max((int(line["n"].max()) for line in lines.values()), default=0)
    # Two lines: a long model title (a synthetic network says so) must not run off the page.
    ax.set_title(f"{spec.label}. {perturbation.title}, {model_title}\n"
                 f"{images} images, {repeats} repeat{'s' * (repeats != 1)}, error bars ±1 SD (ddof {ddof})", fontsize=9)
    if crowded:
        fig.legend(handles=handles, fontsize=6, ncol=1 + len(handles) // 20, loc="outside right center", frameon=False)
    else:
        ax.legend(handles=handles, fontsize=7, loc="best", frameon=False)
    ax.grid(alpha=0.25, linewidth=0.5)
    return fig


_LINE_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D")


def line_styles(n: int) -> list[dict]:
    """Matplotlib styles that keep n lines apart: the ten colours of a qualitative palette,
    then the same colours again with another dash pattern and marker, so that 26 layers of
    a deep model (or 40) can still be told apart in print and by colour-blind readers."""
    palette = matplotlib.colormaps["tab10"].colors
    return [
        {"color": palette[i % 10], "linestyle": _LINE_STYLES[i // 10 % 4], "marker": _MARKERS[i // 10 % 4]}
        for i in range(n)
    ]


def save_figure(fig: Figure, stem) -> list:
    """Write `stem`.png and `stem`.pdf; returns their paths."""
    paths = []
    for suffix in (".png", ".pdf"):
        path = Path(f"{stem}{suffix}")
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=200)
        paths.append(path)
    return paths
