"""The statistics report written beside each figure: mean ± std per layer and level, and
the paper's claims about that figure's perturbation checked on the same results."""

import pandas as pd

from replication import compare, stats
from replication.figures import FigureSpec, curves


def mean_std_markdown(table: pd.DataFrame, kind: str, metric: str, layers) -> str:
    """Levels down, layers across, cells 'mean ± std' (std over repeats, ddof=stats.DDOF)."""
    lines = curves(table, kind, metric, layers)
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


def relevant_claims(claims: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The baseline claim and those naming this perturbation (node vs synapse names both)."""
    keep = claims["claim"].str.startswith("Unperturbed") | claims["claim"].str.lower().str.contains(kind)
    return claims[keep]


def figure_report(table: pd.DataFrame, spec: FigureSpec, layers, source) -> str:
    repeats = table.loc[table["level"] != 0].groupby(["layer", "level"]).size()
    parts = [
        f"# Figure {spec.number}: {spec.kind} perturbation, {spec.metric.replace('top', 'top-')} accuracy",
        "",
        f"Results: `{source}`: {len(table)} trials on {int(table['images'].iloc[0])} images, "
        f"{repeats.min() if len(repeats) else 0}–{repeats.max() if len(repeats) else 0} repeats per point, "
        f"semantics {table['semantics'].iloc[0]}. Cells are mean ± standard deviation over repeats "
        f"(ddof={stats.DDOF}); level 0 is the unperturbed network.",
        "",
        mean_std_markdown(table, spec.kind, spec.metric, layers),
        "",
        "## The paper's claims about this perturbation (top-5, as the paper states them)",
        "",
    ]
    layer_map, how = compare.default_layer_map(table)
    claims = relevant_claims(compare.claims_table(table, "top5", layer_map), spec.kind)
    parts += [
        "```",
        compare.header(table, source, "top5", layer_map, how, relative=True),
        "```",
        "",
        compare.to_markdown(claims),
        "Claims that need another figure's runs (node against synapse knockout) read n.a. here; "
        "notebooks/compare_with_paper.ipynb checks them on all the tables together.",
        "",
    ]
    return "\n".join(parts)
