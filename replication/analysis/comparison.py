"""The paper's claims checked on results tables: what `compare` prints and writes, and
what `reproduce` runs on the tables of Figures 1-4 and of Figure 5."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from replication.analysis import claims, reports, stats
from replication.errors import ReplicationError
from replication.files import atomic_output


@dataclass(frozen=True)
class Comparison:
    """The claims table of some results tables, and how it was read."""

    table: pd.DataFrame  # one row per claim: the paper's value, ours, whether it holds, p
    fits: pd.DataFrame  # the paper's linear fits, read our way and the authors'
    header: str  # what was compared, and how
    text: str  # header, claims, counts and fits, as `compare` prints them


def compare_claims(results, metric="top5", layer_map=None, model=None, semantics=None, relative=True,
                   conventions="ours", after_block3_conv1="every") -> Comparison:
    """Every claim of the paper beside our value, on the given results tables.

    Args:
        results: one results table's path, or several (the claims that set node against
            synapse knockout need both tables).
        metric: "top5" or "top1".
        layer_map: {AlexNet layer: our layer}, a "conv_1=conv1,…" string, or None for
            the default reading (`claims.default_layer_map`).
        model, semantics: analyse only these rows, when a table holds several.
        relative: compare accuracies as fractions of the baseline (the paper's figures).
        conventions: "ours" or "authors": the fit "falls linearly" is read on; the r² claims
            are judged on the authors' fit either way (ours printed beside).
        after_block3_conv1: Figure 5's "every layer after block3_conv1": "every" (fc1, fc2
            and predictions included) or "conv" (its convolutional layers only).

    Returns:
        A `Comparison`.
    """
    from replication.run.table import read_table

    paths = [str(p) for p in ([results] if isinstance(results, (str, Path)) else results)]
    source = ", ".join(paths)
    raw = read_table(*paths)
    if raw.empty:
        raise ReplicationError(source, "holds no finished trials (a header and no rows): run a sweep first")
    df = stats.select(stats.tidy(raw, source), model=model, semantics=semantics)
    if isinstance(layer_map, str):
        layer_map = claims.parse_layer_map(layer_map)
    given = layer_map or None  # None: the default reading, under which a VGG-16 table gets only its own claims
    layer_map, how = (layer_map, "--layer-map") if given else claims.default_layer_map(df)
    table = claims.claims_table(df, metric, given, relative=relative, conventions=conventions,
                                after_block3_conv1=after_block3_conv1)
    fits = claims.fit_readings(df, metric, layer_map)
    header = reports.claims_header(df, source, metric, layer_map, how, relative, conventions)
    held = table["holds"].value_counts()
    kinds = table["kind"].value_counts()
    text = "\n".join([
        header, "", reports.claims_text(table), "",
        f"{len(table)} claims ({kinds.get('quantitative', 0)} quantitative, {kinds.get('qualitative', 0)} qualitative): "
        f"{held.get('yes', 0)} hold, {held.get('no', 0)} do not, {held.get('n.a.', 0)} not applicable (data missing)",
        "", reports.fits_text(fits),
    ])
    return Comparison(table, fits, header, text)


def write_comparison(comparison: Comparison, csv=None, markdown=None) -> list[Path]:
    """Write the claims table as CSV and/or markdown, each atomically; returns what was written."""
    written = []
    if csv:
        with atomic_output(csv) as tmp:
            comparison.table.to_csv(tmp, index=False)
        written.append(Path(csv))
    if markdown:
        with atomic_output(markdown) as tmp:
            tmp.write_text(reports.claims_markdown(comparison.table), encoding="utf-8")
        written.append(Path(markdown))
    return written
