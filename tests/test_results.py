"""The results table: durable appends, recovery from a kill in mid-write, refusal to mix runs."""

import pytest

from replication.errors import ReplicationError
from replication.perturb.trials import Trial
from replication.run.table import COLUMNS, ResultsLog, RunInfo, read_rows, read_table, write_rows

RUN = RunInfo(
    model="alexnet", weights_sha256="ab" * 32, dataset_id="d1", images=300, version="0.1.0", semantics="paper"
)


def _fill(path, trials):
    with ResultsLog(path, RUN) as log:
        for layer, level, repeat in trials:
            log.append(Trial(layer, "synapse", level, repeat), seed=123, top1=0.5, top5=0.75, seconds=1.25)


def test_rows_survive_reopening_and_keep_their_values(tmp_path):
    path = tmp_path / "r.csv"
    _fill(path, [("conv_1", 0.1, 0), ("conv_1", 0.1, 1)])
    with ResultsLog(path, RUN) as log:
        assert log.done == {("conv_1", "synapse", "0.1", 0), ("conv_1", "synapse", "0.1", 1)}
        log.append(Trial("-", "none", 0.0, 0), seed=None, top1=2 / 3, top5=0.9, seconds=0.5)
    rows = read_rows(path)
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert [r["layer"] for r in rows] == ["conv_1", "conv_1", "-"]
    assert float(rows[2]["top1"]) == 2 / 3  # written with full precision
    assert rows[2]["seed"] == "" and rows[0]["seed"] == "123"
    table = read_table(path)
    assert table["top5"].tolist() == [0.75, 0.75, 0.9]


def test_level_spellings_are_one_trial(tmp_path):
    path = tmp_path / "r.csv"
    _fill(path, [("conv_1", 0.1 * 3, 0)])
    with ResultsLog(path, RUN) as log:
        assert ("conv_1", "synapse", "0.3", 0) in log.done
        with pytest.raises(ValueError, match="already"):
            log.append(Trial("conv_1", "synapse", 0.3, 0), seed=1, top1=0, top5=0, seconds=0)


def test_a_torn_last_line_is_dropped_and_nothing_else(tmp_path, capsys):
    path = tmp_path / "r.csv"
    _fill(path, [("conv_1", 0.5, 0), ("conv_1", 0.5, 1)])
    intact = path.read_bytes()
    with open(path, "ab") as f:
        f.write(intact.splitlines(keepends=True)[-1][:40])  # a kill in the middle of a row
    assert len(read_rows(path)) == 2  # readers ignore it without touching the file
    log = ResultsLog(path, RUN)
    assert capsys.readouterr().err == f"warning: {path}: dropped an incomplete last line left by an interrupted run\n"
    with log:
        assert len(log.rows) == 2
        log.append(Trial("conv_1", "synapse", 0.5, 2), seed=1, top1=0.25, top5=0.5, seconds=1)
    assert path.read_bytes().startswith(intact)
    assert [int(r["repeat"]) for r in read_rows(path)] == [0, 1, 2]


def test_a_header_torn_by_a_kill_starts_the_table_afresh(tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text("model,weights_sha")
    _fill(path, [("conv_1", 0.5, 0)])
    assert "incomplete last line" in capsys.readouterr().err
    assert len(read_rows(path)) == 1


@pytest.mark.parametrize("content", [b"a,b,c\n1,2,3\n4,5", b"not a table, no newline", b"\x89PNG\r\n\x1a\nbinary"])
def test_a_file_that_is_not_a_table_is_refused_untouched(tmp_path, content):
    path = tmp_path / "r.csv"
    path.write_bytes(content)
    with pytest.raises(ReplicationError) as err:
        ResultsLog(path, RUN)
    assert err.value.path == path and "results table" in err.value.message
    assert path.read_bytes() == content  # not even its last line cut off


def test_a_table_of_another_run_keeps_its_torn_line(tmp_path):
    path = tmp_path / "r.csv"
    _fill(path, [("conv_1", 0.5, 0)])
    with open(path, "ab") as f:
        f.write(b"alexnet,ab")
    before = path.read_bytes()
    with pytest.raises(ReplicationError, match="different run"):
        ResultsLog(path, RunInfo(**{**RUN.__dict__, "model": "caffenet"}))
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "field, value",
    [("model", "caffenet"), ("weights_sha256", "cd" * 32), ("dataset_id", "d2"), ("images", 299), ("version", "9.9"),
     ("semantics", "authors_code")],
)
def test_a_table_of_another_run_is_refused_by_name(tmp_path, field, value):
    path = tmp_path / "r.csv"
    _fill(path, [("conv_1", 0.5, 0)])
    other = RunInfo(**{**RUN.__dict__, field: value})
    with pytest.raises(ReplicationError, match=field) as err:
        ResultsLog(path, other)
    assert err.value.path == path
    ResultsLog(path, RUN).close()  # the lock was released by the refusal


def test_damage_in_the_middle_is_set_aside_and_foreign_files_are_refused(tmp_path, capsys):
    path = tmp_path / "r.csv"
    _fill(path, [("conv_1", 0.5, 0), ("conv_1", 0.5, 1)])
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[1][:30] + "\n" + lines[2])
    with pytest.raises(ReplicationError, match="line 2"):
        read_rows(path)  # a reader names the damage
    with ResultsLog(path, RUN) as log:  # a writer sets it aside: the trial runs again
        assert [row["repeat"] for row in log.rows] == ["1"]
    assert "1 damaged row(s)" in capsys.readouterr().err
    assert (tmp_path / "r.csv.damaged").read_text() == lines[1][:30] + "\n"
    assert path.read_text() == lines[0] + lines[2]
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ReplicationError, match="header"):
        ResultsLog(other, RUN)
    assert other.read_text() == "a,b,c\n1,2,3\n"


def test_a_trial_written_twice_is_refused(tmp_path):
    path = tmp_path / "r.csv"
    _fill(path, [("conv_1", 0.5, 0)])
    rows = read_rows(path)
    write_rows(path, rows + rows)
    with pytest.raises(ReplicationError, match="twice"):
        ResultsLog(path, RUN)


def test_two_writers_cannot_share_a_table(tmp_path):
    path = tmp_path / "r.csv"
    with ResultsLog(path, RUN), pytest.raises(ReplicationError, match="another sweep"):
        ResultsLog(path, RUN)
