"""The paper's scale on this machine: 50,000 images through evaluate and two sweeps, against
the same runs on the 1,300 shared images.

A 50,000-image validation set is made from the 1,300 shared images, outside the
repository (50,000 symbolic links named ILSVRC2012_val_00000001.JPEG … with a val.txt;
image i is shared image i mod 1,300, with its label). With the synthetic AlexNet
(`python -m replication.synthetic`) and --memory-gb 4 it measures, each command in its own
process: evaluate on every image; a figure1 sweep of conv_2 (whose cached inputs are about
14 GB at this size, so the engine must take them in chunks) and one of dense_1, a few
trials each. For each: wall time, peak resident memory (the child's ru_maxrss), images/s,
the disk used by --cache-dir, and the start-up time before the first trial's row.

Usage:
    python benchmarks/paper_scale.py --work /scratch/paper-scale [--images 50000] [--runs dense_1] [--skip-small]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from replication.paths import shared_dir

TRIALS = ("--levels", "0,0.5", "--repeats", "2")  # the baseline and 2 trials of one layer
RUNS = ("evaluate", "conv_2", "dense_1")


def make_validation_set(folder: Path, count: int) -> Path:
    """`count` links to the shared images with a val.txt; reused when already there."""
    subset = shared_dir() / "data" / "ilsvrc2012_val_subset"
    pairs = [line.split() for line in (subset / "val.txt").read_text().splitlines() if line.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    labels = []
    for i in range(count):
        name, label = pairs[i % len(pairs)]
        link = folder / f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        if not link.is_symlink():
            link.symlink_to((subset / "images" / name).resolve())
        labels.append(f"{link.name} {label}")
    (folder / "val.txt").write_text("\n".join(labels) + "\n")
    return folder


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def timed(command: list[str], table: Path | None = None) -> dict:
    """Run `command`; wall seconds, the child's peak RSS, and when `table` got its first trial row."""
    first_row = {}
    start = time.perf_counter()
    # A fresh parent per command, so that its RUSAGE_CHILDREN peak is this command's alone.
    wrapper = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
               "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")
    process = subprocess.Popen([sys.executable, "-c", wrapper, *command], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)

    def watch():
        while process.poll() is None and table is not None:
            if table.exists() and table.read_bytes().count(b"\n") >= 3:  # header, baseline, a trial
                first_row["seconds"] = time.perf_counter() - start
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - start
    watcher.join(timeout=1)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{output[-4000:]}")
    peak_kb = int(output.rsplit("PEAK_KB", 1)[1].split()[0])
    return {"seconds": seconds, "peak_rss_gb": peak_kb / 2**20, "first_trial_seconds": first_row.get("seconds"),
            "output_tail": output[-600:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="a scratch folder outside the repository")
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--memory-gb", type=float, default=4.0)
    parser.add_argument("--skip-small", action="store_true", help="only the large runs")
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated, from: " + ", ".join(RUNS))
    args = parser.parse_args(argv)
    chosen = args.runs.split(",")
    if unknown := sorted(set(chosen) - set(RUNS)):
        parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")

    work = args.work.resolve()
    weights = work / "synthetic_alexnet.h5"
    if not weights.exists():
        subprocess.run([sys.executable, "-m", "replication.synthetic", "-o", str(weights)], check=True)
    mean = shared_dir() / "data" / "caffe" / "ilsvrc_2012_mean.npy"
    sets = {"50k": make_validation_set(work / f"val{args.images}", args.images)}
    if not args.skip_small:
        sets = {"1300": shared_dir() / "data" / "ilsvrc2012_val_subset", **sets}
    report = {}
    for name, data in sets.items():
        images = args.images if name == "50k" else 1300
        common = ["--model", "alexnet", "--weights", str(weights), "--data", str(data), "--mean-file", str(mean),
                  "--no-progress", "--batch-size", "64"]
        cache = work / f"cache-{name}"
        shutil.rmtree(cache, ignore_errors=True)
        runs = {"evaluate": [sys.executable, "-m", "replication.evaluate", *common]}
        for layer in ("conv_2", "dense_1"):
            table = work / f"results-{name}-{layer}.csv"
            table.unlink(missing_ok=True)
            runs[layer] = ([sys.executable, "-m", "replication.figure1", *common, "--layers", layer, *TRIALS,
                            "--memory-gb", str(args.memory_gb), "--cache-dir", str(cache), "--out", str(work / "out"),
                            "--results", str(table)], table)
        for run, spec in [(run, spec) for run, spec in runs.items() if run in chosen]:
            command, table = spec if isinstance(spec, tuple) else (spec, None)
            result = timed(command, table)
            result["images"] = images
            result["images_per_s_per_pass"] = images * (1 if run == "evaluate" else 3) / result["seconds"]
            result["cache_dir_gb"] = _folder_bytes(cache) / 2**30
            report[f"{name} {run}"] = result
            print(json.dumps({f"{name} {run}": {k: v for k, v in result.items() if k != "output_tail"}}), flush=True)
    (work / "paper_scale.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
