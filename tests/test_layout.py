"""The package's shape: the public API resolves, data flows one way (the library never
imports the commands), merging needs neither TensorFlow nor pandas, the Keras internals
are checked in one place, the console script dispatches, and the README's Python example
runs as printed."""

import ast
import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import replication
from replication.commands import main as console
from replication.errors import ReplicationError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "replication"
HEAVY = ("tensorflow", "keras", "pandas")


def test_every_public_name_resolves():
    assert "__version__" in replication.__all__
    for name in replication.__all__:
        assert getattr(replication, name) is not None, name
    with pytest.raises(AttributeError):
        replication.no_such_name  # noqa: B018


def _imports(path: Path) -> set[str]:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    return imported


def test_the_library_never_imports_a_command():
    entry_points = {p.stem for p in PACKAGE.glob("*.py") if "entry_point" in p.read_text() or "figure_command" in p.read_text()}
    assert {"figure1", "convert", "merge", "reproduce"} <= entry_points
    commands = {"replication.commands"} | {f"replication.{name}" for name in entry_points}
    library = [p for p in PACKAGE.rglob("*.py") if "commands" not in p.parts and p.stem not in entry_points]
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if any(m == c or m.startswith(c + ".") for c in commands))
        for p in library
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_keras_internals_are_read_in_one_module():
    users = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
             if re.search(r"\._keras_history|\._inbound_nodes|\._nodes_by_depth", p.read_text())]
    assert users == ["run/graph.py"]


MERGE_WITHOUT_TENSORFLOW = """
import runpy, sys
from pathlib import Path
from replication.perturb.trials import Trial
from replication.run.grid import Grid
from replication.run.shards import Shard, shard_path, shard_share, write_manifest
from replication.run.table import ResultsLog, RunInfo
from replication.commands.merge import main

out = Path(sys.argv[1])
run = RunInfo("alexnet", "ab" * 32, "d", 10, "0.1.0", "paper")
grid = Grid(("conv_1", "conv_2"), "synapse", (0.0, 0.5), 2)
for i in range(2):
    shard = Shard(i, 2)
    table = shard_path(out, shard)
    write_manifest(table, run, grid, shard)
    with ResultsLog(table, run) as log:
        for trial in shard_share(grid.trials(), {"-": 2.0, "conv_1": 2.0, "conv_2": 1.0}, shard):
            log.append(trial, None, 0.5, 0.75, 1.0)
assert main([str(out), str(shard_path(out, Shard(0, 2))), str(shard_path(out, Shard(1, 2)))]) == 0
sys.argv = ["replication.merge", "--help"]
try:
    runpy.run_module("replication.merge", run_name="__main__")
except SystemExit:
    pass
print("HEAVY", sorted(m for m in sys.modules if m.split(".")[0] in HEAVY_MODULES))
"""


def test_merge_loads_neither_tensorflow_nor_pandas(tmp_path):
    script = MERGE_WITHOUT_TENSORFLOW.replace("HEAVY_MODULES", repr(HEAVY))
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "merged.csv")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "merged 5 trials from 2 shards" in done.stdout and "usage: python -m replication.merge" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_keras_range_is_declared_and_checked(monkeypatch):
    from replication.run import graph

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requires = config["options"]["install_requires"]
    assert f"keras{graph.KERAS_RANGE}" in requires.split()
    graph.check_keras()  # the installed Keras has what graph.py reads

    def moved(tensor):
        raise AttributeError("'KerasTensor' object has no attribute '_keras_history'")

    monkeypatch.setattr(graph, "_producer", moved)
    with pytest.raises(ReplicationError, match=r"Keras .* changed the private graph state.*>=3\.3,<4"):
        graph.check_keras()


def test_console_script_dispatches(capsys):
    assert console.main(["--help"]) == 0
    listed = capsys.readouterr().out
    for name in ("reproduce", "figure1", "figure4", "convert", "evaluate", "table1", "compare", "merge"):
        assert re.search(rf"^  {name} ", listed, re.M), name
    with pytest.raises(SystemExit) as exit_:
        console.main(["merge", "--help"])
    assert exit_.value.code == 0 and "usage: python -m replication.merge" in capsys.readouterr().out
    assert console.main(["figure9"]) == 2 and "unknown command 'figure9'" in capsys.readouterr().err
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert "replication = replication.commands.main:console" in config["options.entry_points"]["console_scripts"]


def test_abbreviated_options_are_refused(capsys):
    from replication.commands import compare

    with pytest.raises(SystemExit):
        compare.main(["--results", "x.csv", "--metr", "top1"])
    assert "unrecognized arguments: --metr top1" in capsys.readouterr().err


def test_readme_python_example_runs(shared, tmp_path):
    """The README's example regenerates Figure 1 (on SqueezeNet, a small grid) in one call."""
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert "../shared" in example and "rp.run_experiment(1," in example
    script = tmp_path / "example.py"
    script.write_text(example.replace("../shared", str(shared)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["layer", "level"])
    rows = [line.split() for line in lines[header + 1:header + 3]]
    assert [row[1:4] for row in rows] == [["-", "0.0", "1"], ["conv10", "0.5", "2"]]
    baseline, damaged = float(rows[0][4]), float(rows[1][4])
    assert 0.8 < baseline <= 1.0 and damaged < baseline  # half the output layer's synapses gone
    figures = lines[-1].split()[1:]
    assert lines[-1].startswith("figure:") and [Path(f).suffix for f in figures] == [".png", ".pdf"]
    assert all((tmp_path / f).is_file() for f in figures)
    assert len(list((tmp_path / "out").glob("results-*-synapse.csv"))) == 1
    assert len(list((tmp_path / "out").glob("figure1-*-stats.md"))) == 1


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:python|bash|sh)?\n(.*?)```", text, re.S)


def test_documented_examples_use_only_the_public_api():
    """Every example in the README and docs/, and every notebook cell, imports replication
    only as `import replication as rp`: internal modules are free to move."""
    internal = re.compile(r"(from\s+replication\.\w|import\s+replication\.\w|from\s+replication\s+import)")
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in _code_blocks(path.read_text()):
            found += [f"{path.name}: {line.strip()}" for line in block.splitlines() if internal.search(line)]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                found += [f"{path.name}: {line.strip()}" for line in "".join(cell["source"]).splitlines()
                          if internal.search(line)]
    assert found == []


def _module_graph() -> dict[str, set[str]]:
    """replication's modules -> the replication modules each imports (anywhere in it, function
    bodies too); `from a import b` points at a.b when that is a module, else at a."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_module_imports_itself_back():
    graph = _module_graph()
    # the check itself: a planted circle is found
    assert _circles({**graph, "replication.analysis.claims": graph["replication.analysis.claims"] | {"replication.analysis.claims_vgg"}})
    assert _circles(graph) == []
    assert "replication.analysis.claims_vgg" not in graph["replication.analysis.claims"]


def test_the_vgg_claims_are_registered_without_the_registry_importing_them():
    import replication.analysis.claims as claims

    assert any(c.id.startswith("vgg16_") for c in claims.CLAIMS)
