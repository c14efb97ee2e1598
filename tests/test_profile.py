"""The robustness profile on invented tables of two networks: where each layer's accuracy
halves, its spread over repeats, relative depth, "not reached", and the command's files."""

import numpy as np
import pandas as pd
import pytest

import replication as rp
from replication.analysis.profile import half_level, profile_markdown
from replication.commands import profile as profile_command
from replication.commands.common import run_cli
from replication.run.table import COLUMNS

BASELINE = 0.8
LEVELS = (0.25, 0.5, 0.75, 1.0)


RUN = {"weights_sha256": "ab" * 32, "dataset_id": "d", "images": 100, "seed": 0, "seconds": 1.0,
       "finished_at": "now", "version": "0.1.0", "semantics": "paper", "precision": "float32"}


def table(model, layers, repeats=3, spread=0.02):
    """Layer i of n falls linearly to 0 at level 2 (i + 1) / n, so halves at (i + 1) / n; the
    last layer falls only to 3/4 of the baseline at level 1, so never halves."""
    rows = [{"model": model, "layer": "-", "perturbation": "none", "level": 0.0, "repeat": 0, "top1": BASELINE / 2, "top5": BASELINE}]
    for i, layer in enumerate(layers):
        zero_at = 2 * (i + 1) / len(layers) if i < len(layers) - 1 else 4.0
        for level in LEVELS:
            for r, offset in enumerate(np.linspace(-spread, spread, repeats)):
                top5 = max(BASELINE * (1 - level / zero_at) + offset, 0.0)
                rows.append({"model": model, "layer": layer, "perturbation": "node", "level": level, "repeat": r,
                             "top1": top5 / 2, "top5": top5})
    return pd.DataFrame([{**RUN, **row} for row in rows], columns=list(COLUMNS))


def test_half_level_interpolates_and_says_when_not_reached():
    assert half_level([0.5, 1.0], [0.6, 0.2], 0.8) == pytest.approx(0.5 + 0.5 * (0.6 - 0.4) / 0.4)
    assert half_level([0.5], [0.4], 0.8) == pytest.approx(0.5)
    assert np.isnan(half_level([0.5, 1.0], [0.7, 0.5], 0.8))


def test_profile_of_two_networks():
    four = ("a1", "a2", "a3", "a4")
    profile = rp.robustness_profile([table("net_a", four), table("net_b", ("b1", "b2"))])
    a = profile[profile["model"] == "net_a"].set_index("layer")
    assert list(a["depth"]) == pytest.approx([0, 1 / 3, 2 / 3, 1])
    # layer i halves at (i + 1) / 4, a level run: exact on the mean curve
    assert list(a["half_level"][["a1", "a2", "a3"]]) == pytest.approx([0.25, 0.5, 0.75])
    assert np.isnan(a.loc["a4", "half_level"]) and a.loc["a4", "reached"] == 0
    assert (a.loc["a2", "reached"], a.loc["a2", "repeats"]) == (3, 3)
    assert a.loc["a2", "half_level_std"] > 0  # the repeats differ, so do their half levels
    b = profile[profile["model"] == "net_b"].set_index("layer")
    assert list(b["depth"]) == [0.0, 1.0] and b.loc["b1", "half_level"] == pytest.approx(0.5)
    assert np.isnan(b.loc["b2", "half_level"])
    text = profile_markdown(profile)
    assert "not reached (≤ 1)" in text and "| net_b | node | b1 | 0.00 | 0.5 |" in text
    fig = rp.plot_profile(profile)
    assert len(fig.axes) == 1 and len(fig.axes[0].get_legend().get_texts()) >= 2


def test_command_writes_csv_markdown_and_png(tmp_path, capsys):
    paths = []
    for model, layers in (("net_a", ("a1", "a2")), ("net_b", ("b1", "b2", "b3"))):
        paths.append(tmp_path / f"{model}.csv")
        table(model, layers).to_csv(paths[-1], index=False)
    out = tmp_path / "out" / "profile"
    assert profile_command.main(["--results", *map(str, paths), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| net_a | node | a1 |" in printed and "wrote" in printed
    written = pd.read_csv(f"{out}.csv")
    assert set(written["model"]) == {"net_a", "net_b"} and len(written) == 5
    assert (tmp_path / "out" / "profile.png").stat().st_size > 0 and (tmp_path / "out" / "profile.md").read_text()
    no_baseline = tmp_path / "nobase.csv"
    table("net_c", ("c1",)).iloc[1:].to_csv(no_baseline, index=False)
    assert run_cli(profile_command.main, ["--results", str(no_baseline), "-o", str(tmp_path / "x")]) == 2
    assert "no unperturbed" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
