"""Storage over a real file:// directory: put/get/stat/list/remove as streams."""
import io
import os

import pytest

import backupop


def test_put_bytes_get_stat(storage, storage_dir):
    storage.put("a/b.bin", b"hello world")
    assert (storage_dir / "a" / "b.bin").read_bytes() == b"hello world"
    st = storage.stat("a/b.bin")
    assert st.size == 11 and st.mtime > 0
    with storage.get("a/b.bin") as r:
        assert r.read() == b"hello world"
    with storage.get("a/b.bin", offset=6) as r:
        assert r.read() == b"world"


def test_writer_commits_on_close_and_aborts_on_exception(storage):
    with storage.put("w/ok") as w:
        w.write(b"x" * 1000)
        w.write(memoryview(b"yz"))
    assert storage.read("w/ok") == b"x" * 1000 + b"yz"
    with pytest.raises(RuntimeError):
        with storage.put("w/bad") as w:
            w.write(b"partial")
            raise RuntimeError("stop")
    assert not storage.exists("w/bad")


def test_uncollected_writer_is_aborted_not_committed(storage):
    w = storage.put("w/forgotten")
    w.write(b"half")
    del w
    assert not storage.exists("w/forgotten")
    assert list(storage.list("w/")) == []


def test_put_from_file_and_iterator(storage, tmp_path):
    data = os.urandom(3 << 20)
    storage.put("f/file", io.BytesIO(data))
    storage.put("f/iter", (data[i:i + 1000] for i in range(0, len(data), 1000)))
    assert storage.read("f/file") == data
    with storage.get("f/iter") as r:
        assert b"".join(r.chunks(65536)) == data


def test_exclusive_put_refuses_existing(storage):
    storage.put("x", b"1")
    with pytest.raises(backupop.AlreadyExists):
        storage.put("x", b"2", exclusive=True)
    assert storage.read("x") == b"1"


def test_list_and_remove(storage):
    for k in ("p/1", "p/2", "q/1"):
        storage.put(k, k.encode())
    assert [k for k, _ in storage.list("p/")] == ["p/1", "p/2"]
    assert all(isinstance(st, backupop.Stat) and st.size == 3 for _, st in storage.list())
    storage.remove("p/1")
    with pytest.raises(backupop.NotFound):
        storage.remove("p/1")
    storage.remove_many(["p/2", "q/1", "not/there"])
    assert list(storage.list()) == []


def test_get_missing_is_not_found(storage):
    with pytest.raises(backupop.NotFound):
        storage.get("missing")


def test_settings_are_passed(storage_dir):
    with pytest.raises(backupop.BackupopError):
        backupop.Storage.open("file://%s" % storage_dir, {"no-such-setting": "1"})
