"""The paper's Table 1: summary statistics of every weight array of the network.

One row per Keras layer and array (conv_1_W, conv_1_b, conv_2_1_W, ... dense_3_b), in
network order, computed from the model's get_weights(): size, mean, median, sigma
(population standard deviation), min, max, kurtosis (excess, Fisher's definition)
and skew. Beside each figure the paper's published value, from
replication/reference/paper_table1.csv, and the relative difference (ours - paper) / |paper|.

The paper's figures exist for AlexNet only; other models get their own rows and no
comparison.
"""

import math
from importlib import resources

import keras
import numpy as np
import pandas as pd

from replication.models.groups import group_layers, weight_groups

STATISTICS = ("size", "mean", "median", "sigma", "min", "max", "kurtosis", "skew")


def weight_statistics(array: np.ndarray) -> dict[str, float]:
    # float64 so that the sums over 37 million dense_1 weights do not lose digits.
    values = np.asarray(array, dtype=np.float64).ravel()
    mean = values.mean()
    # The central moments once, for sigma, skew and kurtosis: the same (biased)
    # estimators as np.std and scipy.stats.skew / kurtosis(fisher=True), which would
    # each take seconds over dense_1's weights.
    centred = values - mean
    squares = centred * centred
    m2, m3, m4 = squares.mean(), (squares * centred).mean(), (squares * squares).mean()
    return {
        "size": values.size,
        "mean": mean,
        "median": np.median(values),
        "sigma": np.sqrt(m2),
        "min": values.min(),
        "max": values.max(),
        "kurtosis": m4 / m2**2 - 3.0 if m2 > 0 else np.nan,
        "skew": m3 / m2**1.5 if m2 > 0 else np.nan,
    }


def weight_rows(model: keras.Model) -> list[tuple[str, np.ndarray]]:
    """(row name, array) for every weight of every weight group's layers, in order."""
    rows = []
    for group in weight_groups(model).values():
        for layer in group_layers(model, group):
            for suffix, array in zip(("W", "b"), layer.get_weights()):
                rows.append((f"{layer.name}_{suffix}", array))
    return rows


def paper_table1() -> pd.DataFrame:
    """The paper's published Table 1 (missing figures are NaN), indexed by row name."""
    with resources.files("replication").joinpath("reference/paper_table1.csv").open() as f:
        return pd.read_csv(f, comment="#", index_col="row")


def table1(model: keras.Model) -> pd.DataFrame:
    """Our statistics, and for each one `<stat>_paper` and `<stat>_rel_diff` (NaN where
    the paper's figure is missing, infinite where it is 0)."""
    ours = pd.DataFrame.from_dict(
        {name: weight_statistics(array) for name, array in weight_rows(model)}, orient="index", columns=list(STATISTICS)
    )
    ours["size"] = ours["size"].astype(np.int64)
    ours.index.name = "row"
    paper = paper_table1().reindex(ours.index)
    columns = {}
    for stat in STATISTICS:
        published = paper[stat].astype(float) if stat in paper else pd.Series(np.nan, index=ours.index)
        columns[stat] = ours[stat]
        columns[f"{stat}_paper"] = published
        columns[f"{stat}_rel_diff"] = (ours[stat] - published) / published.abs()
    return pd.DataFrame(columns)


def _cell(value, stat: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if stat == "size":
        return f"{int(value)}"
    return f"{value:.6g}"


def _text_table(header: list[str], body: list[list[str]]) -> str:
    rows = [header, *body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    # Row names left-aligned, figures right-aligned.
    lines = [" ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]) for row in rows]
    return "\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:])


def format_table(table: pd.DataFrame) -> str:
    """Fixed-width text: our figures, then the relative differences to the paper."""
    ours = [[row] + [_cell(table.at[row, s], s) for s in STATISTICS] for row in table.index]
    diffs = [[row] + [_cell(table.at[row, f"{s}_rel_diff"], "rel") for s in STATISTICS] for row in table.index]
    text = (
        _text_table(["row", *STATISTICS], ours)
        + "\n\nRelative difference to the paper, (ours - paper) / |paper|:\n"
        + _text_table(["row", *STATISTICS], diffs)
    )
    missing = [s for s in STATISTICS if table[f"{s}_paper"].isna().all()]
    if missing:
        text += f"\n\n'-': the paper's {', '.join(missing)} are not in replication/reference/paper_table1.csv"
    return text


def format_markdown(table: pd.DataFrame) -> str:
    """A markdown table with ours and the paper's figure side by side ("ours (paper)")."""
    header = "| row | " + " | ".join(STATISTICS) + " |"
    rule = "|---|" + "---:|" * len(STATISTICS)
    lines = [header, rule]
    for row in table.index:
        cells = []
        for s in STATISTICS:
            cell = _cell(table.at[row, s], s)
            published = table.at[row, f"{s}_paper"]
            if not math.isnan(published):
                cell += f" ({_cell(published, s)})"
            cells.append(cell)
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nFigures in parentheses: the paper's Table 1.\n"
