"""The converter: HDF5 contents against OpenCV's reading of the same caffemodel, the
file's attributes, the command line, and refusals that leave no output behind."""

import hashlib
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from opencv_caffe import assert_matches_opencv, small_models

import replication
from replication.caffe import read_caffemodel, write_caffemodel
from replication.caffe.convert import KNOWN_MODELS, convert_caffemodel, identify
from replication.caffe.hdf5 import group_name
from replication.commands.convert import main
from replication.errors import ReplicationError


def h5_weights(path) -> tuple[dict, list]:
    """(caffe name -> blobs, [(group name, caffe name, type, index)]) from a converted file."""
    weights, groups = {}, []
    with h5py.File(path, "r") as f:
        for name, group in f.items():
            assert isinstance(group, h5py.Group)
            names = list(group)
            assert set(names) <= {"weights", "bias"} | {f"blob_{i}" for i in range(2, len(names))}
            order = ["weights", "bias", *(f"blob_{i}" for i in range(2, len(names)))][: len(names)]
            weights[group.attrs["caffe_name"]] = [group[n][()] for n in order]
            groups.append((name, group.attrs["caffe_name"], group.attrs["type"], int(group.attrs["index"])))
    return weights, sorted(groups, key=lambda g: g[3])


def test_small_models_convert_to_what_opencv_reads(caffe_dir, cv2, tmp_path):
    for caffemodel, prototxt, generation in small_models(caffe_dir, tmp_path):
        out = tmp_path / f"{caffemodel.stem}.h5"
        convert_caffemodel(caffemodel, out, prototxt=prototxt, progress=False)
        weights, groups = h5_weights(out)
        assert_matches_opencv(cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel)), weights)

        net = read_caffemodel(caffemodel)
        in_order = [layer for layer in net.layers if layer.blobs]
        assert [(g[1], g[2], g[3]) for g in groups] == [(layer.name, layer.type, i) for i, layer in enumerate(in_order)]
        data = caffemodel.read_bytes()
        with h5py.File(out, "r") as f:
            assert dict(f.attrs) == {
                "format": "replication-caffe-hdf5",
                "format_version": 1,
                "net_name": net.name,
                "generation": generation,
                "source_file": caffemodel.name,
                "source_sha256": hashlib.sha256(data).hexdigest(),
                "source_sha1": hashlib.sha1(data).hexdigest(),
                "converter_version": replication.__version__,
            }
            assert all(d.dtype == np.float32 for g in f.values() for d in g.values())


def test_googlenet_slash_names_are_escaped_and_match_opencv(caffe_dir, cv2, tmp_path):
    model = caffe_dir / "bvlc_googlenet"
    out = tmp_path / "googlenet.h5"
    convert_caffemodel(model / "bvlc_googlenet.caffemodel", out, prototxt=model / "deploy.prototxt", progress=False)
    weights, groups = h5_weights(out)  # also asserts no nested groups: every item is a layer
    assert len(groups) == 58
    assert ("inception_3a%2F1x1", "inception_3a/1x1", "Convolution", 3) in groups
    assert all(name == caffe_name.replace("/", "%2F") for name, caffe_name, _, _ in groups)
    cv_net = cv2.dnn.readNetFromCaffe(str(model / "deploy.prototxt"), str(model / "bvlc_googlenet.caffemodel"))
    assert_matches_opencv(cv_net, weights)


def test_squeezenet_converts_to_what_opencv_reads(caffe_dir, cv2, tmp_path):
    model = caffe_dir / "squeezenet_v1.1"
    out = tmp_path / "squeezenet.h5"
    convert_caffemodel(model / "squeezenet_v1.1.caffemodel", out, prototxt=model / "deploy.prototxt", progress=False)
    cv_net = cv2.dnn.readNetFromCaffe(str(model / "deploy.prototxt"), str(model / "squeezenet_v1.1.caffemodel"))
    assert_matches_opencv(cv_net, h5_weights(out)[0])


def test_group_names_are_unambiguous():
    names = ["conv1", "a/b", "a%2Fb", "a%b/", "%25"]
    encoded = [group_name(n) for n in names]
    assert encoded == ["conv1", "a%2Fb", "a%252Fb", "a%25b%2F", "%2525"]
    assert len(set(encoded)) == len(names) and not any("/" in e for e in encoded)


def test_blob_2_and_beyond(tmp_path):
    from replication.caffe import Layer, Net

    blobs = [np.full(3, i, np.float32) for i in range(4)]
    model = tmp_path / "bn.caffemodel"
    write_caffemodel(model, Net("bn", [Layer("bn1", "BatchNorm", ["x"], ["x"], blobs=blobs)]))
    convert_caffemodel(model, tmp_path / "bn.h5", progress=False)
    with h5py.File(tmp_path / "bn.h5", "r") as f:
        assert sorted(f["bn1"]) == ["bias", "blob_2", "blob_3", "weights"]
        assert f["bn1"]["blob_3"][()].tolist() == [3, 3, 3]


# --- the command line --------------------------------------------------------------------


def run_cli(*args):
    command = [sys.executable, "-m", "replication.convert", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True)


def test_cli_reports_sha1_and_layer_table(caffe_dir, tmp_path):
    small = caffe_dir / "small"
    caffemodel = small / "v2_lenet_iter_10000.caffemodel"
    out = tmp_path / "lenet.h5"
    result = run_cli(caffemodel, "-o", out, "--prototxt", small / "v2_lenet.prototxt")
    assert result.returncode == 0, result.stderr
    assert hashlib.sha1(caffemodel.read_bytes()).hexdigest() in result.stdout
    assert "not a known Model Zoo file" in result.stdout
    table = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert table["ip1"][1:] == ["InnerProduct", "500x800,", "500", "400,500"]
    assert table["total"][-1] == "431,080"
    assert "converting" in result.stderr and "4/4" in result.stderr  # per-layer progress
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet.h5"]  # no temporary file left


def test_zoo_files_are_recognised_by_sha1_and_impostors_flagged(caffe_dir, tmp_path):
    known, warning = identify(tmp_path / "renamed.caffemodel", KNOWN_MODELS["bvlc_alexnet.caffemodel"][0])
    assert "AlexNet" in known and warning is None
    # Any other file under a zoo name is not the zoo file, and the user is told so.
    impostor = tmp_path / "bvlc_alexnet.caffemodel"
    shutil.copy(caffe_dir / "small" / "v2_lenet_iter_10000.caffemodel", impostor)
    result = run_cli(impostor, "-o", tmp_path / "out.h5", "--no-progress")
    assert result.returncode == 0
    assert "warning" in result.stderr and "9116a64c0fbe4459d18f4bb6b56d647b63920377" in result.stderr


# --- refusals ----------------------------------------------------------------------------


def assert_refused(tmp_path, capsys, args, *words):
    """main() fails with one line on stderr naming the problem (exit 2 via run_cli),
    and the directory holds no output or temporary file afterwards."""
    before = sorted(tmp_path.iterdir())
    from replication.commands.common import run_cli as run

    assert run(main, [*map(str, args), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for word in words:
        assert word in err, err
    assert sorted(tmp_path.iterdir()) == before
    return err


def test_bad_caffemodels_are_refused(caffe_dir, tmp_path, capsys):
    data = (caffe_dir / "small" / "v2_lenet_iter_10000.caffemodel").read_bytes()
    truncated, noise, empty = (tmp_path / f"{name}.caffemodel" for name in ("truncated", "noise", "empty"))
    truncated.write_bytes(data[: len(data) // 2])
    noise.write_bytes(np.random.default_rng(0).bytes(50_000))
    empty.write_bytes(b"")
    out = tmp_path / "out.h5"
    assert_refused(tmp_path, capsys, [truncated, "-o", out], str(truncated), "truncated")
    assert_refused(tmp_path, capsys, [noise, "-o", out], str(noise), "corrupt")
    assert_refused(tmp_path, capsys, [empty, "-o", out], str(empty), "empty")


def test_failed_conversion_keeps_an_existing_output(caffe_dir, tmp_path, capsys):
    out = tmp_path / "out.h5"
    out.write_bytes(b"previous result")
    truncated = tmp_path / "truncated.caffemodel"
    truncated.write_bytes((caffe_dir / "small" / "v2_lenet_iter_10000.caffemodel").read_bytes()[:1000])
    assert_refused(tmp_path, capsys, [truncated, "-o", out], "truncated")
    assert out.read_bytes() == b"previous result"


def test_mismatched_prototxts_are_refused(caffe_dir, tmp_path, capsys):
    small = caffe_dir / "small"
    lenet = small / "v2_lenet_iter_10000.caffemodel"
    prototxt = (small / "v2_lenet.prototxt").read_text()
    out = tmp_path / "out.h5"

    def variant(name, old, new):
        assert old in prototxt
        path = tmp_path / f"{name}.prototxt"
        path.write_text(prototxt.replace(old, new, 1))
        return path

    def refused(caffemodel, prototxt, *words):
        assert_refused(tmp_path, capsys, [caffemodel, "-o", out, "--prototxt", prototxt], str(prototxt), *words)

    refused(lenet, small / "everpeace_cifar10_quick.prototxt", "'conv1'", "(32, ?, 5, 5)")
    refused(lenet, variant("missing", 'name: "ip2"', 'name: "ip_two"'), "'ip2'", "not in this prototxt")
    retyped = variant("retyped", 'type: "InnerProduct"', 'type: "Convolution"')
    refused(lenet, retyped, "'ip1'", "is Convolution here but InnerProduct")
    refused(lenet, variant("no_bias", "num_output: 500", "num_output: 500\n    bias_term: false"), "'ip1'", "1 blobs")

    # A prototxt layer that needs weights the caffemodel lacks.
    net = read_caffemodel(lenet)
    net.layers = [layer for layer in net.layers if layer.name != "ip2"]
    partial = tmp_path / "partial.caffemodel"
    write_caffemodel(partial, net)
    refused(partial, small / "v2_lenet.prototxt", "'ip2'", "needs weights")


def test_convert_raises_replication_error(tmp_path):
    with pytest.raises(ReplicationError, match="no such file"):
        convert_caffemodel(tmp_path / "absent.caffemodel", tmp_path / "out.h5", progress=False)
    assert list(tmp_path.iterdir()) == []
