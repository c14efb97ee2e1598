"""Reports: the claims table as text and Markdown, and the statistics report written
beside each figure (mean ± std per layer and level, and the paper's claims about that
figure's perturbation checked on the same results)."""

import numpy as np
import pandas as pd

from replication.analysis import claims, stats
from replication.analysis.experiments import METRICS, Experiment


def claims_header(df: pd.DataFrame, source, metric: str, layer_map: dict[str, str], how: str, relative: bool,
                  conventions: str = "ours") -> str:
    """The lines above a claims table: which results, which model, how the claims are read.

    Args:
        df: the results the claims were checked on.
        source: how to name them (paths).
        metric: "top5" or "top1".
        layer_map: paper layer -> our layer, as the claims used it.
        how: how the layer map was chosen.
        relative: whether accuracies were judged as fractions of the baseline.
        conventions: "ours" or "authors" (`stats.CONVENTIONS`).

    Returns:
        The header, lines joined by newlines.
    """
    chosen = stats.get_conventions(conventions)
    def one(column):
        values = df.loc[df["level"] != 0, column].dropna().unique() if column in df.columns else []
        return ", ".join(map(str, values)) or "?"

    repeats = df[df["level"] != 0].groupby(["layer", "perturbation", "level"]).size()
    base = stats.baseline_values(df, metric)
    lines = [
        "Claims of Cheney, Schrimpf & Kreiman (2017) about AlexNet and VGG-16, beside ours",
        f"  results {source}: model {one('model')}, {one('images')} images, semantics {one('semantics')}, "
        f"{_repeats_text(repeats)}, metric {metric}",
        f"  unperturbed {metric}: ours {base.mean():.3f}" if base.size else "  no unperturbed (level 0) result",
        "  losses are relative: 1 − accuracy / baseline; "
        + ("accuracies are judged as fractions of each network's own baseline (paper 0.791)" if relative else "accuracies are compared raw (--absolute)"),
    ]
    if chosen.fit_points == "means":
        lines.append("  conventions ours: 'falls linearly' read on r² through the per-level means (baseline at 0)")
    else:
        lines.append("  conventions authors: 'falls linearly' read on r² through every trial plus one baseline point per layer")
    lines.append("  the r² claims are judged on the authors' fit (their results/findLinearFit.py: every trial, one baseline "
                 "per layer, every layer but conv_1 pooled), ours printed beside")
    lines.append("  a published measurement holds when inside our bootstrap 95% interval over repeats; a bound the paper "
                 "observed fails only when our whole interval lies beyond it; round bounds are bounds")
    lines.append("  ties with the true class count their expected top-k under random tie-breaking (all logits equal: chance)")
    if metric != "top5":
        lines.append(f"  the paper's numbers are top-5; here the same comparisons are made on {metric}")
    if not layer_map:
        lines.append(f"  {how}")
    if any(ours != paper for paper, ours in layer_map.items()):
        unmapped = [name for name in claims.PAPER_LAYERS if name not in layer_map]
        lines += [
            "NOTE: these results are not from AlexNet's layers. The claims are about AlexNet; they are checked on",
            f"  these layers ({how}): " + ", ".join(f"{paper} -> {ours}" for paper, ours in layer_map.items()),
        ]
        if unmapped:
            lines.append(f"  not mapped, so their claims read n.a.: {', '.join(unmapped)}")
    return "\n".join(lines)


NUMBERS = ("paper_value", "our_value", "low", "high")  # for the picture; the text shows them in words


def _cells(table: pd.DataFrame) -> pd.DataFrame:
    """The table as strings: p-values to 3 significant digits, blank where there is none."""
    shown = table.drop(columns=[c for c in NUMBERS if c in table.columns])
    shown["p_value"] = [f"{p:.3g}" if np.isfinite(p) else "" for p in table["p_value"]]
    return shown.astype(str)


def claims_text(table: pd.DataFrame) -> str:
    shown = _cells(table)
    # pandas right-aligns strings; pad them to the column width so they read left-aligned
    widths = {c: max(len(c), *shown[c].str.len()) for c in shown.columns}
    formatters = {c: (lambda s, w=widths[c]: s.ljust(w)) for c in shown.columns}
    return shown.to_string(index=False, formatters=formatters, justify="left")


def claims_markdown(table: pd.DataFrame) -> str:
    shown = _cells(table)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def fits_text(readings: pd.DataFrame) -> str:
    """The paper's linear fits read both ways (`claims.fit_readings`), one line each.

    Args:
        readings: `claims.fit_readings`'s table.

    Returns:
        Text lines, or a line saying there are no knockout results to fit.
    """
    if readings.empty:
        return "Linear fits: no node or synapse knockout results"
    lines = ["Linear fits (r²), both ways: ours through the per-level means of conv_1 / conv_2–conv_5; "
             "the authors' through every trial plus one baseline per layer, conv_1 / all but conv_1"]
    for row in readings.itertuples(index=False):
        group = "conv_1" if row.fit == "conv_1" else stats.CONVENTIONS[row.conventions].rest_label
        head = f"  {row.perturbation:<8} {group:<15} {row.conventions:<8}"
        if np.isfinite(row.r2):
            lines.append(f"{head} r² {row.r2:.3f}  ({row.points} points: {row.layers})")
        else:
            lines.append(f"{head} n.a.  ({row.why})")
    return "\n".join(lines)


def mean_std_markdown(table: pd.DataFrame, perturbation: str, metric: str, layers, ddof: int = stats.DDOF) -> str:
    """Levels down, layers across, cells 'mean ± std' (std over repeats with `ddof`)."""
    run = [layer for layer in layers if ((table["layer"] == layer) & (table["perturbation"] == perturbation)).any()]
    lines = {layer: stats.curve(table, layer, perturbation, metric, ddof) for layer in run}
    if not lines:
        return "(no trials)"
    levels = sorted({level for line in lines.values() for level in line["level"]})
    header = ["level", *lines]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for level in levels:
        cells = [f"{level:g}"]
        for line in lines.values():
            match = line[line["level"] == level]
            if match.empty:
                cells.append("")
            else:
                mean, std = match["mean"].iloc[0], match["std"].iloc[0]
                cells.append(f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _repeats_text(counts) -> str:
    """"5 repeats", or "2–5 repeats" when points differ."""
    if not len(counts):
        return "no repeats"
    low, high = int(counts.min()), int(counts.max())
    return f"{low} repeat{'s' * (low != 1)}" if low == high else f"{low}–{high} repeats"


def figure_report(table: pd.DataFrame, experiment: Experiment, layers, source, conventions: str = "ours") -> str:
    """The Markdown report written beside a figure.

    Args:
        table: the experiment's results (`run.grid.grid_table`).
        experiment: the figure it belongs to.
        layers: the figure's layers in network order.
        source: the results table's path, as shown in the report.
        conventions: "ours" or "authors" (`stats.CONVENTIONS`): the standard deviation's
            ddof and the r² fits the claims are judged on.

    Returns:
        Mean ± std per layer and level for the experiment's metric, then the paper's claims
        about its perturbation (top-5, as the paper states them).
    """
    metric = METRICS[experiment.metric]
    ddof = stats.get_conventions(conventions).ddof
    repeats = table.loc[table["level"] != 0].groupby(["layer", "level"]).size()
    parts = [
        f"# {experiment.label}: {experiment.perturbation} perturbation, {metric}",
        "",
        f"Results: `{source}`: {len(table)} trials on {int(table['images'].iloc[0])} images, "
        f"{_repeats_text(repeats)} per point, semantics {table['semantics'].iloc[0]}. Cells are mean ± standard "
        f"deviation of {metric} over repeats (ddof={ddof}); level 0 is the unperturbed network.",
        "",
        mean_std_markdown(table, experiment.perturbation, experiment.metric, layers, ddof),
        "",
        "## The paper's claims about this perturbation (top-5, as the paper states them)",
        "",
    ]
    layer_map, how = claims.default_layer_map(table)
    wanted = {c.id for c in claims.claims_about(experiment.perturbation)}
    table_of_claims = claims.claims_table(table, "top5", None, conventions=conventions)
    parts += [
        "```",
        claims_header(table, source, "top5", layer_map, how, relative=True, conventions=conventions),
        "```",
        "",
        claims_markdown(table_of_claims[table_of_claims["id"].isin(wanted)]),
        "Claims that need another figure's runs (node against synapse knockout) read n.a. here; "
        "python -m replication.compare checks them on all the tables together.",
        "",
    ]
    return "\n".join(parts)


def plot_claims(table: pd.DataFrame):
    """The claims table as one picture: per claim, the paper's value against ours with our interval.

    Args:
        table: `claims_table`'s (or `compare_claims(...).table`).

    Returns:
        A matplotlib Figure (no pyplot state), one row per claim, each on the scale it is
        judged on (a fraction of the baseline, a loss, r², a p-value or the statistic the
        claim prints; for significance claims the bar is the range of p over its
        comparisons); ours coloured by verdict, the paper's value a black diamond. Claims
        without a number (n.a.) are listed with their verdict only.
    """
    from matplotlib.figure import Figure

    colours = {"yes": "tab:green", "no": "tab:red", "n.a.": "tab:gray"}
    fig = Figure(figsize=(9, 0.32 * len(table) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    rows = list(table.itertuples(index=False))
    for y, row in enumerate(rows):
        colour = colours.get(row.holds, "tab:gray")
        if np.isfinite(row.our_value):
            low, high = row.low, row.high
            ax.errorbar(row.our_value, y, xerr=[[row.our_value - min(low, row.our_value)], [max(high, row.our_value) - row.our_value]],
                        fmt="o", color=colour, capsize=3)
        if np.isfinite(row.paper_value):
            ax.plot(row.paper_value, y, marker="D", color="black", markersize=4, linestyle="none")
    ax.set_yticks(range(len(rows)), [f"{row.id} ({row.holds})" for row in rows], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="0.85", linewidth=0.8)
    ax.set_xlabel("value on the scale each claim is judged on (◆ paper, ● ours with our interval)")
    ax.set_title("The paper's claims: paper against ours (green holds, red fails, grey n.a.)", fontsize=9)
    return fig
