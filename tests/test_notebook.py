"""notebooks/compare_with_paper.ipynb is committed with its outputs, made from the results
tables committed under figures/notebook/ by the committed code: executing it again must
raise no error, compute no trial (the tables are complete) and print every number as
committed."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "compare_with_paper.ipynb"


def _texts(cells) -> list[list[str]]:
    """Per code cell, its outputs' text (plain text, HTML, printed lines); pictures by count."""
    shown = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        parts, printed = [], ""
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                parts.append("<picture>")
            for kind in ("text/html", "text/plain"):
                if kind in data and "image/png" not in data:
                    parts.append("".join(data[kind]))
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                printed += "".join(output["text"])  # split into outputs as the kernel flushes: joined
            # stderr: the libraries' start-up lines, not results
            if output.get("output_type") == "error":
                parts.append(f"error: {output['ename']}: {output['evalue']}")
        shown.append([printed, *parts] if printed else parts)
    return shown


def test_the_notebook_is_committed_with_outputs_from_the_public_api():
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    # every code cell but the first (the settings) shows its committed output
    assert all(cell.get("outputs") for cell in code[1:]), "a code cell was committed without its output"
    source = "\n".join("".join(cell["source"]) for cell in code)
    assert re.findall(r"^\s*(?:import|from)\s+(replication\S*)", source, re.M) == ["replication"]
    assert "import replication as rp" in source
    shown = "\n".join("\n".join(parts) for parts in _texts(notebook["cells"]))
    assert "error:" not in shown
    # Figures 1-4 for each of the two networks, the claims picture of each, the profile
    assert shown.count("<picture>") == 11


def test_re_executing_the_notebook_changes_no_number(shared, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    committed = nbformat.read(NOTEBOOK, as_version=4)
    fresh = nbformat.read(NOTEBOOK, as_version=4)
    for cell in fresh.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    tables = sorted((ROOT / "figures" / "notebook").glob("results-*.csv"))
    assert len(tables) == 6, "the notebook's three tables for each of two networks are committed"
    # A copy of the checkout's layout, so that executing writes nothing into the checkout.
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "figures" / "notebook").mkdir(parents=True)
    for path in tables:
        (tmp_path / "figures" / "notebook" / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv("REPLICATION_SHARED", str(shared.resolve()))
    nbclient.NotebookClient(fresh, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path / "notebooks")}}).execute()

    assert _texts(fresh.cells) == _texts(committed.cells)
    # the committed tables were complete: nothing was computed, nothing appended
    for path in tables:
        assert (tmp_path / "figures" / "notebook" / path.name).read_bytes() == path.read_bytes(), path.name
