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

The authors' own analysis scripts did two of these differently; `CONVENTIONS` names both
ways ("ours", the default, and "authors") so that either can be reported:
- their error bars are `np.std` over repeats, ddof 0 (their plot.py);
- their r² (results/findLinearFit.py) fits every trial, not the per-level means, plus one
  baseline point per layer, and pools every layer run except conv_1 against conv_1.
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
FIT_POINTS = ("means", "trials")


@dataclass(frozen=True)
class Conventions:
    """How the statistics are computed: ours, or as the authors' analysis scripts did."""

    name: str
    ddof: int  # of the standard deviation over repeats (error bars)
    fit_points: str  # "means": the mean at each level; "trials": every trial + one baseline per layer
    rest_of_network: tuple[str, ...]  # the paper's layers pooled into the "conv_2–conv_5" fit

    @property
    def rest_label(self) -> str:
        return "conv_2–conv_5" if self.rest_of_network == PAPER_FIT_GROUPS["conv_2–conv_5"] else "all but conv_1"


CONVENTIONS = {
    "ours": Conventions("ours", DDOF, "means", PAPER_FIT_GROUPS["conv_2–conv_5"]),
    # results/findLinearFit.py pools `data[data["layer"] != "conv_1"]`: every layer it found,
    # the dense layers too when they were run.
    "authors": Conventions(
        "authors", 0, "trials", ("conv_2", "conv_3", "conv_4", "conv_5", "dense_1", "dense_2", "dense_3")
    ),
}


def get_conventions(name: str) -> Conventions:
    """The conventions called `name` ("ours" or "authors"); ValueError otherwise."""
    if name not in CONVENTIONS:
        raise ValueError(f"conventions must be one of {tuple(CONVENTIONS)}, not {name!r}")
    return CONVENTIONS[name]


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


def summary(df: pd.DataFrame, ddof: int = DDOF) -> pd.DataFrame:
    """Mean, std and n over repeats per (layer, perturbation, level), both metrics.

    Args:
        df: a results table (`tidy`).
        ddof: of the standard deviation: 1 (ours, the default) or 0 (the authors' plots).

    Returns:
        One row per point, columns layer, perturbation, level, n, top1_mean, top1_std,
        top5_mean, top5_std; the shared baseline is one row, layer "-" and perturbation "none".
    """
    df = df.copy()
    base = df["level"] == 0
    df.loc[base, "layer"], df.loc[base, "perturbation"] = BASELINE_LAYER, BASELINE_PERTURBATION
    grouped = df.groupby(["layer", "perturbation", "level"], sort=False)
    out = grouped.size().rename("n").to_frame()
    for metric in METRICS:
        out[f"{metric}_mean"] = grouped[metric].mean()
        out[f"{metric}_std"] = grouped[metric].std(ddof=ddof)
    out = out.reset_index()
    # baseline first, then each layer's curves in table order, levels ascending
    layer_order = {name: i for i, name in enumerate(out["layer"].drop_duplicates())}
    layer_order[BASELINE_LAYER] = -1
    out = out.sort_values(["layer", "perturbation", "level"], key=lambda c: c.map(layer_order) if c.name == "layer" else c, kind="stable")
    return out.reset_index(drop=True)


def curve(df: pd.DataFrame, layer: str, perturbation: str, metric="top5", ddof: int = DDOF) -> pd.DataFrame:
    """level, mean, std (with `ddof`), n for one layer and perturbation, with the baseline at level 0."""
    rows = df[((df["layer"] == layer) & (df["perturbation"] == perturbation) & (df["level"] != 0)) | (df["level"] == 0)]
    grouped = rows.groupby("level")[metric]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=ddof), "n": grouped.size()}).reset_index()


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


def linear_fit(df: pd.DataFrame, layers, perturbation: str, metric="top5", points: str = "means") -> LinearFit:
    """Least-squares line of accuracy against level, pooled over `layers`.

    Args:
        df: a results table (`tidy`).
        layers: the layers pooled into one fit; those without trials add nothing.
        perturbation: whose trials.
        metric: "top1" or "top5".
        points: "means" (ours): the mean at each level, the baseline at level 0, per layer;
            "trials" (the authors' results/findLinearFit.py): every trial, plus one point
            (0, baseline) per layer.

    Returns:
        The fit; slope, intercept and r² are NaN with fewer than 2 distinct levels.
    """
    if points not in FIT_POINTS:
        raise ValueError(f"points must be one of {FIT_POINTS}, not {points!r}")
    base = baseline_values(df, metric)
    xs, ys = [], []
    for layer in layers:
        rows = df[(df["layer"] == layer) & (df["perturbation"] == perturbation) & (df["level"] != 0)]
        if rows.empty:  # a layer with no trials adds nothing, not a lone baseline
            continue
        if points == "means":
            c = curve(df, layer, perturbation, metric)
            xs.append(c["level"].to_numpy())
            ys.append(c["mean"].to_numpy())
        else:
            lone = [0.0] if base.size else []  # the authors' one baseline point per layer
            xs.append(np.array(lone + rows["level"].tolist(), float))
            ys.append(np.array(([float(base.mean())] if base.size else []) + rows[metric].tolist(), float))
    x = np.concatenate(xs) if xs else np.zeros(0)
    y = np.concatenate(ys) if ys else np.zeros(0)
    levels = len(np.unique(x))
    if levels < 2:
        return LinearFit(float("nan"), float("nan"), float("nan"), len(x), levels)
    fit = sps.linregress(x, y)
    return LinearFit(float(fit.slope), float(fit.intercept), float(fit.rvalue**2), len(x), levels)


def linear_fits(df: pd.DataFrame, metric="top5", groups=None, perturbations=("node", "synapse"), conventions="ours") -> pd.DataFrame:
    """r² of the paper's fits per perturbation.

    Args:
        df: a results table (`tidy`) in the paper's layer names, or with `groups` in its own.
        metric: "top1" or "top5".
        groups: label -> layers pooled; default conv_1 alone and the rest of the network
            as `conventions` pools it (conv_2–conv_5 for ours, all but conv_1 for the authors').
        perturbations: one fit per perturbation and group.
        conventions: "ours" (per-level means) or "authors" (every trial + baselines).

    Returns:
        One row per fit: perturbation, layers, r2, slope, intercept, points.
    """
    how = get_conventions(conventions)
    groups = {"conv_1": ("conv_1",), how.rest_label: how.rest_of_network} if groups is None else groups
    rows = []
    for perturbation in perturbations:
        for label, layers in groups.items():
            fit = linear_fit(df, layers, perturbation, metric, how.fit_points)
            rows.append({"perturbation": perturbation, "layers": label, "r2": fit.r2, "slope": fit.slope, "intercept": fit.intercept, "points": fit.points})
    return pd.DataFrame(rows)


def r2_interval(df: pd.DataFrame, layers, perturbation: str, metric="top5", points: str = "means",
                interval: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of `linear_fit`'s r²: the repeats at each (layer, level)
    are resampled with replacement, the baseline kept.

    Args:
        df: a results table (`tidy`).
        layers, perturbation, metric, points: as for `linear_fit`.
        interval: its coverage (0.95).
        resamples: bootstrap resamples.
        seed: of the generator, so that a table always gets the same interval.

    Returns:
        (low, high); NaN when no fit can be made, r² itself when no point has two repeats.
    """
    base = baseline_values(df, metric)
    base_value = float(base.mean()) if base.size else None
    cells, fixed_x, fixed_y = [], [], []
    for layer in layers:
        rows = df[(df["layer"] == layer) & (df["perturbation"] == perturbation) & (df["level"] != 0)]
        if rows.empty:
            continue
        if base_value is not None:
            fixed_x.append(0.0)
            fixed_y.append(base_value)
        cells += [(level, group[metric].to_numpy(float)) for level, group in rows.groupby("level")]
    if not cells:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    # Resampling within a cell keeps its level, so x is fixed and only y varies between resamples.
    drawn = [values[rng.integers(0, values.size, (resamples, values.size))] for _, values in cells]
    if points == "means":
        x = np.array(fixed_x + [level for level, _ in cells])
        ys = [d.mean(axis=1, keepdims=True) for d in drawn]
    else:
        x = np.concatenate([fixed_x, *[np.full(values.size, level) for level, values in cells]])
        ys = drawn
    y = np.concatenate([np.tile(np.asarray(fixed_y, float), (resamples, 1)), *ys], axis=1)
    if np.ptp(x) == 0:
        return float("nan"), float("nan")
    dx = x - x.mean()
    dy = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2s = (dy @ dx) ** 2 / ((dy**2).sum(axis=1) * (dx**2).sum())
    if np.isnan(r2s).all():
        return float("nan"), float("nan")
    tail = (1 - interval) / 2 * 100
    return float(np.nanpercentile(r2s, tail)), float(np.nanpercentile(r2s, 100 - tail))
