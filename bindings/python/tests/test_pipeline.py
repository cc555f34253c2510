"""Pipelines with the library's stages and stages written in Python."""
import hashlib
import os
import shutil
import subprocess

import pytest

import backupop

DATA = os.urandom(1 << 20) + b"abc" * 300000


class Upper(backupop.Stage):
    name = "upper"

    def process(self, data):
        return bytes(data).upper()


class Sha256(backupop.Stage):
    """Passes data through and appends its SHA-256 at the end (buffers output)."""

    def __init__(self):
        self.h = hashlib.sha256()

    def process(self, data):
        self.h.update(data)
        return bytes(data)

    def end(self):
        return self.h.hexdigest().encode()


class Boom(Exception):
    pass


class Failing(backupop.Stage):
    def __init__(self):
        self.seen = 0

    def process(self, data):
        self.seen += len(data)
        if self.seen > 100000:
            raise Boom("stage gave up at %d" % self.seen)
        return bytes(data)


def test_library_stages_roundtrip_and_clis(tmp_path):
    pair = backupop.keygen()
    out = tmp_path / "out.zst.age"
    p = backupop.Pipeline(DATA, [backupop.Compress("zstd", level=3),
                                 backupop.Encrypt(pair)], out)
    assert p.run() is None
    assert p.bytes_in == len(DATA) and p.bytes_out == out.stat().st_size
    back = backupop.Pipeline(out, [backupop.Decrypt(pair), backupop.Decompress("zstd")]).run()
    assert back == DATA
    if shutil.which("age") and shutil.which("zstd"):
        key = tmp_path / "key"
        key.write_text(pair.identity)
        plain = subprocess.run("age -d -i %s %s | zstd -d" % (key, out), shell=True,
                               stdout=subprocess.PIPE, check=True).stdout
        assert plain == DATA


def test_python_stages_between_library_stages():
    src = [DATA[i:i + 10000] for i in range(0, len(DATA), 10000)]
    out = backupop.Pipeline(iter(src), [Upper(), backupop.Compress("gzip"),
                                        backupop.Decompress("gzip"), Sha256()]).run()
    up = DATA.upper()
    assert out == up + hashlib.sha256(up).hexdigest().encode()


def test_exception_in_python_stage_propagates_and_aborts_the_sink(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(Boom, match="stage gave up"):
        backupop.Pipeline(DATA, [Failing()], out).run()
    assert not out.exists()


def test_failing_producer_fails_the_run(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(backupop.ChildFailed):
        backupop.Pipeline(backupop.Command(["sh", "-c", "echo x; exit 2"]), [], out).run()
    assert not out.exists()


def test_corrupt_input_to_decompress_is_a_format_error():
    with pytest.raises(backupop.FormatError):
        backupop.Pipeline(b"not zstd at all" * 100, [backupop.Decompress("zstd")]).run()
