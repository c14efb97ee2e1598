"""Bad input and faults of the operating system, by class: each ends in one line
`error: FILE: what happened` and exit 2 with nothing half-written; options are refused when
parsed; nothing finished is ever lost. Real faults come from real mounts (a read-only
tmpfs, a tiny full tmpfs), which need root: without it those tests skip with the reason."""

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from replication.commands import compare, evaluate, merge, reproduce
from replication.commands.common import run_cli
from replication.errors import ReplicationError
from replication.files import atomic_output
from replication.perturb.trials import Trial
from replication.run.grid import Grid
from replication.run.shards import Shard, shard_path, shard_share, write_manifest
from replication.run.table import ResultsLog, RunInfo, read_rows

RUN = RunInfo("alexnet", "ab" * 32, "d", 10, "0.1.0", "paper")
GRID = Grid(("conv_1", "conv_2"), "synapse", (0.0, 0.5), 2)
COSTS = {"-": 2.0, "conv_1": 2.0, "conv_2": 1.0}


@contextlib.contextmanager
def tmpfs(folder: Path, options: str):
    """A fresh tmpfs mounted on `folder` for the block; skips the test where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def shards(tmp_path, count=2):
    out = tmp_path / "merged.csv"
    paths = []
    for i in range(count):
        shard = Shard(i, count)
        paths.append(shard_path(out, shard))
        write_manifest(paths[-1], RUN, GRID, shard)
        with ResultsLog(paths[-1], RUN) as log:
            for trial in shard_share(GRID.trials(), COSTS, shard):
                log.append(trial, None, 0.5, 0.75, 1.0)
    return out, [str(p) for p in paths]


# --- 1. faults of the operating system -------------------------------------------------------


def test_an_output_that_is_a_folder_is_refused_when_parsed(tmp_path, capsys):
    _, paths = shards(tmp_path)
    assert run_cli(merge.main, [str(tmp_path), *paths]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: is a folder; give a file name" in err and "Traceback" not in err
    assert run_cli(evaluate.main, ["--model", "alexnet", "--weights", "w.h5", "--data", str(tmp_path),
                                   "--json", str(tmp_path)]) == 2  # refused before any model is built
    assert "argument --json" in capsys.readouterr().err


def test_a_read_only_folder_is_refused_before_any_work(tmp_path, capsys):
    _, paths = shards(tmp_path)
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        assert run_cli(merge.main, [str(ro / "merged.csv"), *paths]) == 2
        err = capsys.readouterr().err
        assert "cannot write in" in err and "Read-only file system" in err
        assert run_cli(compare.main, ["--results", paths[0], "--csv", str(ro / "claims.csv")]) == 2
        assert "argument --csv" in capsys.readouterr().err
        assert not list(ro.iterdir())


def test_a_full_disk_ends_in_one_line_with_no_temporary_left(tmp_path, capsys):
    out, paths = shards(tmp_path)
    with tmpfs(tmp_path / "full", "size=16k") as full:
        (full / "filler").write_bytes(b"x" * 12000)
        # the merged table (241 rows of about 200 bytes) cannot fit in what is left
        many = Grid(tuple(f"layer_{i}" for i in range(60)), "synapse", (0.0, 0.5), 2)
        table = tmp_path / "big.shard-0-of-1.csv"
        write_manifest(table, RUN, many, Shard(0, 1))
        with ResultsLog(table, RUN) as log:
            for trial in many.trials():
                log.append(trial, None, 0.5, 0.75, 1.0)
        assert run_cli(merge.main, [str(full / "big.csv"), str(table)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "No space left on device" in err and "Traceback" not in err
        assert sorted(p.name for p in full.iterdir()) == ["filler"]  # no partial table, no temporary


def test_a_sweep_on_a_full_disk_keeps_every_finished_trial_and_resumes(tmp_path):
    with tmpfs(tmp_path / "full", "size=12k") as full:
        table = full / "results.csv"
        trials = Grid(tuple(f"layer_{i}" for i in range(40)), "synapse", (0.5,), 2).trials()
        written = []
        with pytest.raises(OSError) as fault, ResultsLog(table, RUN) as log:
            for trial in trials:
                log.append(trial, None, 0.5, 0.75, 1.0)
                written.append(trial.key)
        assert "No space left" in str(fault.value)
        kept = [Trial.from_row(r).key for r in read_rows(table)]
        assert kept == written and len(kept) > 5  # every finished trial, in order
        # space is back: the run resumes, cutting at most one torn line
        big = full / "results.csv"
        copy = tmp_path / "results.csv"
        copy.write_bytes(big.read_bytes())
    with ResultsLog(copy, RUN) as log:
        assert [k for k in (t.key for t in trials) if k in log.done] == written
        for trial in trials:
            if trial.key not in log.done:
                log.append(trial, None, 0.5, 0.75, 1.0)
    assert len(read_rows(copy)) == len(trials)


# --- 2. options are validated when parsed ---------------------------------------------------


@pytest.mark.parametrize("option, value, message", [
    ("--batch-size", "0", "must be at least 1"),
    ("--batch-size", "²", "whole number"),
    ("--limit", "-3", "must be at least 1"),
    ("--levels", "0,inf", "finite"),
    ("--levels", "0,nan", "finite"),
    ("--levels", "0,,1", "empty items"),
    ("--layers", ",", "empty items"),
    ("--memory-gb", "0", "above 0"),
    ("--repeats", "0", "must be at least 1"),
])  # fmt: skip
def test_bad_options_are_refused_when_parsed(tmp_path, capsys, option, value, message):
    from replication.commands import figure

    with pytest.raises(SystemExit) as exit_:
        figure.parse_figure_args(3, ["--out", str(tmp_path), option, value])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_levels_out_of_range_never_reach_a_table(tmp_path):
    for levels in ((0.0, 1.5), (0.0, -0.5)):
        with pytest.raises(ReplicationError, match="levels must lie in"):
            Grid(("conv_1",), "synapse", levels, 1)
    with pytest.raises(ValueError, match="finite"), ResultsLog(tmp_path / "r.csv", RUN) as log:
        log.append(Trial("conv_1", "gaussian", float("inf"), 0), None, 0.5, 0.5, 1.0)
    assert read_rows(tmp_path / "r.csv") == []


def test_abbreviations_are_refused_everywhere(capsys):
    with pytest.raises(ReplicationError, match="--results"):
        reproduce.main(["--results", "x.csv"])
    with pytest.raises(SystemExit):
        reproduce.main(["--result", "x.csv", "--data", "nowhere"])
    assert "unrecognized arguments: --result" in capsys.readouterr().err


def test_a_label_with_a_non_ascii_digit_is_one_clear_error(tmp_path):
    from replication.data import find_dataset

    (tmp_path / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG ²\n", encoding="utf-8")
    with pytest.raises(ReplicationError, match="line 1: expected 'FILENAME LABEL'"):
        find_dataset(tmp_path)


# --- 3. nothing is lost that the user did not ask to lose ----------------------------------


def test_merge_never_drops_a_finished_trial_of_an_existing_table(tmp_path, capsys):
    out, paths = shards(tmp_path)
    assert run_cli(merge.main, [str(out), *paths]) == 0
    assert run_cli(merge.main, [str(out), *paths]) == 0  # the same merge again changes nothing
    with ResultsLog(out, RUN) as log:  # a finished trial the shards do not have
        log.append(Trial("conv_9", "synapse", 0.5, 0), None, 0.5, 0.5, 1.0)
    before = out.read_bytes()
    capsys.readouterr()
    assert run_cli(merge.main, [str(out), *paths]) == 2
    assert "already holds 1 finished trial(s)" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_temporaries_of_killed_writers_are_removed(tmp_path):
    out = tmp_path / "merged.csv"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".merged.csv.{dead.pid}.abc123.csv.part"
    live = tmp_path / f".merged.csv.{os.getppid()}.def456.csv.part"  # a writer that is still running
    stale.write_bytes(b"x" * 1000)
    live.write_bytes(b"y")
    with atomic_output(out) as tmp:
        tmp.write_text("done\n")
    assert out.read_text() == "done\n" and not stale.exists() and live.exists()


def test_a_results_table_with_no_rows_is_named(tmp_path, capsys):
    empty = tmp_path / "results.csv"
    ResultsLog(empty, RUN).close()  # a header and no rows
    assert run_cli(compare.main, ["--results", str(empty)]) == 2
    assert f"error: {empty}: holds no finished trials" in capsys.readouterr().err


def test_convert_on_a_full_disk_refuses_before_writing(tmp_path, capsys):
    from replication.commands import convert
    from replication.models.synthetic import write_synthetic_alexnet

    caffemodel = tmp_path / "synthetic.caffemodel"
    write_synthetic_alexnet(caffemodel)  # 233 MB of blobs
    with tmpfs(tmp_path / "full", "size=8m") as full:
        assert run_cli(convert.main, [str(caffemodel), "-o", str(full / "alexnet.h5"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"error: {full / 'alexnet.h5'}: needs" in err and "MB are free there" in err
        assert not list(full.iterdir())


def test_sigterm_turned_into_another_exception_still_ends_as_terminated(capsys):
    """SIGTERM raises `Terminated` wherever the main thread is; TensorFlow's tracing, caught
    mid-update, turns it into an AssertionError. The run was still terminated: 143 and one
    line, no traceback. A later run in the same process starts with no SIGTERM noted."""
    import signal
    import time

    def main(argv):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            raise AssertionError("Concurrent access?") from None  # what TensorFlow raised
        return 0

    assert run_cli(main, []) == 143
    assert capsys.readouterr().err.strip() == "terminated"

    def failing(argv):
        raise AssertionError("a bug, not a termination")

    with pytest.raises(AssertionError, match="a bug"):
        run_cli(failing, [])
