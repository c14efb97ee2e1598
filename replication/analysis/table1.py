"""The paper's Table 1: summary statistics of every weight array of the network, and
whether they are the paper's.

One row per Keras layer and array (conv_1_W, conv_1_b, conv_2_1_W, ... dense_3_b), in
network order, computed from the model's get_weights(): size, mean, median, sigma
(population standard deviation), min, max, kurtosis (excess, Fisher's definition)
and skew. Beside each figure the paper's printed value, from
replication/reference/paper_table1.csv, the relative difference (ours - paper) / |paper|
and whether ours is the printed figure at the paper's precision.

When a figure matches. The paper prints every statistic to 3 significant figures, dropping
trailing zeros (0.45 is 0.450), small means and medians in exponent form (2.84e-06). A
printed figure is therefore read as a number to 3 significant figures, whatever its
magnitude, and ours matches it when ours, rounded to 3 significant figures, is that number;
size must be equal. A row matches when every statistic the paper prints for it matches.
Near-zero means and medians get no looser rule: 2.84e-06 asks for a mean in
[2.835e-06, 2.845e-06), which the float64 sums below resolve.

The printed table has one probable slip (PROBABLE_SLIPS): a row that differs from the paper
only in such a cell is counted apart, as neither matching nor plainly different.

The paper's figures exist for AlexNet only; the rows of other models are not comparable.
"""

import io
import math
import textwrap
from dataclasses import dataclass
from importlib import resources

import keras
import numpy as np
import pandas as pd

from replication.models.groups import group_layers, weight_groups

STATISTICS = ("size", "mean", "median", "sigma", "min", "max", "kurtosis", "skew")
# The precision of every printed figure of the paper's Table 1.
SIGNIFICANT_FIGURES = 3
# Statistics in the units of the weights: their differences are ranked in units of the
# row's printed sigma, so that a near-zero mean that is off by a hair does not outrank a
# sigma that is off by half.
_IN_WEIGHT_UNITS = ("mean", "median", "sigma", "min", "max")

# (row, statistic) -> why the printed figure is probably wrong. The packaged CSV flags the
# same cells in its probable_slip column (a test keeps the two in step).
PROBABLE_SLIPS = {
    ("conv_2_2_b", "sigma"): (
        "the paper prints conv_2_2_b σ = 0.0294, the same as conv_2_2_W's; probably a slip in the printed table"
    ),
}

# Row-level outcomes, the row_match column.
MATCH, DIFFERS, SLIP_ONLY, NOT_COMPARABLE = "yes", "no", "only a probable slip", "not comparable"


def weight_statistics(array: np.ndarray) -> dict[str, float]:
    """Table 1's statistics of one weight array.

    Args:
        array: the weights, any shape; they are flattened.

    Returns:
        {"size", "mean", "median", "sigma", "min", "max", "kurtosis", "skew"} -> value;
        sigma is the population standard deviation, kurtosis is excess kurtosis; kurtosis
        and skew are NaN for a constant array.
    """
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
    """The weight arrays Table 1 describes.

    Args:
        model: a Keras model built by this project (weight groups recorded).

    Returns:
        (row name, array) for every weight of every weight group's layers, in network order;
        the row name is the Keras layer's name with _W (weights) or _b (biases).
    """
    rows = []
    for group in weight_groups(model).values():
        for layer in group_layers(model, group):
            for suffix, array in zip(("W", "b"), layer.get_weights()):
                rows.append((f"{layer.name}_{suffix}", array))
    return rows


def statistics_table(model: keras.Model) -> pd.DataFrame:
    """Our statistics of every weight array of a model.

    Args:
        model: a Keras model built by this project (weight groups recorded).

    Returns:
        One row per array (index "row", e.g. conv_2_1_W), columns STATISTICS; size is int64.
    """
    ours = pd.DataFrame.from_dict(
        {name: weight_statistics(array) for name, array in weight_rows(model)}, orient="index", columns=list(STATISTICS)
    )
    ours["size"] = ours["size"].astype(np.int64)
    ours.index.name = "row"
    return ours


def paper_table1() -> pd.DataFrame:
    """The paper's Table 1 as printed.

    Returns:
        22 rows indexed by row name (conv_1_W … dense_3_b), columns STATISTICS and
        probable_slip (the statistic whose printed figure is probably a slip, else empty).
    """
    with resources.files("replication").joinpath("reference/paper_table1.csv").open() as f:
        table = pd.read_csv(f, comment="#", index_col="row")
    table["probable_slip"] = table["probable_slip"].fillna("")
    return table


def round_significant(value: float, figures: int = SIGNIFICANT_FIGURES) -> float:
    """`value` rounded to `figures` significant figures (NaN stays NaN).

    Args:
        value: any float.
        figures: significant figures to keep.

    Returns:
        The nearest number with that many significant figures, as Python's "g" format
        rounds it (the decimal digits of the binary value, halves to even).
    """
    return float(f"{value:.{figures}g}")


def matches_printed(stat: str, ours: float, printed: float) -> bool:
    """Whether our statistic is the paper's printed figure at the paper's precision.

    Args:
        stat: one of STATISTICS.
        ours: our value.
        printed: the paper's figure, read as a number to SIGNIFICANT_FIGURES significant
            figures (trailing zeros dropped when printed).

    Returns:
        For size, equality; otherwise whether ours rounded to SIGNIFICANT_FIGURES
        significant figures equals the printed figure so rounded. False when ours is NaN.
    """
    if math.isnan(ours):
        return False
    if stat == "size":
        return int(ours) == int(printed)
    # The printed figure is rounded too, so that a CSV parser landing on a neighbouring
    # float still yields the printed digits.
    return round_significant(ours) == round_significant(printed)


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our statistics beside the paper's, statistic by statistic and row by row.

    Args:
        ours: our statistics, one row per array (statistics_table()), columns STATISTICS.
        paper: the published table (default paper_table1()); a statistic or row it lacks,
            or a NaN figure, is not compared.

    Returns:
        ours' rows; for each statistic `<stat>`, `<stat>_paper`, `<stat>_rel_diff`
        ((ours - paper) / |paper|: NaN where nothing is printed, infinite where the
        printed figure is 0) and `<stat>_match` (nullable boolean, NA where nothing is
        printed); then row_match: MATCH, DIFFERS, SLIP_ONLY (every difference is in a
        PROBABLE_SLIPS cell) or NOT_COMPARABLE (the paper prints nothing for the row).
    """
    if paper is None:
        paper = paper_table1()
    paper = paper.reindex(ours.index)
    columns = {}
    mismatched = {row: [] for row in ours.index}
    printed_any = pd.Series(False, index=ours.index)
    for stat in STATISTICS:
        published = paper[stat].astype(float) if stat in paper else pd.Series(np.nan, index=ours.index)
        match = pd.Series(pd.NA, index=ours.index, dtype="boolean")
        for row in ours.index:
            if not math.isnan(published[row]):
                match[row] = matches_printed(stat, float(ours.at[row, stat]), float(published[row]))
                if not match[row]:
                    mismatched[row].append(stat)
        printed_any |= published.notna()
        columns[stat] = ours[stat]
        columns[f"{stat}_paper"] = published
        columns[f"{stat}_rel_diff"] = (ours[stat] - published) / published.abs()
        columns[f"{stat}_match"] = match
    table = pd.DataFrame(columns)
    table["row_match"] = [
        NOT_COMPARABLE if not printed_any[row]
        else MATCH if not mismatched[row]
        else SLIP_ONLY if all((row, stat) in PROBABLE_SLIPS for stat in mismatched[row])
        else DIFFERS
        for row in ours.index
    ]
    return table


def table1(model: keras.Model) -> pd.DataFrame:
    """Table 1 for a model: compare_with_paper(statistics_table(model)).

    Args:
        model: a Keras model built by this project.

    Returns:
        The table compare_with_paper describes.
    """
    return compare_with_paper(statistics_table(model))


@dataclass(frozen=True)
class Difference:
    """One statistic of one row where ours is not the printed figure."""

    stat: str
    ours: float
    paper: float
    # How far apart: in units of the row's printed sigma for mean, median, sigma, min and
    # max; as is for kurtosis and skew; infinite for size (another architecture).
    score: float
    probable_slip: bool


@dataclass(frozen=True)
class Verdict:
    """Whether a table's rows are the paper's, and where they differ."""

    paper_rows: tuple[str, ...]  # every row the paper prints, in its order
    compared: tuple[str, ...]  # ours that the paper prints
    matching: tuple[str, ...]
    slip_only: dict[str, tuple[Difference, ...]]  # rows that differ only in a probable slip
    differing: dict[str, tuple[Difference, ...]]  # the other rows that differ, most different first
    missing: tuple[str, ...]  # the paper's rows this model lacks
    ours: tuple[str, ...]  # every row of ours

    @property
    def comparable(self) -> bool:
        """Whether the paper prints any of this table's rows."""
        return bool(self.compared)

    @property
    def matches(self) -> bool:
        """Every row of the paper is ours and matches, except rows that differ only in a probable slip."""
        return self.comparable and not self.differing and not self.missing

    def headline(self) -> str:
        """The verdict in one sentence.

        Returns:
            "these weights match the paper's Table 1: n of 22 rows match at 3 significant
            figures" (or "do not match"); when no row is comparable, a sentence saying that
            the model's rows do not correspond to the paper's.
        """
        total = len(self.paper_rows)
        if not self.comparable:
            first = ", ".join(self.ours[:3]) + (", …" if len(self.ours) > 3 else "")
            return (
                f"these weights cannot be compared with the paper's Table 1: this model's {len(self.ours)} rows "
                f"({first}) do not correspond to the paper's {total} AlexNet rows "
                f"({self.paper_rows[0]} … {self.paper_rows[-1]})"
            )
        counted = f"{len(self.matching)} of {total} rows match at {SIGNIFICANT_FIGURES} significant figures"
        return f"these weights {'match' if self.matches else 'do not match'} the paper's Table 1: {counted}"

    def remarks(self) -> list[str]:
        """Sentences on the rows that differ only in a probable slip and the paper's rows this model lacks."""
        remarks = [
            f"{row} differs only where the paper probably misprinted: "
            + ", ".join(_difference_text(d, slip_mark=False) for d in diffs)
            for row, diffs in self.slip_only.items()
        ]
        if self.missing:
            remarks.append(f"not in this model: {', '.join(self.missing)}")
        other_size = [row for row, diffs in self.differing.items() if any(d.stat == "size" for d in diffs)]
        if other_size:
            remarks.append(f"other sizes (another architecture): {', '.join(other_size)}")
        elif self.differing and not self.matching and not self.slip_only and not self.missing:
            remarks.append("every row has the paper's size: the architecture is the paper's, the weights are not")
        return remarks

    def most_different(self, most: int = 5) -> list[str]:
        """The rows that differ most, one line each: "row: stat ours (paper figure), …".

        Args:
            most: how many rows; a last line says how many more differ.

        Returns:
            Lines, the row with the largest Difference.score first, each with its four
            most different statistics (and how many more differ).
        """
        shown = list(self.differing.items())[:most]
        lines = [f"{row}: {_differences_text(diffs)}" for row, diffs in shown]
        if len(self.differing) > len(shown):
            lines.append(f"and {len(self.differing) - len(shown)} more rows differ")
        return lines

    def text(self, most: int = 5) -> str:
        """The verdict as the command prints it.

        Args:
            most: how many differing rows to list.

        Returns:
            The headline, the remarks, then the rows that differ most, indented and
            wrapped at 100 columns.
        """
        lines = [self.headline(), *self.remarks()]
        if self.differing:
            lines.append(MOST_DIFFERENT)
            lines += [
                textwrap.fill(line, width=100, initial_indent="  ", subsequent_indent="    ")
                for line in self.most_different(most)
            ]
        return "\n".join(lines)


MOST_DIFFERENT = (
    "rows that differ most (largest difference first; mean, median, sigma, min and max weighed in units "
    "of the row's printed sigma):"
)


def _difference_text(d: Difference, slip_mark: bool = True) -> str:
    ours = f"{int(d.ours)}" if d.stat == "size" else f"{d.ours:.{SIGNIFICANT_FIGURES}g}"
    slip = ", probably a slip" if d.probable_slip and slip_mark else ""
    return f"{d.stat} {ours} (paper {_printed(d.paper, d.stat)}{slip})"


def _differences_text(differences: tuple[Difference, ...], shown: int = 4) -> str:
    text = ", ".join(_difference_text(d) for d in differences[:shown])
    if len(differences) > shown:
        text += f" and {len(differences) - shown} more"
    return text


def verdict(table: pd.DataFrame, paper: pd.DataFrame | None = None) -> Verdict:
    """The verdict on a compare_with_paper() table.

    Args:
        table: compare_with_paper()'s (or table1()'s) result.
        paper: the published table it was compared with (default paper_table1()); only
            its rows are read, to count them and name the ones this table lacks.

    Returns:
        The Verdict: matching rows, rows that differ only in a probable slip, the other
        differing rows sorted by their largest difference (Difference.score), and the
        paper's rows missing from the table.
    """
    if paper is None:
        paper = paper_table1()
    compared = tuple(row for row in table.index if table.at[row, "row_match"] != NOT_COMPARABLE)
    differing, slip_only = {}, {}
    for row in compared:
        outcome = table.at[row, "row_match"]
        if outcome == MATCH:
            continue
        differences = sorted(_differences(table, row), key=lambda d: -d.score)
        (slip_only if outcome == SLIP_ONLY else differing)[row] = tuple(differences)
    differing = dict(sorted(differing.items(), key=lambda item: -item[1][0].score))
    return Verdict(
        paper_rows=tuple(paper.index),
        compared=compared,
        matching=tuple(row for row in compared if table.at[row, "row_match"] == MATCH),
        slip_only=slip_only,
        differing=differing,
        missing=tuple(row for row in paper.index if row not in table.index) if compared else (),
        ours=tuple(table.index),
    )


def _differences(table: pd.DataFrame, row: str) -> list[Difference]:
    sigma = table.at[row, "sigma_paper"]
    found = []
    for stat in STATISTICS:
        if not _mismatch(table, row, stat):
            continue
        ours, paper = float(table.at[row, stat]), float(table.at[row, f"{stat}_paper"])
        gap = abs(ours - paper)
        # Another size is another architecture; NaN (a constant array's kurtosis) no figure.
        if stat == "size" or math.isnan(gap):
            score = math.inf
        elif stat in _IN_WEIGHT_UNITS and sigma > 0:
            score = gap / sigma
        else:
            score = gap
        found.append(Difference(stat, ours, paper, score, (row, stat) in PROBABLE_SLIPS))
    return found


def slip_notes(table: pd.DataFrame) -> list[str]:
    """The notes on probable slips of the printed table that concern this table's rows.

    Args:
        table: compare_with_paper()'s result.

    Returns:
        One sentence per PROBABLE_SLIPS cell whose row the table compares (none for a model
        the paper does not describe).
    """
    return [
        note
        for (row, _), note in PROBABLE_SLIPS.items()
        if row in table.index and table.at[row, "row_match"] != NOT_COMPARABLE
    ]


def _mismatch(table: pd.DataFrame, row: str, stat: str) -> bool:
    """Whether the paper prints this figure and ours is not it."""
    match = table.at[row, f"{stat}_match"]
    return match is not pd.NA and not match


def _cell(value, stat: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if stat == "size":
        return f"{int(value)}"
    return f"{value:.6g}"


def _printed(value, stat: str) -> str:
    """A figure of the paper's as it is printed."""
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{int(value)}" if stat == "size" else f"{value:.{SIGNIFICANT_FIGURES}g}"


def _relative(table: pd.DataFrame, row: str, stat: str) -> str:
    ours, paper = table.at[row, stat], table.at[row, f"{stat}_paper"]
    if math.isnan(paper):
        return "-"
    if ours == paper:
        return "0"
    return f"{100 * table.at[row, f'{stat}_rel_diff']:+.3g}%"


def _mark(table: pd.DataFrame, row: str, stat: str) -> str:
    """'*' where ours is not the printed figure ('!' where that figure is a probable slip)."""
    if not _mismatch(table, row, stat):
        return " "
    return "!" if (row, stat) in PROBABLE_SLIPS else "*"


def _text_table(header: list[str], body: list[list[str]], left: int = 1) -> str:
    rows = [header, *body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    # Names left-aligned (the first `left` columns), figures right-aligned.
    lines = [
        " ".join(
            [c.ljust(w) for c, w in zip(row[:left], widths)] + [c.rjust(w) for c, w in zip(row[left:], widths[left:])]
        ).rstrip()
        for row in rows
    ]
    return "\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:])


def format_table(table: pd.DataFrame) -> str:
    """Fixed-width text: for each row ours, the paper's figures and the differences.

    Args:
        table: compare_with_paper()'s result.

    Returns:
        A legend, then three lines per row the paper prints ("ours" to 6 significant
        figures, "paper" as printed, "diff" (ours - paper) / |paper| with '*' where ours
        does not match at 3 significant figures, '!' where the printed figure is a probable
        slip) and the row's outcome; one line for rows the paper does not print. For a
        model with no comparable row, our figures alone.
    """
    if (table["row_match"] == NOT_COMPARABLE).all():
        ours = [[row] + [_cell(table.at[row, s], s) for s in STATISTICS] for row in table.index]
        return "Our figures (the paper's Table 1 has none of these rows):\n\n" + _text_table(["row", *STATISTICS], ours)
    body = []
    for row in table.index:
        outcome = table.at[row, "row_match"]
        body.append([row, "ours"] + [_cell(table.at[row, s], s) + " " for s in STATISTICS] + [outcome])
        if outcome == NOT_COMPARABLE:
            continue
        body.append(["", "paper"] + [_printed(table.at[row, f"{s}_paper"], s) + " " for s in STATISTICS] + [""])
        body.append(["", "diff"] + [_relative(table, row, s) + _mark(table, row, s) for s in STATISTICS] + [""])
    legend = (
        "Per row: ours (6 significant figures), the paper's figure as printed, and (ours - paper) / |paper|.\n"
        f"'*': ours, rounded to {SIGNIFICANT_FIGURES} significant figures, is not the printed figure; "
        "'!': the same, where the printed figure is probably a slip (see the note below).\n"
        f"matches: every printed figure of the row is ours at {SIGNIFICANT_FIGURES} significant figures "
        "(size exactly).\n\n"
    )
    header = ["row", "", *[s + " " for s in STATISTICS], "matches"]
    return legend + _text_table(header, body, left=2)


def format_report(table: pd.DataFrame, verdict_: Verdict | None = None) -> str:
    """What the table1 command prints: the table, the notes on probable slips, the verdict.

    Args:
        table: compare_with_paper()'s result.
        verdict_: its verdict (default verdict(table)).

    Returns:
        Text whose last paragraph is the verdict, its first line beginning "verdict: ".
    """
    verdict_ = verdict_ or verdict(table)
    parts = [format_table(table)]
    notes = slip_notes(table)
    if notes:
        parts.append("\n".join(f"note: {note}" for note in notes))
    parts.append("verdict: " + verdict_.text())
    return "\n\n".join(parts)


def format_csv(table: pd.DataFrame, verdict_: Verdict | None = None, title: str = "") -> str:
    """The table as CSV, preceded by '#' comment lines: a title, the notes and the verdict.

    Args:
        table: compare_with_paper()'s result.
        verdict_: its verdict (default verdict(table)).
        title: a first comment line, e.g. the weight file and model.

    Returns:
        CSV text; pandas reads it back with read_csv(path, comment="#", index_col="row").
    """
    verdict_ = verdict_ or verdict(table)
    comments = ([title] if title else []) + [f"note: {n}" for n in slip_notes(table)]
    comments += ("verdict: " + verdict_.text()).splitlines()
    body = io.StringIO()
    table.to_csv(body, float_format="%.9g")
    return "".join(f"# {line}\n" for line in comments) + body.getvalue()


def format_markdown(table: pd.DataFrame, verdict_: Verdict | None = None) -> str:
    """A markdown table with ours and the paper's figure side by side ("ours (paper)"),
    closed by a paragraph with the notes and the verdict.

    Args:
        table: compare_with_paper()'s result.
        verdict_: its verdict (default verdict(table)).

    Returns:
        Markdown text; figures of ours that do not match the printed one are bold.
    """
    verdict_ = verdict_ or verdict(table)
    header = "| row | " + " | ".join(STATISTICS) + " | matches |"
    rule = "|---|" + "---:|" * len(STATISTICS) + "---|"
    lines = [header, rule]
    for row in table.index:
        cells = []
        for s in STATISTICS:
            cell = _cell(table.at[row, s], s)
            if _mismatch(table, row, s):
                cell = f"**{cell}**"
            published = table.at[row, f"{s}_paper"]
            if not math.isnan(published):
                cell += f" ({_printed(published, s)})"
            cells.append(cell)
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {table.at[row, 'row_match']} |")
    if verdict_.comparable:
        closing = [
            f"Figures in parentheses: the paper's Table 1 as printed. Bold: ours, rounded to {SIGNIFICANT_FIGURES} "
            "significant figures, is not the printed figure (size: not equal)."
        ]
    else:
        closing = ["Our figures only: the paper's Table 1 has none of these rows."]
    closing += [f"Note: {note}." for note in slip_notes(table)]
    closing.append("**Verdict:** " + "; ".join([verdict_.headline(), *verdict_.remarks()]) + ".")
    text = "\n".join(lines) + "\n\n" + "\n\n".join(closing) + "\n"
    if verdict_.differing:
        text += "\n" + MOST_DIFFERENT[0].upper() + MOST_DIFFERENT[1:] + "\n\n"
        text += "".join(f"- {line}\n" for line in verdict_.most_different())
    return text


def write_table1(model, weights, csv=None, markdown=None) -> tuple[str, list]:
    """Table 1 for a weight file, beside the paper's, as `table1` prints and writes it.

    Args:
        model: a registered model's name or a deploy .prototxt (`models.create_model`).
        weights: its weight file.
        csv, markdown: where to write the table and verdict too (each atomically), or None.

    Returns:
        (the printed report, the paths written).
    """
    from replication.files import atomic_output
    from replication.models.registry import create_model

    table = table1(create_model(model, weights))
    outcome = verdict(table)
    title = f"Table 1 for {weights} ({model})"
    written = []
    for path, text in ((csv, lambda: format_csv(table, outcome, title)), (markdown, lambda: format_markdown(table, outcome))):
        if path:
            with atomic_output(path) as tmp:
                tmp.write_text(text())
            written.append(path)
    text = f"{title}, beside the paper's (Cheney, Schrimpf & Kreiman 2017, Table 1):\n\n{format_report(table, outcome)}"
    return text, written
