"""Statistics of a results table: mean ± std over repeats, rank-sum tests, linear fits.

Input is the sweep's results table as a DataFrame (`run.table.read_table`; one row per
finished trial). Rows with level 0 are the unperturbed network, evaluated once and
shared by every layer and perturbation: `curve` puts that baseline at level 0 of each
curve.

Conventions, stated once:
- std is the sample standard deviation (ddof=1) over repeats: with the paper's 5
  repeats (or our 2-3) the population formula would understate the spread. One
  repeat gives std NaN, not 0.
- levels are compared after rounding to 9 decimals, so 0.30000000000000004 is 0.3.
- p-values come from `scipy.stats.ranksums` (Wilcoxon rank-sum, normal
  approximation, two-sided), as in the paper.
- linear fits (`scipy.stats.linregress`) go through the mean at each level, level 0
  (the baseline) included: the points a figure plots. Pooling several layers puts all
  their points into one fit.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from replication.analysis.experiments import METRICS
from replication.errors import ReplicationError
from replication.run.table import BASELINE_LAYER, BASELINE_PERTURBATION

REQUIRED_COLUMNS = ("layer", "perturbation", "level", "repeat", "top1", "top5")
DDOF = 1
LEVEL_DECIMALS = 9

# The paper's fits: conv_1 alone, and conv_2..conv_5 pooled. Prototxt models pass their own.
PAPER_FIT_GROUPS = {"conv_1": ("conv_1",), "conv_2–conv_5": ("conv_2", "conv_3", "conv_4", "conv_5")}


def tidy(df: pd.DataFrame, path=None) -> pd.DataFrame:
    """Check a results DataFrame (required columns, metrics in [0, 1], no trial twice) and
    round its levels; `path` only names it in errors."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ReplicationError(path, f"results table lacks column(s) {', '.join(missing)}")
    df = df.copy()
    try:
        df["level"] = df["level"].astype(float).round(LEVEL_DECIMALS)
        for metric in METRICS:
            df[metric] = df[metric].astype(float)
    except ValueError as err:
        raise ReplicationError(path, f"non-numeric level or accuracy ({err})") from None
    for metric in METRICS:
        if ((df[metric] < 0) | (df[metric] > 1)).any():
            raise ReplicationError(path, f"{metric} must be a fraction in [0, 1]")
    trials = df[df["level"] != 0]
    repeated = trials.duplicated(["layer", "perturbation", "level", "repeat"], keep=False)
    if repeated.any():
        first = trials[repeated].iloc[0]
        raise ReplicationError(
            path, f"trial {first['layer']}/{first['perturbation']}/{first['level']}/repeat {first['repeat']} appears more than once"
        )
    return df


def select(df: pd.DataFrame, model=None, semantics=None) -> pd.DataFrame:
    """Rows of one experiment; refuse to pool different models, weights, data or semantics."""
    if model is not None:
        df = df[df["model"] == model]
    if semantics is not None and "semantics" in df.columns:
        df = df[(df["semantics"] == semantics) | (df["level"] == 0)]
    for column, hint in (("model", "--model"), ("weights_sha256", None), ("dataset_id", None), ("images", None), ("semantics", "--semantics")):
        rows = df if column != "semantics" else df[df["level"] != 0]  # the baseline has no semantics
        if column in df.columns and rows[column].nunique(dropna=False) > 1:
            values = ", ".join(map(str, sorted(rows[column].astype(str).unique())))
            choose = f"; choose one with {hint}" if hint else "; split the table first"
            raise ReplicationError(None, f"results mix several {column} values ({values}){choose}")
    if df.empty:
        raise ReplicationError(None, "no results left to analyse")
    return df


def baseline_values(df: pd.DataFrame, metric="top5") -> np.ndarray:
    return df.loc[df["level"] == 0, metric].to_numpy(float)


def trial_values(df: pd.DataFrame, layer: str, perturbation: str, level: float, metric="top5") -> np.ndarray:
    """The repeats of one (layer, perturbation, level); the baseline for level 0."""
    level = round(float(level), LEVEL_DECIMALS)
    if level == 0:
        return baseline_values(df, metric)
    rows = (df["layer"] == layer) & (df["perturbation"] == perturbation) & (df["level"] == level)
    return df.loc[rows, metric].to_numpy(float)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof=1) and n over repeats per (layer, perturbation, level), both metrics.

    The shared baseline is one row, layer "-" and perturbation "none".
    """
    df = df.copy()
    base = df["level"] == 0
    df.loc[base, "layer"], df.loc[base, "perturbation"] = BASELINE_LAYER, BASELINE_PERTURBATION
    grouped = df.groupby(["layer", "perturbation", "level"], sort=False)
    out = grouped.size().rename("n").to_frame()
    for metric in METRICS:
        out[f"{metric}_mean"] = grouped[metric].mean()
        out[f"{metric}_std"] = grouped[metric].std(ddof=DDOF)
    out = out.reset_index()
    # baseline first, then each layer's curves in table order, levels ascending
    layer_order = {name: i for i, name in enumerate(out["layer"].drop_duplicates())}
    layer_order[BASELINE_LAYER] = -1
    out = out.sort_values(["layer", "perturbation", "level"], key=lambda c: c.map(layer_order) if c.name == "layer" else c, kind="stable")
    return out.reset_index(drop=True)


def curve(df: pd.DataFrame, layer: str, perturbation: str, metric="top5") -> pd.DataFrame:
    """level, mean, std, n for one layer and perturbation, with the baseline at level 0."""
    rows = df[((df["layer"] == layer) & (df["perturbation"] == perturbation) & (df["level"] != 0)) | (df["level"] == 0)]
    grouped = rows.groupby("level")[metric]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=DDOF), "n": grouped.size()}).reset_index()


def relative_loss(value: float, baseline: float) -> float:
    """The fraction of the baseline accuracy lost: 1 − value / baseline."""
    return 1.0 - value / baseline


@dataclass(frozen=True)
class RankSum:
    statistic: float
    pvalue: float


def rank_sum(a, b) -> RankSum:
    """Two-sided Wilcoxon rank-sum test; NaN when either sample is empty."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return RankSum(float("nan"), float("nan"))
    result = sps.ranksums(a, b)
    return RankSum(float(result.statistic), float(result.pvalue))


def smallest_rank_sum_p(n_a: int, n_b: int) -> float:
    """The smallest p `rank_sum` can give with these sample sizes (fully separated samples).

    With 2 repeats against 2 it is 0.12: no difference can reach p < 0.05, however large.
    """
    return rank_sum(np.arange(n_a), np.arange(n_a, n_a + n_b)).pvalue


@dataclass(frozen=True)
class LinearFit:
    slope: float
    intercept: float
    r2: float
    points: int
    levels: int  # distinct levels; a fit through 2 levels has r² = 1 whatever the data


def linear_fit(df: pd.DataFrame, layers, perturbation: str, metric="top5") -> LinearFit:
    """Least-squares line of mean accuracy against level, pooled over `layers`."""
    xs, ys = [], []
    for layer in layers:
        c = curve(df, layer, perturbation, metric)
        if (c["level"] != 0).any():  # a layer with no trials adds nothing, not a lone baseline
            xs.append(c["level"].to_numpy())
            ys.append(c["mean"].to_numpy())
    x = np.concatenate(xs) if xs else np.zeros(0)
    y = np.concatenate(ys) if ys else np.zeros(0)
    levels = len(np.unique(x))
    if levels < 2:
        return LinearFit(float("nan"), float("nan"), float("nan"), len(x), levels)
    fit = sps.linregress(x, y)
    return LinearFit(float(fit.slope), float(fit.intercept), float(fit.rvalue**2), len(x), levels)


def linear_fits(df: pd.DataFrame, metric="top5", groups=None, perturbations=("node", "synapse")) -> pd.DataFrame:
    """r² of the paper's fits (default: conv_1 alone, conv_2–conv_5 pooled) per perturbation."""
    groups = PAPER_FIT_GROUPS if groups is None else groups
    rows = []
    for perturbation in perturbations:
        for label, layers in groups.items():
            fit = linear_fit(df, layers, perturbation, metric)
            rows.append({"perturbation": perturbation, "layers": label, "r2": fit.r2, "slope": fit.slope, "intercept": fit.intercept, "points": fit.points})
    return pd.DataFrame(rows)
