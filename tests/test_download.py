"""`python -m replication.download` against a real HTTP server on 127.0.0.1 serving
synthetic files: hash checked before the rename, resume with a Range request after a
dropped connection, a server that ignores ranges, wrong bytes, a present file left alone,
and the safe extraction of the aux archive. No traffic leaves this machine."""

import hashlib
import http.server
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from replication import fetch
from replication.commands import download as dl
from replication.commands import main as replication_main
from replication.commands.common import run_cli
from replication.errors import ReplicationError

TIMEOUT = 10.0
ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


class FileServer:
    """Serves `files` (path -> bytes) the way `modes` (path -> good, drop, ignore-range,
    ignore-if-range, default good) says, with a strong ETag per content unless the path is in
    `no_validator`, and Range and If-Range handled as HTTP says; records every request's path
    and Range header in `requests`, and its If-Range header in `if_ranges`."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.no_validator: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        self.if_ranges: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = TIMEOUT

            def log_message(self, *args):
                pass

            def _validators(self, body):
                if self.path in server.no_validator:
                    return {}
                return {"ETag": f'"{hashlib.sha256(body).hexdigest()[:16]}"'}

            def _head(self, code, body, length, **headers):
                self.send_response(code)
                for name, value in {**self._validators(body), **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(length))
                self.end_headers()

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                server.if_ranges.append(self.headers.get("If-Range"))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                mode = server.modes.get(self.path, "good")
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if_range = self.headers.get("If-Range")
                changed = if_range is not None and if_range != self._validators(body).get("ETag")
                if match and changed and mode != "ignore-if-range":
                    match = None  # the file changed (or has no ETag): the whole file, as HTTP says
                if mode == "drop":  # announce the whole file, send half of it, close
                    self._head(200, body, len(body))
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if mode == "slow":  # the whole file in small pieces, for a second process to meet the first
                    self._head(200, body, len(body))
                    for start in range(0, len(body), len(body) // 40 + 1):
                        self.wfile.write(body[start : start + len(body) // 40 + 1])
                        self.wfile.flush()
                        time.sleep(0.1)
                    return
                if mode == "ignore-range" or match is None:
                    self._head(200, body, len(body))
                    self.wfile.write(body)
                    return
                start = int(match[1])
                if start >= len(body):
                    self._head(416, body, 0, **{"Content-Range": f"bytes */{len(body)}"})
                    return
                self._head(206, body, len(body) - start, **{"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})
                self.wfile.write(body[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(TIMEOUT)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Requests to 127.0.0.1 must not be sent to a proxy named in the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()


def _item(data: bytes, name="blob.bin", **kwargs) -> fetch.Item:
    return fetch.Item("test", name, "http://127.0.0.1:9/unused", "sha1", hashlib.sha1(data).hexdigest(), **kwargs)


def _get(item, folder, url, **kwargs):
    return fetch.fetch_item(item, folder, url=url, progress=False, timeout=TIMEOUT, **kwargs)


def _etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:16]}"'


def _partial(target, data: bytes, server, name: str, served: bytes):
    """A partial download of `target` holding `data`, with the validator an earlier attempt
    would have saved when the server served `served`."""
    partial = fetch.partial_path(target)
    partial.write_bytes(data)
    fetch.validator_path(target).write_text(json.dumps({"url": server.url(name), "etag": _etag(served)}))
    return partial


def test_a_good_download_is_checked_and_renamed(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    result = _get(_item(PAYLOAD), tmp_path, server.url("blob.bin"))
    assert result.fetched and result.path == tmp_path / "blob.bin"
    assert result.path.read_bytes() == PAYLOAD
    assert (result.algorithm, result.digest) == ("sha1", hashlib.sha1(PAYLOAD).hexdigest())
    assert result.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert not fetch.partial_path(result.path).exists()
    assert server.requests == [("/blob.bin", None)]

    # A catalogue item with the expected digest given explicitly (md5, as for vgg16).
    server.files["/other.bin"] = PAYLOAD[::-1]
    md5 = hashlib.md5(PAYLOAD[::-1]).hexdigest()
    result = _get("vgg16", tmp_path, server.url("other.bin"), digest=md5, algorithm="md5")
    assert result.path == tmp_path / fetch.ITEMS["vgg16"].filename and result.digest == md5


def test_a_dropped_connection_keeps_the_partial_and_the_next_run_resumes(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    server.modes["/blob.bin"] = "drop"
    item = _item(PAYLOAD)
    half = len(PAYLOAD) // 2
    with pytest.raises(ReplicationError) as err:
        _get(item, tmp_path, server.url("blob.bin"))
    assert f"interrupted after {half} of {len(PAYLOAD)} bytes" in str(err.value)
    assert "run the same command again to resume" in str(err.value)
    partial = fetch.partial_path(tmp_path / "blob.bin")
    assert partial.name == ".blob.bin.download" and partial.read_bytes() == PAYLOAD[:half]
    assert not (tmp_path / "blob.bin").exists()

    server.modes["/blob.bin"] = "good"
    result = _get(item, tmp_path, server.url("blob.bin"))
    assert server.requests[-1] == ("/blob.bin", f"bytes={half}-")
    assert result.fetched and result.path.read_bytes() == PAYLOAD and not partial.exists()


def test_a_server_that_ignores_the_range_restarts_from_zero(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    server.modes["/blob.bin"] = "ignore-range"
    partial = _partial(tmp_path / "blob.bin", b"x" * 3000, server, "blob.bin", PAYLOAD)  # not even a prefix
    result = _get(_item(PAYLOAD), tmp_path, server.url("blob.bin"))
    assert server.requests == [("/blob.bin", "bytes=3000-")]
    assert result.path.read_bytes() == PAYLOAD and not partial.exists()


def test_a_complete_partial_is_checked_without_fetching_more(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    _partial(tmp_path / "blob.bin", PAYLOAD, server, "blob.bin", PAYLOAD)  # killed between the last byte and the rename
    result = _get(_item(PAYLOAD), tmp_path, server.url("blob.bin"))
    assert server.requests == [("/blob.bin", f"bytes={len(PAYLOAD)}-")]  # answered 416
    assert result.fetched and result.path.read_bytes() == PAYLOAD


def test_wrong_bytes_leave_neither_target_nor_partial(server, tmp_path):
    wrong = PAYLOAD[:-1] + b"!"
    server.files["/blob.bin"] = wrong
    item = _item(PAYLOAD)
    with pytest.raises(ReplicationError) as err:
        _get(item, tmp_path, server.url("blob.bin"))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'blob.bin'}: wrong sha1")
    assert item.digest in message and hashlib.sha1(wrong).hexdigest() in message
    assert not (tmp_path / "blob.bin").exists() and not fetch.partial_path(tmp_path / "blob.bin").exists()


def test_the_command_refuses_a_mirror_serving_the_wrong_alexnet(server, tmp_path, capsys):
    server.files["/bvlc_alexnet.caffemodel"] = PAYLOAD
    out = tmp_path / "weights"
    argv = ["alexnet", "--mirror", server.base, "--to", str(out), "--no-progress", "--timeout", str(TIMEOUT)]
    assert run_cli(dl.main, argv) == 2
    err = capsys.readouterr().err.strip()
    target = out / "bvlc_alexnet.caffemodel"
    assert err.startswith(f"error: {target}: wrong sha1: expected 9116a64c0fbe4459d18f4bb6b56d647b63920377, "
                          f"got {hashlib.sha1(PAYLOAD).hexdigest()}")
    assert "\n" not in err and "Traceback" not in err
    assert not target.exists() and not fetch.partial_path(target).exists()


def test_a_present_correct_target_is_not_fetched_again(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    (tmp_path / "blob.bin").write_bytes(PAYLOAD)
    result = _get(_item(PAYLOAD), tmp_path, server.url("blob.bin"))
    assert not result.fetched and server.requests == []

    # Present but wrong: fetched again, and the old file replaced only once the new one is checked.
    (tmp_path / "blob.bin").write_bytes(b"stale")
    lines = []
    result = _get(_item(PAYLOAD), tmp_path, server.url("blob.bin"), log=lines.append)
    assert result.fetched and result.path.read_bytes() == PAYLOAD
    assert len(lines) == 1 and "present but wrong sha1" in lines[0]


def _tar_gz(members: dict[str, bytes], symlinks=()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, points_to in symlinks:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, points_to
            tar.addfile(info)
    return buffer.getvalue()


def test_the_aux_archive_yields_val_txt_and_synset_words_and_nothing_else(server, tmp_path):
    val = b"ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\n"
    words = b"n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"
    archive = _tar_gz({"./val.txt": val, "synset_words.txt": words, "../evil": b"owned", "train.txt": b"x 0\n"})
    server.files["/caffe_ilsvrc12.tar.gz"] = archive
    folder = tmp_path / "weights"
    result = _get("aux", folder, server.url("caffe_ilsvrc12.tar.gz"))
    assert result.digest is None and result.sha256 == hashlib.sha256(archive).hexdigest()
    assert result.extracted == (folder / "val.txt", folder / "synset_words.txt")
    assert (folder / "val.txt").read_bytes() == val and (folder / "synset_words.txt").read_bytes() == words
    assert not (tmp_path / "evil").exists()
    assert result.recorded and (folder / "caffe_ilsvrc12.tar.gz.sha256").read_text().split()[0] == result.sha256
    assert sorted(p.name for p in folder.iterdir()) == ["caffe_ilsvrc12.tar.gz", "caffe_ilsvrc12.tar.gz.sha256",
                                                        "synset_words.txt", "val.txt"]

    # Present: not fetched again, but a removed member is extracted again.
    (folder / "val.txt").unlink()
    result = _get("aux", folder, server.url("caffe_ilsvrc12.tar.gz"))
    assert not result.fetched and result.extracted == (folder / "val.txt",)
    assert len(server.requests) == 1


def test_extraction_refuses_missing_members_links_and_paths(tmp_path):
    archive = tmp_path / "aux.tar.gz"
    archive.write_bytes(_tar_gz({"synset_words.txt": b"n0 x\n"}, symlinks=[("val.txt", "/etc/passwd")]))
    with pytest.raises(ReplicationError, match="'val.txt' is not a regular file"):
        fetch.extract_members(archive, tmp_path, ["val.txt"])
    with pytest.raises(ReplicationError, match="has no member 'test.txt'"):
        fetch.extract_members(archive, tmp_path, ["test.txt"])
    with pytest.raises(ReplicationError, match="not a plain file name"):
        fetch.extract_members(archive, tmp_path, ["../evil"])
    (tmp_path / "broken.tar.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ReplicationError, match="not a readable tar archive"):
        fetch.extract_members(tmp_path / "broken.tar.gz", tmp_path, ["val.txt"])
    assert not (tmp_path / "val.txt").exists()


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_the_command_fetches_the_mean_and_aux_from_a_mirror(server, tmp_path, capsys):
    mean = _npy(np.full((3, 256, 256), 110.0))
    server.files["/ilsvrc_2012_mean.npy"] = mean
    server.files["/caffe_ilsvrc12.tar.gz"] = _tar_gz({"val.txt": b"a.JPEG 0\n", "synset_words.txt": b"n0 x\n"})
    out = tmp_path / "weights"
    argv = ["mean", "aux", "--mirror", server.base + "/", "--to", str(out), "--no-progress"]
    assert run_cli(dl.main, argv) == 0
    printed = capsys.readouterr().out
    assert f"sha256 {hashlib.sha256(mean).hexdigest()} (no published hash; recorded in {out}/ilsvrc_2012_mean.npy" \
           ".sha256, which later runs check against: keep that value to pin the file); a 3x256x256 mean image" in printed
    assert f"extracted {out / 'val.txt'}, {out / 'synset_words.txt'}" in printed
    assert "https://image-net.org/download-images" in printed and "ILSVRC2012_img_val.tar" in printed
    assert {path for path, _ in server.requests} == {"/ilsvrc_2012_mean.npy", "/caffe_ilsvrc12.tar.gz"}

    assert run_cli(dl.main, argv) == 0  # everything present: nothing fetched
    assert "already present, not downloaded again" in capsys.readouterr().out
    assert len(server.requests) == 2


def test_a_mean_image_of_the_wrong_shape_is_refused(server, tmp_path, capsys):
    server.files["/ilsvrc_2012_mean.npy"] = _npy(np.zeros((3, 227, 227)))
    argv = ["mean", "--mirror", server.base, "--to", str(tmp_path), "--no-progress"]
    assert run_cli(dl.main, argv) == 2
    err = capsys.readouterr().err
    assert "is not a 3x256x256 mean image (shape 3x227x227)" in err
    assert not (tmp_path / "ilsvrc_2012_mean.npy").exists()
    assert not fetch.partial_path(tmp_path / "ilsvrc_2012_mean.npy").exists()


def test_unreachable_servers_and_http_errors_are_one_line(server, tmp_path, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ReplicationError, match="cannot reach http://127.0.0.1"):
        _get(_item(PAYLOAD), tmp_path, f"http://127.0.0.1:{port}/blob.bin")
    with pytest.raises(ReplicationError, match="HTTP 404"):
        _get(_item(PAYLOAD), tmp_path, server.url("missing.bin"))
    assert run_cli(dl.main, ["--mirror", "ftp://example.org"]) == 2
    assert "expected an http:// or https:// URL" in capsys.readouterr().err
    assert run_cli(dl.main, ["alexnett"]) == 2
    assert "unknown 'alexnett'" in capsys.readouterr().err


def test_list_names_every_item_its_hash_and_where_the_images_are(capsys):
    assert replication_main.main(["download", "--list"]) == 0
    printed = capsys.readouterr().out
    for item in fetch.ITEMS.values():
        assert item.url in printed
    assert "sha1 9116a64c0fbe4459d18f4bb6b56d647b63920377" in printed
    assert "md5 64373286793e3c8b2b4e3219cbf3544b" in printed
    assert "https://image-net.org/download-images" in printed
    assert fetch.DEFAULT_ITEMS == ("alexnet", "mean", "aux")


# --- the real command in a subprocess: changed remotes, failed checks, two processes ------


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    return {**env, "PYTHONPATH": str(ROOT), "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}


def _command(server, folder, *names, extra=(), wait=True):
    """`python -m replication.download NAMES --mirror SERVER --to FOLDER` in a subprocess
    (the worktree's package first on the path)."""
    command = [sys.executable, "-m", "replication.download", *names, "--mirror", server.base, "--to", str(folder),
               "--no-progress", "--timeout", str(TIMEOUT), *extra]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                                cwd=folder.parent)
    return subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=folder.parent, timeout=120)


def _mean(value: float) -> bytes:
    return _npy(np.full((3, 256, 256), value))


def _error_line(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) >= 1 and "Traceback" not in done.stderr, done.stderr
    return lines[-1]


@pytest.mark.parametrize("server_mode", ["good", "ignore-if-range"])
def test_a_file_that_changed_on_the_server_is_fetched_anew_not_spliced(server, tmp_path, server_mode):
    """Same size, new content (so a new ETag) between an interrupted attempt and the next:
    the next attempt must not append the new file's second half to the old one's first."""
    old, new = _mean(1.0), _mean(2.0)
    assert len(old) == len(new)
    server.files["/ilsvrc_2012_mean.npy"] = old
    server.modes["/ilsvrc_2012_mean.npy"] = "drop"
    folder = tmp_path / "weights"
    first = _command(server, folder, "mean")
    assert "interrupted after" in _error_line(first)
    partial = fetch.partial_path(folder / "ilsvrc_2012_mean.npy")
    assert partial.read_bytes() == old[: len(old) // 2]

    server.files["/ilsvrc_2012_mean.npy"] = new
    server.modes["/ilsvrc_2012_mean.npy"] = server_mode
    second = _command(server, folder, "mean")
    assert second.returncode == 0, second.stderr
    assert (folder / "ilsvrc_2012_mean.npy").read_bytes() == new  # not old[:half] + new[half:]
    assert (f"bytes={len(old) // 2}-", _etag(old)) in list(zip([r for _, r in server.requests], server.if_ranges))
    assert "starting over" in second.stderr
    assert (folder / "ilsvrc_2012_mean.npy.sha256").read_text().split()[0] == hashlib.sha256(new).hexdigest()
    assert not partial.exists() and not fetch.validator_path(folder / "ilsvrc_2012_mean.npy").exists()


def test_a_partial_without_a_validator_is_started_over(server, tmp_path):
    body = _mean(3.0)
    server.files["/ilsvrc_2012_mean.npy"] = body
    server.no_validator.add("/ilsvrc_2012_mean.npy")
    server.modes["/ilsvrc_2012_mean.npy"] = "drop"
    folder = tmp_path / "weights"
    assert "interrupted after" in _error_line(_command(server, folder, "mean"))
    server.modes["/ilsvrc_2012_mean.npy"] = "good"
    done = _command(server, folder, "mean")
    assert done.returncode == 0, done.stderr
    assert server.requests[-1] == ("/ilsvrc_2012_mean.npy", None)  # no Range: nothing to splice onto
    assert "no validator" in done.stderr and "starting over" in done.stderr
    assert (folder / "ilsvrc_2012_mean.npy").read_bytes() == body


def test_the_sha256_of_a_file_without_a_published_hash_is_recorded_and_checked(server, tmp_path):
    first, changed = _mean(4.0), _mean(5.0)
    server.files["/ilsvrc_2012_mean.npy"] = first
    folder = tmp_path / "weights"
    target, record = folder / "ilsvrc_2012_mean.npy", folder / "ilsvrc_2012_mean.npy.sha256"
    done = _command(server, folder, "mean")
    assert done.returncode == 0, done.stderr
    sha = hashlib.sha256(first).hexdigest()
    assert record.read_text() == f"{sha}  ilsvrc_2012_mean.npy\n"  # sha256sum's format
    assert f"sha256 {sha}" in done.stdout and f"recorded in {record}" in done.stdout

    # The published file changes: a later download is checked against the recorded value.
    target.unlink()
    server.files["/ilsvrc_2012_mean.npy"] = changed
    line = _error_line(_command(server, folder, "mean"))
    assert line.startswith(f"error: {target}: wrong sha256: expected {sha} (recorded in {record})")
    assert hashlib.sha256(changed).hexdigest() in line
    assert not target.exists() and not fetch.partial_path(target).exists()

    # A user pins the new value by writing the record: accepted.
    record.write_text(f"{hashlib.sha256(changed).hexdigest()}  ilsvrc_2012_mean.npy\n")
    done = _command(server, folder, "mean")
    assert done.returncode == 0 and target.read_bytes() == changed, done.stderr
    record.write_text("not a hash\n")
    target.unlink()
    assert f"error: {record}: is not a sha256 record" in _error_line(_command(server, folder, "mean"))


def test_an_archive_that_does_not_unpack_never_reaches_its_final_name(server, tmp_path):
    good = _tar_gz({"val.txt": b"a.JPEG 0\n", "synset_words.txt": b"n0 x\n"})
    folder = tmp_path / "weights"
    target = folder / "caffe_ilsvrc12.tar.gz"
    for bad in (bytes(range(256)) * 64, good[: len(good) // 2]):  # random bytes, a truncated archive
        server.files["/caffe_ilsvrc12.tar.gz"] = bad
        done = _command(server, folder, "aux")
        line = _error_line(done)
        assert line.startswith(f"error: {target}: is not a readable tar archive") and "the download was removed" in line
        assert len(done.stderr.strip().splitlines()) == 1
        assert not target.exists() and not fetch.partial_path(target).exists()
        assert not (folder / "val.txt").exists() and not (folder / "caffe_ilsvrc12.tar.gz.sha256").exists()
    verbose = _command(server, folder, "aux", extra=["--verbose"])
    assert verbose.returncode == 2 and len(verbose.stderr.strip().splitlines()) > 1  # the detail, then the line

    # The mirror is fixed: the next run succeeds.
    server.files["/caffe_ilsvrc12.tar.gz"] = good
    done = _command(server, folder, "aux")
    assert done.returncode == 0, done.stderr
    assert (folder / "val.txt").read_bytes() == b"a.JPEG 0\n" and target.read_bytes() == good

    # A broken archive under the final name (left by an older version): moved aside, fetched again.
    target.write_bytes(b"junk")
    (folder / "caffe_ilsvrc12.tar.gz.sha256").unlink()
    done = _command(server, folder, "aux")
    assert done.returncode == 0, done.stderr
    assert f"{target}: present but is not a readable tar archive" in done.stderr
    assert f"moved aside to {fetch.rejected_path(target)}" in done.stderr
    assert target.read_bytes() == good and fetch.rejected_path(target).read_bytes() == b"junk"


def test_a_second_process_on_the_same_folder_is_refused(server, tmp_path):
    server.files["/ilsvrc_2012_mean.npy"] = _mean(6.0)
    server.modes["/ilsvrc_2012_mean.npy"] = "slow"
    server.files["/caffe_ilsvrc12.tar.gz"] = _tar_gz({"val.txt": b"a.JPEG 0\n", "synset_words.txt": b"n0 x\n"})
    folder = tmp_path / "weights"
    partial = fetch.partial_path(folder / "ilsvrc_2012_mean.npy")
    first = _command(server, folder, "mean", wait=False)
    try:
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size > 0) and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()
            time.sleep(0.02)
        second = _command(server, folder, "aux")
        line = _error_line(second)
        assert line == f"error: {folder}: another download is fetching into this folder right now; wait for it to " \
                       "end, or pass another --to"
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert (folder / "ilsvrc_2012_mean.npy").read_bytes() == server.files["/ilsvrc_2012_mean.npy"]
    assert not (folder / "caffe_ilsvrc12.tar.gz").exists()
    assert _command(server, folder, "aux").returncode == 0  # once the first is done, the folder is free
    assert not (folder / fetch.LOCK_NAME).exists()
