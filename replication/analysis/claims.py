"""The claim registry: every claim of the paper beside our value, and whether it holds.

A claim is one function and one registration (`@claim(id, text, perturbations, network=,
kind=)`); the claims table (`claims_table`), the figure reports and `python -m
replication.compare` all read the registry. Claims about another network register
themselves from their own module (claims_vgg.py, with a `@recognise` test for its tables);
this module imports none of them. The claims (Cheney, Schrimpf & Kreiman 2017, about
AlexNet on the ILSVRC2012 validation set) are listed below, one function each, in the
paper's order, the qualitative ones (orderings and curve shapes) last. Readings of the
paper that the text leaves open, chosen once here (docs/method.md cites the paper's lines):

- "loses x%" is a relative loss, 1 − accuracy / baseline: "50% node knockout in
  conv_1 loses > 95%" is impossible in absolute points from a baseline of 79.1%.
- Accuracy values (0.708, 0.607, 0.269) depend on the data set as much as on the
  network, so by default they are compared as fractions of each network's own
  baseline (0.708 / 0.791 against ours / our baseline); --absolute compares raw values.
- One policy for the paper's numbers. Our interval is the bootstrap 95% interval of the
  mean over repeats (`bootstrap_interval`; the baseline, evaluated once, gets the binomial
  interval over images). A published measurement (0.791, 0.607, 0.269, the r² values)
  holds when it lies inside our interval; a bound the paper observed (≥ 0.708, < 4.759%)
  fails only when our whole interval lies beyond it; a round bound or a direction (< 30%,
  > 70%, p < 0.05) is judged as a bound on the mean.
- "Up to 50%" is every level ≤ 0.5 run. A significance claim holds when the direction is
  right and every rank-sum p is below `ALPHA`, or below the bound the paper prints
  (`STEP_ALPHA` for the 10% steps).
- Claims about "every layer" or "any layer after conv_2" are checked on those of the
  layers the results contain; the detail column names the ones missing. A claim
  whose data are absent altogether (levels or layers not run) reads "n.a.".
- Chance is k / 1000 (top-5 0.005, top-1 0.001) and does not depend on the network's
  baseline, so the chance claims compare raw accuracies: "gives chance" holds within
  ±`TOLERANCE["chance"]`, "almost at chance" within `NEAR_CHANCE` above it.
- "More robust" (dense_1 and dense_2 against the conv layers under node knockout): at
  every level below 1 that both were run at, each dense layer's mean is above each conv
  layer's (at 1 every layer is at chance, section 4.1).
- A 0% knockout is the unperturbed network in every repeat, so a step from level 0 is
  tested against the baseline repeated as often as the other level's repeats.
- The r² claims are judged on the authors' fit (every trial of every layer but conv_1
  plus one baseline per layer), the statistic that produced the paper's values; ours,
  through the per-level means of conv_2–conv_5, is printed beside it.

For a model other than AlexNet the claims are still AlexNet's: `--layer-map` says
which of its layers plays which AlexNet layer. Without one, only the two roles that
transfer unambiguously are mapped: the first layer with results is conv_1 and the
last is dense_3 (the output layer); the mapping is printed above the table. A table of
a recognised other network (VGG-16) gets only its own claims unless a layer map is given.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from replication.analysis import stats
from replication.errors import ReplicationError

PAPER_LAYERS = ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5", "dense_1", "dense_2", "dense_3")
AFTER_CONV_2 = PAPER_LAYERS[2:]
PAPER_BASELINE = 0.791  # AlexNet top-5, unperturbed
ALPHA = 0.05
STEP_ALPHA = 0.0167  # the bound the paper prints for its 10% steps: 0.05 corrected for three comparisons
TOLERANCE = {"chance": 0.01}
INTERVAL = 0.95  # our interval around a value: the bootstrap 95% interval of the mean over repeats
BOOTSTRAP = 2000  # resamples; the generator is seeded, so a table always gets the same interval
SEED = 0
LINEAR_R2 = 0.95  # our reading of "falls linearly"
NEAR_CHANCE = 0.05  # our reading of "almost at chance": at most this far above chance
CLASSES = 1000  # ILSVRC2012
TOP_K = {"top1": 1, "top5": 5}


def chance(metric: str) -> float:
    """The accuracy of a guess: k / 1000 for top-k."""
    return TOP_K[metric] / CLASSES


class Missing(Exception):
    """The results lack what a claim needs (layer not mapped or not run, level not run)."""


@dataclass(frozen=True)
class Outcome:
    paper: str
    ours: str
    holds: bool | None  # None: not applicable (Missing)
    p_value: float = float("nan")
    detail: str = ""
    # (the paper's value, ours, our interval's low and high end), on the scale the claim is judged
    # on (a fraction of the baseline, a loss, r², a p-value or the statistic it prints), for the
    # paper-against-ours picture; NaN where a claim has no such number
    numbers: tuple[float, float, float, float] = (float("nan"),) * 4


class Evidence:
    """Our results seen through the paper's layer names."""

    def __init__(self, df: pd.DataFrame, metric: str, layer_map: dict[str, str], relative: bool,
                 conventions: stats.Conventions = stats.CONVENTIONS["ours"], options: dict | None = None):
        self.df, self.metric, self.layer_map, self.relative = df, metric, layer_map, relative
        self.conventions = conventions
        self.options = dict(options or {})  # readings a claim lets the user choose (`claims_table`)
        base = stats.baseline_values(df, metric)
        self.baseline = float(base.mean()) if base.size else None
        trials = df[df["level"] != 0].groupby(["layer", "perturbation", "level"])[metric]
        self._repeats = {key: group.to_numpy(float) for key, group in trials}  # looked up hundreds of times

    def ours(self, layer: str) -> str:
        if layer not in self.layer_map:
            raise Missing(f"{layer} is not mapped to a layer of this model")
        return self.layer_map[layer]

    def values(self, layer: str, perturbation: str, level: float) -> np.ndarray:
        name = self.ours(layer)
        values = self._repeats.get((name, perturbation, round(float(level), stats.LEVEL_DECIMALS)), np.zeros(0))
        if values.size == 0:
            alias = "" if name == layer else f" ({name})"
            raise Missing(f"no {perturbation} results for {layer}{alias} at level {level:g}")
        return values

    def levels(self, layer: str, perturbation: str) -> list[float]:
        """The perturbed levels (> 0) run for this layer and perturbation."""
        name = self.ours(layer)
        return sorted(level for (other, k, level) in self._repeats if other == name and k == perturbation)

    def mean(self, layer: str, perturbation: str, level: float) -> float:
        return float(self.values(layer, perturbation, level).mean())

    def interval(self, layer: str, perturbation: str, level: float) -> tuple[float, float]:
        """Our interval for the mean accuracy at one point: bootstrap 95% over repeats."""
        return bootstrap_interval(self.values(layer, perturbation, level))

    def loss_interval(self, layer: str, perturbation: str, level: float) -> tuple[float, float]:
        """Our interval for the relative loss at one point (the baseline taken as exact)."""
        low, high = self.interval(layer, perturbation, level)
        base = self.require_baseline()
        return stats.relative_loss(high, base), stats.relative_loss(low, base)

    def require_baseline(self) -> float:
        if not self.baseline:  # None, or 0 (nothing to be relative to)
            raise Missing("no unperturbed (level 0) result with accuracy above 0")
        return self.baseline

    def loss(self, layer: str, perturbation: str, level: float) -> float:
        return stats.relative_loss(self.mean(layer, perturbation, level), self.require_baseline())

    def available(self, layers, perturbation: str, level: float) -> tuple[list[str], list[str]]:
        """(layers with results at this level, layers without)."""
        have = []
        for layer in layers:
            try:
                self.values(layer, perturbation, level)
                have.append(layer)
            except Missing:
                pass
        return have, [layer for layer in layers if layer not in have]

    def scaled(self, paper_value: float, our_value: float) -> tuple[float, float, str, str]:
        """Both accuracies on the scale the claims are judged on, and how to print them."""
        if not self.relative:
            return paper_value, our_value, f"{paper_value:.3f}", f"{our_value:.3f}"
        base = self.require_baseline()
        p, o = paper_value / PAPER_BASELINE, our_value / base
        return p, o, f"{paper_value:.3f} = {p:.3f}×baseline", f"{our_value:.3f} = {o:.3f}×baseline"

    def fit(self, layers, perturbation: str, points: str = "means") -> tuple[stats.LinearFit, list[str]]:
        """The pooled linear fit over those of `layers` that were run, and their names."""
        mapped = [layer for layer in layers if layer in self.layer_map]
        if not mapped:
            raise Missing(f"{'/'.join(layers)} not mapped to layers of this model")
        used = [layer for layer in mapped if self.levels(layer, perturbation)]
        fit = stats.linear_fit(self.df, [self.layer_map[layer] for layer in used], perturbation, self.metric, points)
        if fit.levels < 3:
            raise Missing(f"{perturbation} knockout of {'/'.join(layers)}: fewer than 3 levels (baseline included) to fit")
        return fit, used

    def fits(self, group: str, perturbation: str) -> dict[str, tuple[stats.LinearFit, list[str]] | Missing]:
        """Both readings of one of the paper's fits, by conventions name: group "conv_1"
        (conv_1 alone) or "rest" (conv_2–conv_5, or all but conv_1 for the authors'),
        or a paper layer name (that layer alone); Missing where a reading cannot be made."""
        out = {}
        for name, how in stats.CONVENTIONS.items():
            layers = how.rest_of_network if group == "rest" else (group,)
            try:
                out[name] = self.fit(layers, perturbation, how.fit_points)
            except Missing as why:
                out[name] = why
        return out


def _significance_note(a: np.ndarray, b: np.ndarray, alpha: float = ALPHA) -> str:
    floor = stats.smallest_rank_sum_p(a.size, b.size)
    if floor > alpha or (alpha == ALPHA and floor >= alpha):
        return f"with {a.size} vs {b.size} repeats p cannot go below {floor:.3f}"
    return ""


def bootstrap_interval(values, statistic=np.mean) -> tuple[float, float]:
    """The percentile bootstrap `INTERVAL` interval of `statistic` over repeats.

    Args:
        values: the repeats of one point.
        statistic: reduces one resample (along its last axis) to a number.

    Returns:
        (low, high); both the value itself with a single repeat (no spread to resample).
    """
    values = np.asarray(values, float)
    if values.size < 2:
        value = float(statistic(values, axis=-1)) if values.size else float("nan")
        return value, value
    rng = np.random.default_rng(SEED)
    resamples = statistic(values[rng.integers(0, values.size, (BOOTSTRAP, values.size))], axis=-1)
    tail = (1 - INTERVAL) / 2 * 100
    return float(np.percentile(resamples, tail)), float(np.percentile(resamples, 100 - tail))


def inside(paper: float, interval: tuple[float, float]) -> bool:
    """Policy for a published measurement: it holds when it lies inside our interval."""
    return interval[0] - 1e-12 <= paper <= interval[1] + 1e-12


def interval_text(interval: tuple[float, float], fmt: str = ".3f") -> str:
    return f"[{interval[0]:{fmt}}, {interval[1]:{fmt}}]"


MEASUREMENT = "a published measurement: holds when inside our bootstrap 95% interval over repeats"
OBSERVED_BOUND = "a bound the paper observed: holds unless our whole interval lies beyond it"


# --- the claims, in the paper's order ----------------------------------------------


@dataclass(frozen=True)
class Claim:
    id: str  # stable handle for notebooks and tests
    text: str  # the paper's statement, in AlexNet's layer names
    check: Callable[[Evidence], Outcome]
    perturbations: tuple[str, ...]  # the perturbations it is about; () for the unperturbed network
    network: str = "AlexNet"  # the network the paper states it about
    kind: str = "quantitative"  # or "qualitative": ordinal, or about a curve's shape


CLAIMS: list[Claim] = []
# Network name -> a test that recognises a results table of that network. A module of claims
# about another network registers its test here (`recognise`), beside its claims.
NETWORKS: dict[str, Callable[[pd.DataFrame], bool]] = {}


def recognise(network: str):
    """Decorator: register `test(df) -> bool`, which recognises results of `network`.

    On a table of a recognised network other than AlexNet, AlexNet's claims read n.a.
    unless the caller maps layers explicitly.
    """

    def register(test):
        NETWORKS[network] = test
        return test

    return register


def network_of(df: pd.DataFrame) -> str | None:
    """The registered network whose test recognises `df`, or None."""
    return next((name for name, test in NETWORKS.items() if test(df)), None)


def claim(claim_id: str, text: str, perturbations: tuple[str, ...] = (), network: str = "AlexNet",
          kind: str = "quantitative"):
    """Decorator: register `check(evidence) -> Outcome` as the claim `claim_id`.

    Args:
        claim_id: a stable handle (tests and notebooks look claims up by it).
        text: the paper's statement.
        perturbations: the perturbations the claim is about; a figure's report shows
            the claims about its perturbation and those about none.
        network: the network the paper states it about ("AlexNet", "VGG-16").
        kind: "quantitative" (a number of the paper) or "qualitative" (an ordering or a
            curve's shape, decided by the statistic the claim prints).
    """
    if kind not in ("quantitative", "qualitative"):
        raise ValueError(f"kind must be quantitative or qualitative, not {kind!r}")

    def register(check):
        if any(c.id == claim_id for c in CLAIMS):
            raise ValueError(f"a claim with id {claim_id!r} is already registered")
        CLAIMS.append(Claim(claim_id, text, check, tuple(perturbations), network, kind))
        return check

    return register


def claims_about(perturbation: str) -> list[Claim]:
    """The claims a figure of `perturbation` can speak to: those about it and the general ones."""
    return [c for c in CLAIMS if not c.perturbations or perturbation in c.perturbations]


@claim("baseline", "Unperturbed AlexNet: top-5 accuracy 0.791", ())
def _baseline(ev: Evidence) -> Outcome:
    if ev.metric != "top5":
        raise Missing("the paper states the top-5 baseline only")
    base = ev.require_baseline()
    images = ev.df.loc[ev.df["level"] == 0, "images"] if "images" in ev.df.columns else pd.Series(dtype=float)
    n = int(images.iloc[0]) if images.size and pd.notna(images.iloc[0]) else 0
    interval = wilson_interval(base, n) if n else (base, base)
    how = f"binomial (Wilson) 95% interval over {n} images: the unperturbed network has no repeats" if n else "no image count: no interval"
    return Outcome("0.791", f"{base:.3f} {interval_text(interval)}", inside(PAPER_BASELINE, interval),
                   numbers=(PAPER_BASELINE, base, *interval),
                   detail=f"{MEASUREMENT}; {how}")


def wilson_interval(accuracy: float, images: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson 95% interval of an accuracy measured on `images` images."""
    centre = (accuracy + z * z / (2 * images)) / (1 + z * z / images)
    half = z / (1 + z * z / images) * np.sqrt(accuracy * (1 - accuracy) / images + z * z / (4 * images * images))
    return float(centre - half), float(centre + half)


UP_TO = 0.5


@claim("synapse50_conv3_5", "Up to 50% synapse knockout: conv_3, conv_4 and conv_5 keep top-5 ≥ 0.708", ("synapse",))
def _syn50_top(ev):
    points = {}
    for layer in ("conv_3", "conv_4", "conv_5"):
        levels = [lv for lv in ev.levels(layer, "synapse") if lv <= UP_TO]
        if UP_TO not in levels:
            raise Missing(f"no synapse knockout results for {layer} at 0.5")
        points.update({(layer, lv): ev.mean(layer, "synapse", lv) for lv in levels})
    (layer, level), worst = min(points.items(), key=lambda item: item[1])
    low, high = ev.interval(layer, "synapse", level)
    paper, ours, paper_text, ours_text = ev.scaled(0.708, worst)
    scale = ours / worst if worst else 1.0
    holds = high * scale >= paper  # an observed bound: fails only when our whole interval is below it
    detail = (f"'up to 50%' = every level ≤ 0.5 run ({len(points)} points); lowest: {layer} at {level:g}, "
              f"interval {interval_text((low * scale, high * scale))}; {OBSERVED_BOUND}")
    return Outcome(f"≥ {paper_text}", ours_text, holds, detail=detail, numbers=(paper, ours, low * scale, high * scale))


def _point_claim(ev, layer, perturbation, level, paper_value):
    low, high = ev.interval(layer, perturbation, level)
    paper, ours, paper_text, ours_text = ev.scaled(paper_value, ev.mean(layer, perturbation, level))
    scale = ours / ev.mean(layer, perturbation, level) if ev.mean(layer, perturbation, level) else 1.0
    interval = (low * scale, high * scale)
    return Outcome(paper_text, f"{ours_text} {interval_text(interval)}", inside(paper, interval), detail=MEASUREMENT,
                   numbers=(paper, ours, *interval))


@claim("synapse50_conv2", "50% synapse knockout: conv_2 keeps top-5 0.607", ("synapse",))
def _syn50_conv2(ev):
    return _point_claim(ev, "conv_2", "synapse", 0.5, 0.607)


def _below_each(ev, layer, level, others, other_level, perturbation="synapse") -> Outcome:
    """`layer` at `level` below each of `others` at `other_level`: lower mean and rank-sum p < ALPHA."""
    low = ev.values(layer, perturbation, level)
    have, missing = ev.available(others, perturbation, other_level)
    if not have:
        raise Missing(f"no {perturbation} results for {'/'.join(others)} at {other_level:g}")
    pvalues, lower, notes = [], 0, set()
    for other in have:
        values = ev.values(other, perturbation, other_level)
        pvalues.append(stats.rank_sum(low, values).pvalue)
        lower += low.mean() < values.mean()
        notes.add(_significance_note(low, values))
    worst = max(pvalues)
    details = sorted(n for n in notes if n) + ([f"not run: {', '.join(missing)}"] if missing else [])
    holds = lower == len(have) and worst < ALPHA
    return Outcome("p < 0.05", f"lower than {lower}/{len(have)}, max p {worst:.3g}", holds, worst, "; ".join(details),
                   numbers=(ALPHA, worst, worst, worst))


@claim("synapse50_conv2_below_conv3_5", "50% synapse knockout: conv_2 is below each of conv_3–conv_5 (p < 0.05)", ("synapse",))
def _syn50_conv2_significant(ev):
    return _below_each(ev, "conv_2", 0.5, ("conv_3", "conv_4", "conv_5"), 0.5)


@claim("synapse50_conv1", "50% synapse knockout: conv_1 keeps top-5 0.269", ("synapse",))
def _syn50_conv1(ev):
    return _point_claim(ev, "conv_1", "synapse", 0.5, 0.269)


@claim("dense_synapse_to80", "dense_1 and dense_2 lose < 4.759% up to 80% synapse knockout", ("synapse",))
def _dense_robust(ev):
    losses = {}
    for layer in ("dense_1", "dense_2"):
        levels = [lv for lv in ev.levels(layer, "synapse") if lv <= 0.8]
        if not levels:
            raise Missing(f"no synapse knockout results for {layer} at levels up to 0.8")
        losses.update({(layer, lv): ev.loss_interval(layer, "synapse", lv) for lv in levels})
    beyond = [key for key, (low, _) in losses.items() if low >= 0.04759]
    (layer, level), worst = max(losses.items(), key=lambda item: item[1][0] + item[1][1])
    highest = max(lv for _, lv in losses)
    detail = (f"worst: {layer} at {level:g}, loss interval {interval_text(worst, '.2%')}; {OBSERVED_BOUND}"
              + ("" if highest >= 0.8 else f"; levels only up to {highest:g}")
              + (f"; beyond it: {', '.join(f'{la}@{lv:g}' for la, lv in beyond)}" if beyond else ""))
    mean_loss = ev.loss(layer, "synapse", level)
    return Outcome("loss < 4.759%", f"max loss {mean_loss:.2%}", not beyond, detail=detail,
                   numbers=(0.04759, mean_loss, *worst))


@claim("conv1_synapse30_vs_conv3_5_synapse70", "30% synapse knockout in conv_1 is worse than 70% in any of conv_3–conv_5", ("synapse",))
def _conv1_fragile(ev):
    conv1 = ev.mean("conv_1", "synapse", 0.3)
    others = {layer: ev.mean(layer, "synapse", 0.7) for layer in ("conv_3", "conv_4", "conv_5")}
    worst = min(others, key=others.get)
    return Outcome(
        "conv_1@0.3 < min conv_3–5@0.7", f"{conv1:.3f} vs {others[worst]:.3f}", conv1 < others[worst], detail=f"lowest at 0.7: {worst}",
        numbers=(others[worst], conv1, *ev.interval("conv_1", "synapse", 0.3)),
    )


@claim("after_conv2_synapse70", "70% synapse knockout in any layer after conv_2 loses < 30%", ("synapse",))
def _after_conv2_robust(ev):
    return _max_loss_claim(ev, "synapse", 0.7, 0.30)


def _max_loss_claim(ev, perturbation, level, bound):
    have, missing = ev.available(AFTER_CONV_2, perturbation, level)
    if not have:
        raise Missing(f"no {perturbation} results after conv_2 at {level:g}")
    losses = {layer: ev.loss(layer, perturbation, level) for layer in have}
    worst = max(losses, key=losses.get)
    detail = f"worst: {worst}" + (f"; not run: {', '.join(missing)}" if missing else "")
    low, high = ev.loss_interval(worst, perturbation, level)
    return Outcome(f"loss < {bound:.0%}", f"max loss {losses[worst]:.1%}", losses[worst] < bound, detail=detail,
                   numbers=(bound, losses[worst], low, high))


READING = {"ours": "per-level means", "authors": "authors' fit"}


def _judged_fit(ev, group, perturbation, active: str | None = None) -> tuple[stats.LinearFit, str, str]:
    """(the fit of `active` conventions (default: the evidence's), its r² beside the other reading's, detail)."""
    fits = ev.fits(group, perturbation)
    active = active or ev.conventions.name
    (other,) = (name for name in fits if name != active)
    beside = "" if isinstance(fits[other], Missing) else f"; {READING[other]} {fits[other][0].r2:.3f}"
    if isinstance(fits[active], Missing):
        raise Missing(str(fits[active]) + beside)
    fit, used = fits[active]
    how = "every trial + one baseline per layer" if stats.CONVENTIONS[active].fit_points == "trials" else "per-level means"
    detail = f"{active} conventions, {how} of {', '.join(used)}: {fit.points} points"
    return fit, f"r² {fit.r2:.3f}{beside}", detail


def _r2_claim(ev, group, perturbation, paper_r2):
    # The published r² came from the authors' fit: the verdict uses that statistic, ours is printed beside.
    fit, ours, detail = _judged_fit(ev, group, perturbation, "authors")
    how = stats.CONVENTIONS["authors"]
    layers = how.rest_of_network if group == "rest" else (group,)
    used = [ev.layer_map[layer] for layer in layers if layer in ev.layer_map and ev.levels(layer, perturbation)]
    interval = stats.r2_interval(ev.df, used, perturbation, ev.metric, how.fit_points, INTERVAL, BOOTSTRAP, SEED)
    return Outcome(f"r² {paper_r2:.3f}", f"{ours} {interval_text(interval)}", inside(paper_r2, interval),
                   numbers=(paper_r2, fit.r2, *interval),
                   detail=f"judged on the authors' fit; {detail}; {MEASUREMENT} (trials resampled within each level)")


CONV_2_5 = ("conv_2", "conv_3", "conv_4", "conv_5")


@claim("node_r2_conv2_5", "Node knockout, linear fit pooled over conv_2–conv_5: r² 0.963", ("node",))
def _node_r2_rest(ev):
    return _r2_claim(ev, "rest", "node", 0.963)


@claim("node_r2_conv1", "Node knockout, linear fit for conv_1: r² 0.715", ("node",))
def _node_r2_conv1(ev):
    return _r2_claim(ev, "conv_1", "node", 0.715)


@claim("synapse_r2_conv2_5", "Synapse knockout, linear fit pooled over conv_2–conv_5: r² 0.553", ("synapse",))
def _syn_r2_rest(ev):
    return _r2_claim(ev, "rest", "synapse", 0.553)


@claim("synapse_r2_conv1", "Synapse knockout, linear fit for conv_1: r² 0.930", ("synapse",))
def _syn_r2_conv1(ev):
    return _r2_claim(ev, "conv_1", "synapse", 0.930)


NODE_VS_SYNAPSE_LEVELS = tuple(round(0.1 * i, 1) for i in range(1, 10))
NODE_VS_SYNAPSE_EXCEPTION = ("conv_2", 0.9)


@claim("node_worse_than_synapse", "Node knockout is worse than synapse knockout at every proportion 0.1–0.9 in every layer (p < 0.05), except conv_2 at 0.9", ("node", "synapse"))
def _node_worse(ev):
    failures, pvalues, notes = [], [], set()
    for layer in PAPER_LAYERS:
        for level in NODE_VS_SYNAPSE_LEVELS:
            if (layer, level) == NODE_VS_SYNAPSE_EXCEPTION:
                continue
            try:
                node, synapse = ev.values(layer, "node", level), ev.values(layer, "synapse", level)
            except Missing:
                continue
            p = stats.rank_sum(node, synapse).pvalue
            pvalues.append(p)
            notes.add(_significance_note(node, synapse))
            if not (node.mean() < synapse.mean() and p < ALPHA):
                failures.append(f"{layer}@{level:g}")
    if not pvalues:
        raise Missing("no layer has both node and synapse knockout results at 0.1–0.9")
    details = sorted(n for n in notes if n)
    if failures:
        details.insert(0, "fails at " + ", ".join(failures[:4]) + (" …" if len(failures) > 4 else ""))
    ours = f"{len(pvalues) - len(failures)}/{len(pvalues)} pairs"
    return Outcome("all pairs, p < 0.05", ours, not failures, max(pvalues), "; ".join(details),
                   numbers=(ALPHA, max(pvalues), min(pvalues), max(pvalues)))


@claim("node_vs_synapse_conv2_90", "… the exception: at 90% in conv_2 node and synapse knockout do not differ significantly", ("node", "synapse"))
def _node_worse_exception(ev):
    layer, level = NODE_VS_SYNAPSE_EXCEPTION
    node, synapse = ev.values(layer, "node", level), ev.values(layer, "synapse", level)
    p = stats.rank_sum(node, synapse).pvalue
    note = _significance_note(node, synapse)
    return Outcome("p ≥ 0.05", f"p {p:.3g}", p >= ALPHA, p, note + (" (so this holds trivially)" if note else ""),
                   numbers=(ALPHA, p, p, p))


@claim("node30_conv1", "30% node knockout in conv_1 loses > 70%", ("node",))
def _node30_conv1(ev):
    loss = ev.loss("conv_1", "node", 0.3)
    return Outcome("loss > 70%", f"loss {loss:.1%}", loss > 0.70,
                   numbers=(0.70, loss, *ev.loss_interval("conv_1", "node", 0.3)))


@claim("node50_conv1", "50% node knockout in conv_1 loses > 95%", ("node",))
def _node50_conv1(ev):
    loss = ev.loss("conv_1", "node", 0.5)
    return Outcome("loss > 95%", f"loss {loss:.1%}", loss > 0.95,
                   numbers=(0.95, loss, *ev.loss_interval("conv_1", "node", 0.5)))


@claim("gaussian1_after_conv2", "Gaussian noise with k = 1 in any layer after conv_2 loses < 6%", ("gaussian",))
def _gaussian_robust(ev):
    return _max_loss_claim(ev, "gaussian", 1.0, 0.06)


@claim("output_node_linear", "Node knockout of the output layer (dense_3) makes accuracy fall linearly", ("node",))
def _output_linear(ev):
    fit, ours, _ = _judged_fit(ev, "dense_3", "node")
    holds = fit.r2 >= LINEAR_R2 and fit.slope < 0
    detail = f"our reading: r² ≥ {LINEAR_R2}; a fall in proportion, baseline×(1−p), has slope {-ev.require_baseline():.3f}"
    return Outcome("linear", f"{ours}, slope {fit.slope:.3f}", holds, detail=detail, numbers=(LINEAR_R2, fit.r2, fit.r2, fit.r2))


# --- claims of sections 4.1, 4.2, 5, the abstract and the discussion ----------------------


@claim("knockout100_chance", "100% synapse or node knockout of any layer gives chance, top-5 0.005", ("synapse", "node"))
def _knockout100_chance(ev):
    target, means, missing = chance(ev.metric), {}, set()
    for perturbation in ("synapse", "node"):
        have, lacking = ev.available(PAPER_LAYERS, perturbation, 1.0)
        means.update({(layer, perturbation): ev.mean(layer, perturbation, 1.0) for layer in have})
        missing.update(f"{layer} {perturbation}" for layer in lacking if layer in ev.layer_map)
    if not means:
        raise Missing("no synapse or node knockout results at level 1")
    (layer, perturbation), worst = max(means.items(), key=lambda item: abs(item[1] - target))
    detail = f"raw accuracies within ±{TOLERANCE['chance']}; furthest: {layer} {perturbation}; {len(means)} curves"
    if missing:
        detail += f"; not run: {', '.join(sorted(missing))}"
    holds = all(abs(mean - target) <= TOLERANCE["chance"] for mean in means.values())
    return Outcome(f"{target:.3f}", f"{worst:.4f}", holds, detail=detail, numbers=(target, worst, *ev.interval(layer, perturbation, 1.0)))


@claim("synapse50_conv1_below_conv2_5", "50% synapse knockout: conv_1 is below each of conv_2–conv_5 (p < 0.05)", ("synapse",))
def _syn50_conv1_significant(ev):
    return _below_each(ev, "conv_1", 0.5, CONV_2_5, 0.5)


@claim("conv1_synapse30_below_conv3_5_synapse70_p", "30% synapse knockout in conv_1 is below 70% in each of conv_3–conv_5 (p < 0.05)", ("synapse",))
def _conv1_fragile_significant(ev):
    return _below_each(ev, "conv_1", 0.3, ("conv_3", "conv_4", "conv_5"), 0.7)


DENSE = ("dense_1", "dense_2")
CONVS = PAPER_LAYERS[:5]


@claim("dense_node_more_robust", "Node knockout: dense_1 and dense_2 are more robust than the conv layers", ("node",))
def _dense_node_robust(ev):
    margins = {}
    for dense in (layer for layer in DENSE if layer in ev.layer_map):
        for conv in (layer for layer in CONVS if layer in ev.layer_map):
            common = set(ev.levels(dense, "node")) & set(ev.levels(conv, "node"))
            for level in (lv for lv in common if lv < 1):  # at 1 every layer is at chance
                margins[(dense, conv, level)] = ev.mean(dense, "node", level) - ev.mean(conv, "node", level)
    if not margins:
        raise Missing("no dense_1/dense_2 and conv layer node knockout results at a common level below 1")
    (dense, conv, level), worst = min(margins.items(), key=lambda item: item[1])
    below = sum(m <= 0 for m in margins.values())
    detail = f"our reading: above at every common level < 1; {len(margins) - below}/{len(margins)} comparisons above"
    return Outcome("dense above every conv layer", f"smallest margin {worst:+.3f} ({dense} − {conv} at {level:g})", below == 0,
                   detail=detail, numbers=(0.0, worst, min(margins.values()), max(margins.values())))


GAUSSIAN_TEST_K = 2.0  # the authors' results/plotPerturbationPerformance.py tests its largest k, 2.00
# L137 with L187 ("the performance decreases tend to stagnate in the higher convolutional
# layers (3-5)"): the ordering is not claimed among conv_3, conv_4 and conv_5.
STAGNANT = ("conv_3", "conv_4", "conv_5")
GAUSSIAN_EXCEPTIONS = tuple((a, b) for i, a in enumerate(STAGNANT) for b in STAGNANT[i + 1 :])


@claim("gaussian_lower_conv_worse", "Gaussian noise: a lower conv layer is worse than a higher one at the same k (all p ≤ 0.0495), except among conv_3, conv_4 and conv_5", ("gaussian",))
def _gaussian_lower_worse(ev):
    have, missing = ev.available(CONVS, "gaussian", GAUSSIAN_TEST_K)
    pairs = [(a, b) for i, a in enumerate(have) for b in have[i + 1 :] if (a, b) not in GAUSSIAN_EXCEPTIONS]
    excepted = [(a, b) for i, a in enumerate(have) for b in have[i + 1 :] if (a, b) in GAUSSIAN_EXCEPTIONS]
    if not pairs:
        raise Missing(f"fewer than two conv layers (the exception aside) with Gaussian results at k = {GAUSSIAN_TEST_K:g}")
    failures, pvalues, notes = [], [], set()
    for lower, higher in pairs:
        low, high = ev.values(lower, "gaussian", GAUSSIAN_TEST_K), ev.values(higher, "gaussian", GAUSSIAN_TEST_K)
        p = stats.rank_sum(low, high).pvalue
        pvalues.append(p)
        notes.add(_significance_note(low, high))
        if not (low.mean() < high.mean() and p < ALPHA):
            failures.append(f"{lower}<{higher}")
    reading = "reading of L137 with L187: no ordering claimed among conv_3, conv_4, conv_5"
    if excepted:
        reading += " (" + ", ".join(
            f"{a} vs {b} p {stats.rank_sum(ev.values(a, 'gaussian', GAUSSIAN_TEST_K), ev.values(b, 'gaussian', GAUSSIAN_TEST_K)).pvalue:.3g}"
            for a, b in excepted) + ")"
    details = [f"at k = {GAUSSIAN_TEST_K:g}", reading] + sorted(n for n in notes if n)
    if failures:
        details.insert(1, "fails: " + ", ".join(failures))
    if missing:
        details.append(f"not run: {', '.join(missing)}")
    ours = f"{len(pairs) - len(failures)}/{len(pairs)} pairs, max p {max(pvalues):.3g}"
    return Outcome("all pairs, p ≤ 0.0495", ours, not failures, max(pvalues), "; ".join(details),
                   numbers=(0.0495, max(pvalues), min(pvalues), max(pvalues)))


@claim("conv1_synapse_beyond70_near_chance", "Beyond 70% synapse knockout conv_1 is almost at chance", ("synapse",))
def _conv1_near_chance(ev):
    levels = [lv for lv in ev.levels("conv_1", "synapse") if lv > 0.7]
    if not levels:
        raise Missing("no synapse knockout results for conv_1 above 0.7")
    means = {lv: ev.mean("conv_1", "synapse", lv) for lv in levels}
    level = max(means, key=means.get)
    bound = chance(ev.metric) + NEAR_CHANCE
    detail = f"our reading: raw accuracy ≤ chance + {NEAR_CHANCE} = {bound:.3f} at every level > 0.7 run ({', '.join(f'{lv:g}' for lv in levels)})"
    return Outcome(f"≈ {chance(ev.metric):.3f}", f"max {means[level]:.3f} at {level:g}", means[level] <= bound, detail=detail,
                   numbers=(chance(ev.metric), means[level], *ev.interval("conv_1", "synapse", level)))


STEP = 0.1
STEP_EXCEPTION = ("dense_2", 0.0)  # paper: p = 0.425 from 0 to 0.1


@claim("synapse_steps_significant", "Every further 10% of synapse knockout lowers accuracy significantly (p ≤ 0.0167), except dense_2 from 0 to 0.1 (p = 0.425)", ("synapse",))
def _synapse_steps(ev):
    failures, pvalues, notes, exception = [], [], set(), ""
    for layer in (name for name in PAPER_LAYERS if name in ev.layer_map):
        levels = [0.0, *ev.levels(layer, "synapse")]
        for a, b in zip(levels, levels[1:]):
            if round(b - a, stats.LEVEL_DECIMALS) != STEP:
                continue
            after = ev.values(layer, "synapse", b)
            # A 0% knockout is the unperturbed network in every repeat.
            before = np.full(after.size, ev.require_baseline()) if a == 0 else ev.values(layer, "synapse", a)
            p = stats.rank_sum(before, after).pvalue
            if (layer, a) == STEP_EXCEPTION:
                exception = f"{layer} 0→{b:g}: p {p:.3g} (paper 0.425)"
                continue
            pvalues.append(p)
            notes.add(_significance_note(before, after, STEP_ALPHA))
            if not (after.mean() < before.mean() and p <= STEP_ALPHA):
                failures.append(f"{layer} {a:g}→{b:g}")
    if not pvalues:
        raise Missing("no synapse knockout results at levels 0.1 apart")
    details = [f"judged at the paper's corrected bound p ≤ {STEP_ALPHA} (not 0.05)"]
    details += sorted(n for n in notes if n) + ([exception] if exception else [])
    if failures:
        details.insert(1, "fails: " + ", ".join(failures[:4]) + (" …" if len(failures) > 4 else ""))
    ours = f"{len(pvalues) - len(failures)}/{len(pvalues)} steps, max p {max(pvalues):.3g}"
    return Outcome("all steps, p ≤ 0.0167", ours, not failures, max(pvalues), "; ".join(details),
                   numbers=(STEP_ALPHA, max(pvalues), min(pvalues), max(pvalues)))


# --- the qualitative claims: orderings and curve shapes, each decided by the statistic it prints ---

EARLIER_LAYERS = PAPER_LAYERS[:-1]  # conv_1 … dense_2: dense_3, the output, has a claim of its own


@claim("node_earlier_more_damaging", "Node knockout is significantly more damaging in earlier layers", ("node",),
       kind="qualitative")
def _node_earlier_worse(ev):
    layers = [layer for layer in EARLIER_LAYERS if layer in ev.layer_map and ev.levels(layer, "node")]
    common = sorted(set.intersection(*(set(ev.levels(layer, "node")) for layer in layers)) - {1.0}) if layers else []
    if len(layers) < 3 or not common:
        raise Missing("fewer than three of conv_1 … dense_2 with node knockout results at a common level below 1")
    kept = [float(np.mean([ev.mean(layer, "node", lv) for lv in common])) for layer in layers]
    rho, p = sps.spearmanr(range(len(layers)), kept)
    detail = (f"statistic: Spearman ρ of layer order ({', '.join(layers)}) against mean accuracy over the common levels "
              f"< 1 ({', '.join(f'{lv:g}' for lv in common)}); holds when ρ > 0 with p < {ALPHA}")
    return Outcome("ρ > 0, p < 0.05", f"ρ {rho:.2f}, p {p:.3g}", bool(rho > 0 and p < ALPHA), float(p), detail,
                   numbers=(0.0, float(rho), float(rho), float(rho)))


TOP1_AGREEMENT = 0.8  # our reading of "a very similar trend": layer orderings agree at least this well


@claim("top1_same_trends", "Top-1 accuracy shows the same trends as top-5 (Figure 4 against Figure 3)", ("gaussian",),
       kind="qualitative")
def _top1_trends(ev):
    rows = ev.df[(ev.df["perturbation"] == "gaussian") & (ev.df["level"] != 0)]
    layers = [layer for layer in PAPER_LAYERS if layer in ev.layer_map and ev.levels(layer, "gaussian")]
    if len(layers) < 3:
        raise Missing("fewer than three layers with Gaussian results")
    means = rows.groupby(["level", "layer"])[["top1", "top5"]].mean()
    rhos, falls = {}, []
    for level, group in means.groupby(level="level"):
        group = group.droplevel("level").reindex([ev.layer_map[layer] for layer in layers]).dropna()
        if len(group) >= 3 and group["top1"].nunique() > 1 and group["top5"].nunique() > 1:
            rhos[level] = float(sps.spearmanr(group["top1"], group["top5"])[0])
    base1, base5 = (stats.baseline_values(ev.df, m) for m in ("top1", "top5"))
    for layer in layers:
        top = ev.levels(layer, "gaussian")[-1]
        curve = means.xs(ev.layer_map[layer], level="layer").loc[top]
        falls.append(bool(base1.size and base5.size) and (curve["top1"] < base1.mean()) == (curve["top5"] < base5.mean()))
    if not rhos:
        raise Missing("no Gaussian level at which three layers differ in both metrics")
    level = min(rhos, key=rhos.get)
    holds = rhos[level] >= TOP1_AGREEMENT and all(falls)
    detail = (f"statistic: Spearman ρ between the layers' top-1 and top-5 means at each k (their order), and whether each "
              f"layer falls from its baseline in both at its largest k; our reading: every ρ ≥ {TOP1_AGREEMENT} and every "
              f"drop-off in both; {sum(falls)}/{len(falls)} layers fall alike; "
              + ", ".join(f"k = {lv:g}: ρ {r:.2f}" for lv, r in sorted(rhos.items())))
    return Outcome(f"ρ ≥ {TOP1_AGREEMENT}", f"min ρ {rhos[level]:.2f} (k = {level:g})", holds, detail=detail,
                   numbers=(TOP1_AGREEMENT, rhos[level], min(rhos.values()), max(rhos.values())))


def _chord_gaps(ev, layer, perturbation) -> tuple[list[float], list[float]]:
    """(interior levels, mean − the straight line from (0, baseline) to the last level's mean)."""
    levels = ev.levels(layer, perturbation)
    if len(levels) < 2:
        raise Missing(f"fewer than two {perturbation} knockout levels for {layer}")
    base, last = ev.require_baseline(), ev.mean(layer, perturbation, levels[-1])
    interior = levels[:-1]
    return interior, [ev.mean(layer, perturbation, lv) - (base + (last - base) * lv / levels[-1]) for lv in interior]


@claim("conv1_node_first_cost_most", "Node knockout in conv_1: the first nodes removed cost most (a non-linear fall-off)",
       ("node",), kind="qualitative")
def _conv1_node_shape(ev):
    levels, gaps = _chord_gaps(ev, "conv_1", "node")
    above = [f"{lv:g}" for lv, gap in zip(levels, gaps) if gap >= 0]
    detail = ("statistic: the mean accuracy at each level run against the straight line from the baseline to the "
              "largest level; holds when it lies below the line at every interior level (the fall is front-loaded)"
              + (f"; on or above at {', '.join(above)}" if above else ""))
    return Outcome("below the line", f"largest gap {max(gaps):+.3f}", not above, detail=detail,
                   numbers=(0.0, max(gaps), min(gaps), max(gaps)))


@claim("synapse_conv2_5_late_drop", "Synapse knockout in conv_2–conv_5 has little effect until a large proportion is removed",
       ("synapse",), kind="qualitative")
def _synapse_late_drop(ev):
    have = [layer for layer in CONV_2_5 if layer in ev.layer_map and len(ev.levels(layer, "synapse")) >= 2]
    if not have:
        raise Missing("no conv_2–conv_5 layer with two or more synapse knockout levels")
    below, smallest = [], {}
    for layer in have:
        levels, gaps = _chord_gaps(ev, layer, "synapse")
        smallest[layer] = min(gaps)
        below += [f"{layer}@{lv:g}" for lv, gap in zip(levels, gaps) if gap <= 0]
    worst = min(smallest, key=smallest.get)
    detail = ("statistic: each layer's mean accuracy against the straight line from the baseline to its largest level; "
              "holds when it lies above the line at every interior level (the fall comes late)"
              + (f"; on or below at {', '.join(below[:4])}" + (" …" if len(below) > 4 else "") if below else ""))
    return Outcome("above the line", f"smallest gap {smallest[worst]:+.3f} ({worst})", not below, detail=detail,
                   numbers=(0.0, smallest[worst], min(smallest.values()), max(smallest.values())))


STAGNATION = 0.5  # our reading of "stagnate": conv_3–conv_5 spread less than half their distance from conv_1


@claim("conv3_5_stagnate", "The decreases stagnate in the higher conv layers conv_3–conv_5 (Gaussian noise)", ("gaussian",),
       kind="qualitative")
def _stagnate(ev):
    have, missing = ev.available(STAGNANT, "gaussian", GAUSSIAN_TEST_K)
    if len(have) < 2:
        raise Missing(f"fewer than two of conv_3–conv_5 with Gaussian results at k = {GAUSSIAN_TEST_K:g}")
    means = {layer: ev.mean(layer, "gaussian", GAUSSIAN_TEST_K) for layer in have}
    first = ev.mean("conv_1", "gaussian", GAUSSIAN_TEST_K)
    spread = max(means.values()) - min(means.values())
    rise = float(np.mean(list(means.values()))) - first
    ratio = spread / rise if rise > 0 else float("inf")
    detail = (f"statistic at k = {GAUSSIAN_TEST_K:g}: (max − min of the conv_3–conv_5 means) / (their mean − conv_1's); "
              f"our reading: < {STAGNATION}; spread {spread:.3f}, above conv_1 by {rise:.3f}"
              + (f"; not run: {', '.join(missing)}" if missing else ""))
    return Outcome(f"ratio < {STAGNATION}", f"ratio {ratio:.2f}", ratio < STAGNATION, detail=detail,
                   numbers=(STAGNATION, ratio, ratio, ratio))


# --- the table ---------------------------------------------------------------------


AFTER_BLOCK3_CONV1_READINGS = ("every", "conv")  # see claims_vgg.AFTER_BLOCK3_CONV1


def claims_table(df: pd.DataFrame, metric="top5", layer_map: dict[str, str] | None = None, relative=True,
                 conventions: str = "ours", after_block3_conv1: str = "every") -> pd.DataFrame:
    """Every registered claim checked on a results table.

    Args:
        df: results (`run.table.read_table`), one experiment (`stats.select`).
        metric: "top5" (the paper's) or "top1".
        layer_map: paper layer -> our layer; default `default_layer_map`. On a table of a
            recognised network other than AlexNet (VGG-16) AlexNet's claims read n.a.
            unless a layer map is given.
        relative: judge accuracy values as fractions of each network's baseline.
        conventions: "ours" or "authors" (`stats.CONVENTIONS`): the fit the shape claim
            "falls linearly" uses. The r² claims are judged on the authors' fit whatever
            this says (the statistic that produced the paper's numbers); ours is printed beside.
        after_block3_conv1: Figure 5's "every layer after block3_conv1": "every" layer
            after it (fc1, fc2 and predictions included) or only the "conv" layers.

    Returns:
        One row per claim: id, claim, network, kind, paper, ours, holds (yes / no / n.a.),
        p_value, detail, and as numbers for `plot_claims` paper_value, our_value and our
        interval low, high (on the scale the claim is judged on; NaN where it has none).
    """
    if metric not in stats.METRICS:
        raise ValueError(f"metric must be one of {stats.METRICS}")
    if after_block3_conv1 not in AFTER_BLOCK3_CONV1_READINGS:
        raise ValueError(f"after_block3_conv1 must be one of {AFTER_BLOCK3_CONV1_READINGS}")
    how = stats.get_conventions(conventions)
    df = stats.select(stats.tidy(df))
    network = network_of(df)
    foreign = network not in (None, "AlexNet") and layer_map is None
    if layer_map is None:
        layer_map, _ = default_layer_map(df)
    ev = Evidence(df, metric, layer_map, relative, how, {"after_block3_conv1": after_block3_conv1})
    rows = []
    for c in CLAIMS:
        try:
            if foreign and c.network == "AlexNet":
                raise Missing(f"a claim about AlexNet; these results are {network}'s (give a layer map to judge it on them)")
            out = c.check(ev)
            holds = "yes" if out.holds else "no"
        except Missing as why:
            out, holds = Outcome("", "", None, detail=str(why)), "n.a."
        paper_value, our_value, low, high = out.numbers
        rows.append({"id": c.id, "claim": c.text, "network": c.network, "kind": c.kind, "paper": out.paper,
                     "ours": out.ours, "holds": holds, "p_value": out.p_value, "detail": out.detail,
                     "paper_value": paper_value, "our_value": our_value, "low": low, "high": high})
    return pd.DataFrame(rows)


def fit_readings(df: pd.DataFrame, metric="top5", layer_map: dict[str, str] | None = None) -> pd.DataFrame:
    """The paper's linear fits read both ways, for every knockout with results.

    Args:
        df: results, one experiment.
        metric: "top5" or "top1".
        layer_map: paper layer -> our layer; default `default_layer_map`.

    Returns:
        One row per (perturbation, fit, conventions): perturbation, fit ("conv_1" or
        "rest": conv_2–conv_5 for ours, all but conv_1 for the authors'), conventions,
        layers (ours, as pooled), points, r2 (NaN where the fit cannot be made), why (if not).
    """
    df = stats.select(stats.tidy(df))
    if layer_map is None:
        layer_map, _ = default_layer_map(df)
    ev = Evidence(df, metric, layer_map, relative=True)
    rows = []
    for perturbation in ("node", "synapse"):
        if not (df["perturbation"] == perturbation).any():
            continue
        for group in ("conv_1", "rest"):
            for name, reading in ev.fits(group, perturbation).items():
                row = {"perturbation": perturbation, "fit": group, "conventions": name}
                if isinstance(reading, Missing):
                    rows.append({**row, "layers": "", "points": 0, "r2": float("nan"), "why": str(reading)})
                else:
                    fit, used = reading
                    rows.append({**row, "layers": ", ".join(layer_map[u] for u in used), "points": fit.points, "r2": fit.r2, "why": ""})
    return pd.DataFrame(rows, columns=["perturbation", "fit", "conventions", "layers", "points", "r2", "why"])


def trial_layers(df: pd.DataFrame) -> list[str]:
    """The perturbed layers in the order the results first mention them (the sweep's network order)."""
    return list(df.loc[df["level"] != 0, "layer"].drop_duplicates())


def default_layer_map(df: pd.DataFrame) -> tuple[dict[str, str], str]:
    """(paper layer -> our layer, how it was chosen)."""
    layers = trial_layers(df)
    network = network_of(df)
    if network not in (None, "AlexNet"):
        return {}, f"{network}: AlexNet's claims do not apply unless a layer map is given"
    if set(layers) <= set(PAPER_LAYERS):
        return {name: name for name in PAPER_LAYERS}, "AlexNet layer names"
    mapping = {"conv_1": layers[0]}
    if len(layers) > 1:
        mapping["dense_3"] = layers[-1]
    return mapping, "positional guess: first layer with results = conv_1, last = dense_3 (the output layer)"


def parse_layer_map(text: str) -> dict[str, str]:
    """'conv_1=conv1,dense_3=conv10' -> {'conv_1': 'conv1', 'dense_3': 'conv10'}."""
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        paper, sep, ours = (s.strip() for s in item.partition("="))
        if not sep or not ours:
            raise ReplicationError(None, f"--layer-map item {item!r} is not PAPER_LAYER=OUR_LAYER")
        if paper not in PAPER_LAYERS:
            raise ReplicationError(None, f"--layer-map: {paper!r} is not one of the paper's layers {', '.join(PAPER_LAYERS)}")
        if paper in mapping:
            raise ReplicationError(None, f"--layer-map names {paper} twice")
        mapping[paper] = ours
    return mapping

