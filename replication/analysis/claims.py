"""The claim registry: every quantitative claim of the paper beside our value, and whether it holds.

A claim is one function and one registration (`@claim(id, text, perturbations)`); the
claims table (`claims_table`), the figure reports and `python -m replication.compare`
all read the registry. The claims (Cheney, Schrimpf & Kreiman 2017, about AlexNet on the ILSVRC2012
validation set) are listed below, one function each, in the paper's order. Readings
of the paper that the text leaves open, chosen once here:

- "loses x%" is a relative loss, 1 − accuracy / baseline: "50% node knockout in
  conv_1 loses > 95%" is impossible in absolute points from a baseline of 79.1%.
- Accuracy values (0.708, 0.607, 0.269) depend on the data set as much as on the
  network, so by default they are compared as fractions of each network's own
  baseline (0.708 / 0.791 against ours / our baseline); --absolute compares raw values.
- A point value "holds" within a tolerance (`TOLERANCE`); a significance claim holds
  when the direction is right and every rank-sum p is below `ALPHA`.
- Claims about "every layer" or "any layer after conv_2" are checked on those of the
  layers the results contain; the detail column names the ones missing. A claim
  whose data are absent altogether (levels or layers not run) reads "n.a.".

For a model other than AlexNet the claims are still AlexNet's: `--layer-map` says
which of its layers plays which AlexNet layer. Without one, only the two roles that
transfer unambiguously are mapped: the first layer with results is conv_1 and the
last is dense_3 (the output layer); the mapping is printed above the table.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from replication.analysis import stats
from replication.errors import ReplicationError

PAPER_LAYERS = ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5", "dense_1", "dense_2", "dense_3")
AFTER_CONV_2 = PAPER_LAYERS[2:]
PAPER_BASELINE = 0.791  # AlexNet top-5, unperturbed
ALPHA = 0.05
TOLERANCE = {"baseline": 0.02, "accuracy": 0.05, "r2": 0.10}
LINEAR_R2 = 0.95  # our reading of "falls linearly"


class Missing(Exception):
    """The results lack what a claim needs (layer not mapped or not run, level not run)."""


@dataclass(frozen=True)
class Outcome:
    paper: str
    ours: str
    holds: bool | None  # None: not applicable (Missing)
    p_value: float = float("nan")
    detail: str = ""


class Evidence:
    """Our results seen through the paper's layer names."""

    def __init__(self, df: pd.DataFrame, metric: str, layer_map: dict[str, str], relative: bool):
        self.df, self.metric, self.layer_map, self.relative = df, metric, layer_map, relative
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

    def fit(self, layers, perturbation: str) -> tuple[stats.LinearFit, list[str]]:
        """The pooled linear fit over those of `layers` that were run, and their names."""
        mapped = [layer for layer in layers if layer in self.layer_map]
        if not mapped:
            raise Missing(f"{'/'.join(layers)} not mapped to layers of this model")
        used = [layer for layer in mapped if self.levels(layer, perturbation)]
        fit = stats.linear_fit(self.df, [self.layer_map[layer] for layer in used], perturbation, self.metric)
        if fit.levels < 3:
            raise Missing(f"{perturbation} knockout of {'/'.join(layers)}: fewer than 3 levels (baseline included) to fit")
        return fit, used


def _significance_note(a: np.ndarray, b: np.ndarray) -> str:
    floor = stats.smallest_rank_sum_p(a.size, b.size)
    if floor >= ALPHA:
        return f"with {a.size} vs {b.size} repeats p cannot go below {floor:.3f}"
    return ""


# --- the claims, in the paper's order ----------------------------------------------


@dataclass(frozen=True)
class Claim:
    id: str  # stable handle for notebooks and tests
    text: str  # the paper's statement, in AlexNet's layer names
    check: Callable[[Evidence], Outcome]
    perturbations: tuple[str, ...]  # the perturbations it is about; () for the unperturbed network


CLAIMS: list[Claim] = []


def claim(claim_id: str, text: str, perturbations: tuple[str, ...] = ()):
    """Decorator: register `check(evidence) -> Outcome` as the claim `claim_id`.

    Args:
        claim_id: a stable handle (tests and notebooks look claims up by it).
        text: the paper's statement.
        perturbations: the perturbations the claim is about; a figure's report shows
            the claims about its perturbation and those about none.
    """

    def register(check):
        if any(c.id == claim_id for c in CLAIMS):
            raise ValueError(f"a claim with id {claim_id!r} is already registered")
        CLAIMS.append(Claim(claim_id, text, check, tuple(perturbations)))
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
    holds = abs(base - PAPER_BASELINE) <= TOLERANCE["baseline"]
    return Outcome("0.791", f"{base:.3f}", holds, detail=f"within ±{TOLERANCE['baseline']}")


@claim("synapse50_conv3_5", "50% synapse knockout: conv_3, conv_4 and conv_5 keep top-5 ≥ 0.708", ("synapse",))
def _syn50_top(ev):
    means = {layer: ev.mean(layer, "synapse", 0.5) for layer in ("conv_3", "conv_4", "conv_5")}
    worst = min(means, key=means.get)
    paper, ours, paper_text, ours_text = ev.scaled(0.708, means[worst])
    return Outcome(f"≥ {paper_text}", ours_text, ours >= paper, detail=f"lowest of the three: {worst}")


def _point_claim(ev, layer, perturbation, level, paper_value):
    paper, ours, paper_text, ours_text = ev.scaled(paper_value, ev.mean(layer, perturbation, level))
    return Outcome(paper_text, ours_text, abs(ours - paper) <= TOLERANCE["accuracy"], detail=f"within ±{TOLERANCE['accuracy']}")


@claim("synapse50_conv2", "50% synapse knockout: conv_2 keeps top-5 0.607", ("synapse",))
def _syn50_conv2(ev):
    return _point_claim(ev, "conv_2", "synapse", 0.5, 0.607)


@claim("synapse50_conv2_below_conv3_5", "50% synapse knockout: conv_2 is below each of conv_3–conv_5 (p < 0.05)", ("synapse",))
def _syn50_conv2_significant(ev):
    conv2 = ev.values("conv_2", "synapse", 0.5)
    pvalues, lower, notes = [], 0, set()
    for layer in ("conv_3", "conv_4", "conv_5"):
        other = ev.values(layer, "synapse", 0.5)
        pvalues.append(stats.rank_sum(conv2, other).pvalue)
        lower += conv2.mean() < other.mean()
        notes.add(_significance_note(conv2, other))
    worst = max(pvalues)
    holds = lower == 3 and worst < ALPHA
    return Outcome("p < 0.05", f"lower than {lower}/3, max p {worst:.3g}", holds, worst, "; ".join(sorted(n for n in notes if n)))


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
        losses.update({(layer, lv): ev.loss(layer, "synapse", lv) for lv in levels})
    (layer, level), worst = max(losses.items(), key=lambda item: item[1])
    highest = max(lv for _, lv in losses)
    detail = f"worst: {layer} at {level:g}" + ("" if highest >= 0.8 else f"; levels only up to {highest:g}")
    return Outcome("loss < 4.759%", f"max loss {worst:.2%}", worst < 0.04759, detail=detail)


@claim("conv1_synapse30_vs_conv3_5_synapse70", "30% synapse knockout in conv_1 is worse than 70% in any of conv_3–conv_5", ("synapse",))
def _conv1_fragile(ev):
    conv1 = ev.mean("conv_1", "synapse", 0.3)
    others = {layer: ev.mean(layer, "synapse", 0.7) for layer in ("conv_3", "conv_4", "conv_5")}
    worst = min(others, key=others.get)
    return Outcome(
        "conv_1@0.3 < min conv_3–5@0.7", f"{conv1:.3f} vs {others[worst]:.3f}", conv1 < others[worst], detail=f"lowest at 0.7: {worst}"
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
    return Outcome(f"loss < {bound:.0%}", f"max loss {losses[worst]:.1%}", losses[worst] < bound, detail=detail)


def _r2_claim(ev, layers, perturbation, paper_r2):
    fit, used = ev.fit(layers, perturbation)
    holds = abs(fit.r2 - paper_r2) <= TOLERANCE["r2"]
    detail = f"{', '.join(used)}: {fit.points} points; within ±{TOLERANCE['r2']}"
    return Outcome(f"r² {paper_r2:.3f}", f"r² {fit.r2:.3f}", holds, detail=detail)


CONV_2_5 = ("conv_2", "conv_3", "conv_4", "conv_5")


@claim("node_r2_conv2_5", "Node knockout, linear fit pooled over conv_2–conv_5: r² 0.963", ("node",))
def _node_r2_rest(ev):
    return _r2_claim(ev, CONV_2_5, "node", 0.963)


@claim("node_r2_conv1", "Node knockout, linear fit for conv_1: r² 0.715", ("node",))
def _node_r2_conv1(ev):
    return _r2_claim(ev, ("conv_1",), "node", 0.715)


@claim("synapse_r2_conv2_5", "Synapse knockout, linear fit pooled over conv_2–conv_5: r² 0.553", ("synapse",))
def _syn_r2_rest(ev):
    return _r2_claim(ev, CONV_2_5, "synapse", 0.553)


@claim("synapse_r2_conv1", "Synapse knockout, linear fit for conv_1: r² 0.930", ("synapse",))
def _syn_r2_conv1(ev):
    return _r2_claim(ev, ("conv_1",), "synapse", 0.930)


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
    return Outcome("all pairs, p < 0.05", ours, not failures, max(pvalues), "; ".join(details))


@claim("node_vs_synapse_conv2_90", "… the exception: at 90% in conv_2 node and synapse knockout do not differ significantly", ("node", "synapse"))
def _node_worse_exception(ev):
    layer, level = NODE_VS_SYNAPSE_EXCEPTION
    node, synapse = ev.values(layer, "node", level), ev.values(layer, "synapse", level)
    p = stats.rank_sum(node, synapse).pvalue
    note = _significance_note(node, synapse)
    return Outcome("p ≥ 0.05", f"p {p:.3g}", p >= ALPHA, p, note + (" (so this holds trivially)" if note else ""))


@claim("node30_conv1", "30% node knockout in conv_1 loses > 70%", ("node",))
def _node30_conv1(ev):
    loss = ev.loss("conv_1", "node", 0.3)
    return Outcome("loss > 70%", f"loss {loss:.1%}", loss > 0.70)


@claim("node50_conv1", "50% node knockout in conv_1 loses > 95%", ("node",))
def _node50_conv1(ev):
    loss = ev.loss("conv_1", "node", 0.5)
    return Outcome("loss > 95%", f"loss {loss:.1%}", loss > 0.95)


@claim("gaussian1_after_conv2", "Gaussian noise with k = 1 in any layer after conv_2 loses < 6%", ("gaussian",))
def _gaussian_robust(ev):
    return _max_loss_claim(ev, "gaussian", 1.0, 0.06)


@claim("output_node_linear", "Node knockout of the output layer (dense_3) makes accuracy fall linearly", ("node",))
def _output_linear(ev):
    fit, _ = ev.fit(("dense_3",), "node")
    holds = fit.r2 >= LINEAR_R2 and fit.slope < 0
    detail = f"our reading: r² ≥ {LINEAR_R2}; a fall in proportion, baseline×(1−p), has slope {-ev.require_baseline():.3f}"
    return Outcome("linear", f"r² {fit.r2:.3f}, slope {fit.slope:.3f}", holds, detail=detail)


# --- the table ---------------------------------------------------------------------


def claims_table(df: pd.DataFrame, metric="top5", layer_map: dict[str, str] | None = None, relative=True) -> pd.DataFrame:
    """One row per claim: id, claim, paper, ours, holds (yes / no / n.a.), p_value, detail."""
    if metric not in stats.METRICS:
        raise ValueError(f"metric must be one of {stats.METRICS}")
    df = stats.select(stats.tidy(df))
    if layer_map is None:
        layer_map, _ = default_layer_map(df)
    ev = Evidence(df, metric, layer_map, relative)
    rows = []
    for c in CLAIMS:
        try:
            out = c.check(ev)
            holds = "yes" if out.holds else "no"
        except Missing as why:
            out, holds = Outcome("", "", None, detail=str(why)), "n.a."
        rows.append({"id": c.id, "claim": c.text, "paper": out.paper, "ours": out.ours, "holds": holds, "p_value": out.p_value, "detail": out.detail})
    return pd.DataFrame(rows)


def trial_layers(df: pd.DataFrame) -> list[str]:
    """The perturbed layers in the order the results first mention them (the sweep's network order)."""
    return list(df.loc[df["level"] != 0, "layer"].drop_duplicates())


def default_layer_map(df: pd.DataFrame) -> tuple[dict[str, str], str]:
    """(paper layer -> our layer, how it was chosen)."""
    layers = trial_layers(df)
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
