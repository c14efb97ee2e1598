"""Recovery statistics, report and figure, from a recovery table (`recovery.table`).

For a damaged run with held-out accuracy a(s) after s steps, its control (the undamaged
network fine-tuned identically) c(s), and the unperturbed network's accuracy B = c(0):
  lost            B − a(0), what the damage cost;
  recovered(s)    (a(s) − a(0)) / (B − a(0)), the fraction of the loss won back
                  (1: back to the unperturbed network; above 1: beyond it);
  vs control(s)   (a(s) − a(0)) / (c(s) − a(0)), the fraction of the gap to the control
                  closed: fine-tuning alone moves accuracy, and the control shows how far;
  control change  c(s) − B;
  images to half  the images seen when recovered(s) first reaches 0.5, linearly
                  interpolated between evaluations up to the images reported; not
                  reached, when it does not.
The control is one run (it has no damage to draw), so its columns have no spread; the
repeats of a damaged configuration share the control's training stream and dropout masks,
so their SD measures the spread over damage draws alone.
Each is computed per repeat (one damage draw each) and given as mean ± SD over repeats
(sample SD, ddof 1). A run whose damage cost less than one image's worth of accuracy
has no meaningful recovered fraction (NaN).
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from replication.analysis.experiments import METRICS
from replication.analysis.figures import line_styles
from replication.recovery.table import CONTROL_LESION

CONFIG = ["layer", "perturbation", "level", "lesion", "train_layers"]


def _curve(rows: pd.DataFrame, metric: str) -> pd.Series:
    """Accuracy by images seen, one run's rows."""
    return rows.set_index("images_seen")[metric].sort_index()


def half_point(images: np.ndarray, fraction: np.ndarray, target: float = 0.5) -> float:
    """The first images-seen value where `fraction` reaches `target`, interpolated linearly
    between evaluations; NaN when it never does."""
    for i, value in enumerate(fraction):
        if value >= target:
            if i == 0:
                return float(images[0])
            x0, x1, y0, y1 = images[i - 1], images[i], fraction[i - 1], value
            return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0))
    return math.nan


def recovery_runs(table: pd.DataFrame, metric: str = "top5", at_images: int | None = None) -> pd.DataFrame:
    """One row per damaged run (configuration and repeat): its figures at `at_images`
    images seen (default: the last evaluation both it and its control have).

    Returns:
        Columns CONFIG + repeat, images, baseline, damaged (a(0)), after (a at images),
        control_after, control_change, recovered, vs_control, images_to_half.
    """
    out = []
    one_image = 1.0 / max(int(table["heldout_images"].iloc[0]), 1) if len(table) else 0.0
    controls = table[table["lesion"] == CONTROL_LESION]
    damaged = table[table["lesion"] != CONTROL_LESION]
    for key, rows in damaged.groupby(CONFIG + ["repeat"], sort=False):
        layer, perturbation, _, _, train_layers = key[:5]
        control_rows = controls[(controls["layer"] == layer) & (controls["perturbation"] == perturbation)
                                & (controls["train_layers"] == train_layers)]
        if control_rows.empty:
            continue
        own, control = _curve(rows, metric), _curve(control_rows, metric)
        common = own.index.intersection(control.index)
        if 0 not in common:
            continue
        reach = common[common <= at_images] if at_images is not None else common
        images = int(reach.max())
        baseline, start = float(control.loc[0]), float(own.loc[0])
        lost = baseline - start
        seen = own.loc[common]
        recovered = (seen - start) / lost if lost >= one_image else seen * math.nan
        gap = control.loc[images] - start
        out.append({
            **dict(zip(CONFIG + ["repeat"], key)), "images": images, "baseline": baseline, "damaged": start,
            "after": float(own.loc[images]), "control_after": float(control.loc[images]),
            "control_change": float(control.loc[images] - baseline),
            "recovered": float(recovered.loc[images]),
            "vs_control": float((own.loc[images] - start) / gap) if abs(gap) >= one_image else math.nan,
            "images_to_half": half_point(np.asarray(reach, float), np.asarray(recovered.loc[reach], float)),
        })  # fmt: skip
    return pd.DataFrame(out, columns=CONFIG + ["repeat", "images", "baseline", "damaged", "after", "control_after",
                                               "control_change", "recovered", "vs_control", "images_to_half"])


def recovery_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD (ddof 1) over repeats of each configuration's figures (`recovery_runs`)."""
    rows = []
    for key, group in runs.groupby(CONFIG, sort=False):
        row = dict(zip(CONFIG, key))
        row["repeats"] = len(group)
        row["images"] = int(group["images"].min())
        row["baseline"] = float(group["baseline"].iloc[0])
        for name in ("damaged", "after", "control_after", "control_change", "recovered", "vs_control", "images_to_half"):
            values = group[name].dropna().to_numpy(float)
            row[f"{name}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{name}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        row["half_reached"] = int(group["images_to_half"].notna().sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(mean: float, sd: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "n.a."
    return f"{mean:.{digits}f}" + ("" if math.isnan(sd) else f" ± {sd:.{digits}f}")


def recovery_report(table: pd.DataFrame, source, metric: str = "top5", at_images: int | None = None,
                    note: str | None = None) -> str:
    """The study's statistics as Markdown: one row per damaged configuration."""
    runs = recovery_runs(table, metric, at_images)
    summary = recovery_summary(runs)
    first = table.iloc[0] if len(table) else None
    lines = [f"# Recovery after damage: {METRICS[metric]}", ""]
    if note:
        lines += [f"> **Note:** {note}", ""]
    lines.append(f"Source: `{Path(source).name}`.")
    if first is not None:
        lines += [
            f"Model {first['model']}; {first['train_images']} training images, {first['heldout_images']} held-out "
            f"images; batch {first['batch_size']}, SGD learning rate {first['learning_rate']}, momentum "
            f"{first['momentum']}, weight decay {first['weight_decay']}, augmentation {first['augment']}, seed "
            f"{first['seed']}, {first['precision']}.",
        ]
    lines += [
        "", "Per damaged configuration, mean ± SD over repeats (ddof 1) after the images shown. *lost*: what the "
        "damage cost; *recovered*: the fraction of it won back; *vs control*: the fraction of the gap to the "
        "identically fine-tuned undamaged network closed; *control change*: how far fine-tuning alone moved the "
        "undamaged network; *to half*: images seen until half the loss was won back (reached by n of the repeats).",
        "",
        "| layer | perturbation | level | lesion | train layers | repeats | images | baseline | damaged | after | "
        "control after | control change | recovered | vs control | to half (n) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in summary.iterrows():
        half = _pm(row["images_to_half_mean"], row["images_to_half_sd"], 0)
        lines.append(
            f"| {row['layer']} | {row['perturbation']} | {row['level']:g} | {row['lesion']} | {row['train_layers']} | "
            f"{row['repeats']} | {row['images']} | {row['baseline']:.3f} | "
            f"{_pm(row['damaged_mean'], row['damaged_sd'])} | {_pm(row['after_mean'], row['after_sd'])} | "
            f"{_pm(row['control_after_mean'], row['control_after_sd'])} | "
            f"{_pm(row['control_change_mean'], row['control_change_sd'])} | "
            f"{_pm(row['recovered_mean'], row['recovered_sd'])} | {_pm(row['vs_control_mean'], row['vs_control_sd'])} | "
            f"{half} ({row['half_reached']}/{row['repeats']}) |"
        )
    if summary.empty:
        lines.append("| (no damaged run with its control and step 0 yet) |" + " |" * 14)
    return "\n".join(lines) + "\n"


def plot_recovery(table: pd.DataFrame, metric: str = "top5", title: str = "") -> Figure:
    """Held-out accuracy against images seen: one line per damaged configuration (mean ± SD
    over repeats), its control dashed, the unperturbed network as a dotted line."""
    fig = Figure(figsize=(7.2, 4.8), layout="constrained")
    ax = fig.add_subplot()
    damaged = table[table["lesion"] != CONTROL_LESION]
    controls = table[table["lesion"] == CONTROL_LESION]
    configs = damaged.groupby(CONFIG, sort=False)
    for style, (key, rows) in zip(line_styles(configs.ngroups), configs):
        by = rows.groupby("images_seen")[metric]
        mean, sd = by.mean(), by.std(ddof=1).fillna(0.0)
        layer, perturbation, level, lesion, trains = key
        ax.errorbar(mean.index, mean.to_numpy(), yerr=sd.to_numpy(), markersize=3.5, linewidth=1.2, capsize=2.5,
                    elinewidth=0.8, label=f"{layer} {perturbation} {level:g}, {lesion}, train layers {trains}", **style)
    for (layer, perturbation, trains), rows in controls.groupby(["layer", "perturbation", "train_layers"], sort=False):
        curve = _curve(rows, metric)
        ax.plot(curve.index, curve.to_numpy(), color="0.25", linestyle="--", linewidth=1.1,
                label=f"control: {layer} {perturbation} 0 (undamaged), train layers {trains}")
    if len(controls):
        baseline = float(controls[controls["step"] == 0][metric].iloc[0])
        ax.axhline(baseline, color="0.45", linestyle=(0, (1, 2)), linewidth=1.2,
                   label=f"unperturbed network ({baseline:.3f})")
    ax.set_xlabel("training images seen")
    ax.set_ylabel(f"held-out {METRICS[metric]}")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.25, linewidth=0.5)
    repeats = int(damaged.groupby(CONFIG)["repeat"].nunique().max()) if len(damaged) else 0
    ax.set_title(f"Recovery after damage{', ' + title if title else ''}\n"
                 f"{repeats} repeat{'s' * (repeats != 1)} per line, error bars ±1 SD", fontsize=9)
    ax.legend(fontsize=7, loc="best", frameon=False)
    return fig
