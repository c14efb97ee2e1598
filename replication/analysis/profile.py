"""Beyond the paper: a robustness profile across networks.

For every network and perturbation in some results tables, one number per perturbed
layer: the level at which the metric falls to half its unperturbed baseline, found by
linear interpolation between the levels run (the baseline is level 0), with its spread
over repeats; plotted against the layer's relative depth, 0 for the first perturbed
layer and 1 for the last (the output layer when the sweep ran every layer). The paper
compares AlexNet and VGG-16 by eye; this puts any number of networks on one axis.

A curve that stays above half its baseline at every level run is "not reached": its
level is NaN, and the figure marks it at the top of the levels run.
"""

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from replication.analysis import stats
from replication.analysis.experiments import METRICS
from replication.errors import ReplicationError
from replication.files import atomic_output

COLUMNS = ("model", "perturbation", "layer", "depth", "half_level", "half_level_std", "reached", "repeats", "max_level")
NOT_REACHED = "not reached"


def half_level(levels, values, baseline: float) -> float:
    """The first level at which `values` fall to half of `baseline`, interpolated linearly.

    Args:
        levels: ascending perturbation levels, without 0.
        values: the metric at each level.
        baseline: the unperturbed metric (level 0).

    Returns:
        The level; NaN when the values stay above half the baseline at every level.
    """
    x = np.concatenate([[0.0], np.asarray(levels, float)])
    y = np.concatenate([[baseline], np.asarray(values, float)])
    half = baseline / 2
    for i in range(1, len(x)):
        if y[i] <= half:
            if y[i - 1] == y[i]:
                return float(x[i])
            return float(x[i - 1] + (y[i - 1] - half) * (x[i] - x[i - 1]) / (y[i - 1] - y[i]))
    return float("nan")


def _one_model(df: pd.DataFrame, model: str, metric: str) -> list[dict]:
    base = stats.baseline_values(df, metric)
    if base.size == 0:
        raise ReplicationError(None, f"results of {model} have no unperturbed (level 0) row: no baseline to halve")
    baseline = float(base.mean())
    rows = []
    for perturbation in (p for p in df["perturbation"].drop_duplicates() if p != "none"):
        trials = df[(df["perturbation"] == perturbation) & (df["level"] != 0)]
        layers = list(trials["layer"].drop_duplicates())  # network order: the sweep's
        for i, layer in enumerate(layers):
            mine = trials[trials["layer"] == layer]
            means = mine.groupby("level")[metric].mean().sort_index()
            per_repeat = [half_level(group.sort_values("level")["level"], group.sort_values("level")[metric], baseline)
                          for _, group in mine.groupby("repeat")]
            reached = [value for value in per_repeat if np.isfinite(value)]
            rows.append({
                "model": model, "perturbation": perturbation, "layer": layer,
                "depth": i / (len(layers) - 1) if len(layers) > 1 else 0.0,
                "half_level": half_level(means.index, means.to_numpy(), baseline),
                "half_level_std": float(np.std(reached, ddof=stats.DDOF)) if len(reached) > 1 else float("nan"),
                "reached": len(reached), "repeats": len(per_repeat), "max_level": float(means.index.max()),
            })  # fmt: skip
    return rows


def robustness_profile(tables, metric: str = "top5") -> pd.DataFrame:
    """The level at which each layer's metric falls to half its baseline, per network and perturbation.

    Args:
        tables: results tables: paths (CSV written by sweeps) or DataFrames; one or several
            networks (the `model` column names them).
        metric: "top5" or "top1".

    Returns:
        One row per (model, perturbation, layer): depth (0 first perturbed layer, 1 last),
        half_level (from the mean curve over repeats; NaN: not reached), half_level_std
        (sample std over the repeats that reach half; NaN with fewer than two), reached
        (how many repeats reach half), repeats, max_level (the largest level run).
    """
    from replication.run.table import read_table

    if metric not in METRICS:
        raise ValueError(f"metric must be one of {tuple(METRICS)}")
    if isinstance(tables, (str, Path, pd.DataFrame)):
        tables = [tables]
    rows = []
    for table in tables:
        source = None if isinstance(table, pd.DataFrame) else str(table)
        df = stats.tidy(table if isinstance(table, pd.DataFrame) else read_table(table), source)
        if df.empty:
            raise ReplicationError(source, "holds no finished trials")
        models = df["model"].fillna("?") if "model" in df.columns else pd.Series("?", index=df.index)
        for model in models[df["level"] != 0].drop_duplicates():
            # each model's rows with its own baseline; a table that names no model keeps its one baseline
            mine = df[(models == model) | ((df["level"] == 0) & (models.nunique() == 1))]
            rows += _one_model(mine, str(model), metric)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def profile_markdown(profile: pd.DataFrame) -> str:
    """The profile as a Markdown table, "not reached" where a curve stays above half."""
    lines = ["| model | perturbation | layer | depth | level at half baseline | std over repeats | repeats reaching |",
             "|---|---|---|---|---|---|---|"]
    for row in profile.itertuples(index=False):
        level = f"{row.half_level:.3g}" if np.isfinite(row.half_level) else f"{NOT_REACHED} (≤ {row.max_level:g})"
        spread = f"{row.half_level_std:.3g}" if np.isfinite(row.half_level_std) else ""
        lines.append(f"| {row.model} | {row.perturbation} | {row.layer} | {row.depth:.2f} | {level} | {spread} | "
                     f"{row.reached}/{row.repeats} |")
    return "\n".join(lines) + "\n"


def plot_profile(profile: pd.DataFrame, metric: str = "top5") -> Figure:
    """One panel per perturbation: level at half baseline against relative depth, one line per network.

    Args:
        profile: `robustness_profile`'s table.
        metric: named in the axis label.

    Returns:
        A matplotlib Figure (no pyplot state); curves that never reach half are marked
        with open triangles at the largest level run.
    """
    perturbations = list(profile["perturbation"].drop_duplicates())
    fig = Figure(figsize=(5 * max(len(perturbations), 1), 4), layout="constrained")
    palette = matplotlib.colormaps["tab10"].colors
    models = list(profile["model"].drop_duplicates())
    for j, perturbation in enumerate(perturbations):
        ax = fig.add_subplot(1, len(perturbations), j + 1)
        for i, model in enumerate(models):
            rows = profile[(profile["model"] == model) & (profile["perturbation"] == perturbation)]
            if rows.empty:
                continue
            colour = palette[i % len(palette)]
            ax.errorbar(rows["depth"], rows["half_level"], yerr=rows["half_level_std"].fillna(0), color=colour,
                        marker="o", capsize=3, label=model)
            missing = rows[~np.isfinite(rows["half_level"])]
            if not missing.empty:
                ax.plot(missing["depth"], missing["max_level"], linestyle="none", marker="^", fillstyle="none",
                        color=colour, label=f"{model}: {NOT_REACHED}")
        ax.set_title(perturbation)
        ax.set_xlabel("relative depth (0 first perturbed layer, 1 output)")
        ax.set_ylabel(f"level at which {metric} halves")
        ax.set_xlim(-0.05, 1.05)
        ax.legend(fontsize="small")
    return fig


def write_profile(profile: pd.DataFrame, stem, metric: str = "top5") -> list[Path]:
    """Write `stem`.csv, `stem`.md and `stem`.png, each atomically; returns their paths."""
    paths = [Path(f"{stem}.csv"), Path(f"{stem}.md"), Path(f"{stem}.png")]
    with atomic_output(paths[0]) as tmp:
        profile.to_csv(tmp, index=False)
    with atomic_output(paths[1]) as tmp:
        tmp.write_text(profile_markdown(profile), encoding="utf-8")
    with atomic_output(paths[2]) as tmp:
        plot_profile(profile, metric).savefig(tmp, format="png", dpi=150)
    return paths
