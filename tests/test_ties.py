"""The top-k rule with ties: the expected hit under random tie-breaking, and Caffe's rule
wherever no tie touches the true class; and the engine's exact sum of fractional counts."""

import itertools
from fractions import Fraction

import numpy as np
import pytest

from replication.run import engine
from replication.run.scoring import topk_correct


def expected_by_enumeration(scores: np.ndarray, label: int, k: int) -> Fraction:
    """The top-k hit averaged over every order in which ties could be broken, exactly."""
    hits, orders = 0, 0
    for priority in itertools.permutations(range(len(scores))):
        ranking = sorted(range(len(scores)), key=lambda c: (-scores[c], priority[c]))
        hits += ranking.index(label) < k
        orders += 1
    return Fraction(hits, orders)


def test_all_equal_logits_score_chance():
    scores = np.zeros((7, 1000), np.float32)  # 100% node knockout of the output layer
    labels = np.arange(7) * 100
    top1, top5 = topk_correct(scores, labels)
    assert top5 == pytest.approx(7 * 0.005, abs=1e-15) and top1 == pytest.approx(7 * 0.001, abs=1e-15)
    assert topk_correct(scores[:1], labels[:1]) == (0.001, 0.005)  # one image: exactly k / 1000
    assert topk_correct(scores, labels, ties="caffe") == (0, 0)  # Caffe gives every tie against the truth


def test_fractions_for_a_tie_group_below_other_classes():
    # one class above the true class (b = 1), which ties with two others (m = 3)
    scores = np.array([[3.0, 2.0, 2.0, 2.0, 1.0]])
    label = np.array([1])
    assert [topk_correct(scores, label, k)[1] for k in (1, 2, 3, 4, 5)] == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    assert topk_correct(scores, label, 2) == (0.0, pytest.approx(1 / 3))


def test_expected_hit_equals_the_average_over_all_tie_breaks():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 3, size=(40, 6)).astype(np.float64)  # six classes, many ties
    labels = rng.integers(0, 6, size=40)
    for k in (1, 2, 5):
        got = [topk_correct(scores[i : i + 1], labels[i : i + 1], k)[1] for i in range(40)]
        want = [float(expected_by_enumeration(scores[i], labels[i], k)) for i in range(40)]
        assert got == pytest.approx(want, abs=1e-12)


def test_without_ties_at_the_true_class_it_is_caffes_rule():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(500, 1000)).astype(np.float32)  # real-valued logits: no ties
    labels = rng.integers(0, 1000, size=500)
    scores[np.arange(0, 500, 3), labels[::3]] += 3.0  # a third of the images mostly right
    for k in (1, 5, 20):
        expected, caffe = topk_correct(scores, labels, k), topk_correct(scores, labels, k, ties="caffe")
        assert expected == caffe and all(float(c).is_integer() for c in expected)
    assert 0 < topk_correct(scores, labels)[1] < 500
    # ties among other classes do not matter either
    scores[:, :10] = scores[:, :1]
    labels = np.where(labels < 10, 10, labels)
    assert topk_correct(scores, labels) == topk_correct(scores, labels, ties="caffe")


def test_a_nan_true_class_is_wrong_and_bad_rules_are_refused():
    scores = np.array([[np.nan] * 6, [1, np.nan, 0, 0, 0, 0]])
    assert topk_correct(scores, np.array([0, 2])) == (0.0, pytest.approx(4 / 4))  # row 2: b = 1, m = 4 at k = 5
    with pytest.raises(ValueError, match="ties"):
        topk_correct(scores, np.array([0, 0]), ties="random")


def test_engine_sums_fractional_counts_exactly_however_batches_are_grouped():
    scores = np.zeros((30, 1000), np.float32)
    labels = np.arange(30)

    def batches(size):
        return [((scores[s : s + size],), labels[s : s + size]) for s in range(0, 30, size)]

    def scores_of(x):
        return (x,)

    whole = engine._count(scores_of, batches(5))  # the unchunked modes: every batch in turn
    per_batch = topk_correct(scores[:5], labels[:5])
    assert whole == (6 * Fraction(per_batch[0]), 6 * Fraction(per_batch[1]))
    # chunked: two chunks of three batches each, tallied per chunk and then added
    chunks = [engine._count(scores_of, batches(5)[i : i + 3]) for i in (0, 3)]
    assert tuple(a + b for a, b in zip(*chunks)) == whole
    assert float(whole[1]) == pytest.approx(0.15, abs=1e-15)
