"""notebooks/compare_with_paper.ipynb runs top to bottom on the results of a small real
sweep (the reduced figures of sweep_runs.py) and shows the figures and the claims."""

import os
from pathlib import Path

import pytest
from sweep_runs import reduced_sweeps

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "compare_with_paper.ipynb"


def test_notebook_shows_figures_and_claims(tmp_path_factory, caffe_dir, val_subset, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    runs = reduced_sweeps(tmp_path_factory, caffe_dir, val_subset)
    monkeypatch.setenv("REPLICATION_RESULTS", os.pathsep.join(sorted({str(p) for p in runs.tables.values()})))

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # stored clean
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 4  # figures 1-4 from the synapse, node and gaussian tables
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    claims = next(html for html in tables if "Unperturbed AlexNet" in html)
    # with the synapse and node tables together, node-against-synapse is checked, not n.a.
    assert "node_worse_than_synapse" in claims
    row = claims[claims.index("node_worse_than_synapse"):].split("</tr>")[0]
    assert "n.a." not in row
