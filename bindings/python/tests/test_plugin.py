"""A storage backend written in Python, registered for a URL scheme and used by real
backups and restores through the library."""
import gc
import hashlib
import os
import threading

import pytest

import backupop


class MemoryStorage(backupop.StorageBackend):
    """Objects in a dict shared by every storage of the same URL; a put becomes visible
    only at commit."""

    buckets = {}
    closed = 0
    lock = threading.Lock()

    def __init__(self, url, settings):
        super().__init__(url, settings)
        if settings.get("fail-open"):
            raise backupop.AuthError("the test refused the credentials")
        self.objects = self.buckets.setdefault(url, {})

    class Writer:
        def __init__(self, store, key):
            self.store, self.key, self.parts = store, key, []

        def write(self, b):
            self.parts.append(bytes(b))

        def commit(self):
            with MemoryStorage.lock:
                self.store.objects[self.key] = (b"".join(self.parts), 1700000000)

        def abort(self):
            self.parts = None

    def put(self, key, size_hint, exclusive):
        if exclusive and key in self.objects:
            raise backupop.AlreadyExists("%s exists" % key)
        return self.Writer(self, key)

    def get(self, key, offset):
        if key not in self.objects:
            raise backupop.NotFound("no object %s" % key)
        return self.objects[key][0][offset:]

    def stat(self, key):
        if key not in self.objects:
            raise backupop.NotFound("no object %s" % key)
        data, mtime = self.objects[key]
        return len(data), mtime

    def list(self, prefix):
        with MemoryStorage.lock:
            items = [(k, (len(v[0]), v[1])) for k, v in self.objects.items()
                     if k.startswith(prefix)]
        return items

    def remove(self, key):
        if self.objects.pop(key, None) is None:
            raise KeyError(key)

    def close(self):
        MemoryStorage.closed += 1


@pytest.fixture(scope="module", autouse=True)
def registered():
    backupop.register_storage("pymem", MemoryStorage)


def test_register_twice_is_already_exists():
    with pytest.raises(backupop.AlreadyExists):
        backupop.register_storage("pymem", MemoryStorage)


def test_storage_calls_reach_the_python_backend():
    s = backupop.Storage.open("pymem://one")
    s.put("a/b", b"hello")
    assert MemoryStorage.buckets["pymem://one"]["a/b"][0] == b"hello"
    assert s.stat("a/b") == backupop.Stat(5, 1700000000)
    assert s.read("a/b") == b"hello"
    with s.get("a/b", offset=2) as r:
        assert r.read() == b"llo"
    assert [k for k, _ in s.list("a/")] == ["a/b"]
    with pytest.raises(backupop.NotFound, match="no object x"):
        s.stat("x")
    with pytest.raises(backupop.AlreadyExists):
        s.put("a/b", b"2", exclusive=True)
    s.remove("a/b")
    with pytest.raises(backupop.NotFound):
        s.remove("a/b")


def test_uncommitted_put_is_aborted_and_invisible():
    s = backupop.Storage.open("pymem://two")
    with pytest.raises(RuntimeError):
        with s.put("k") as w:
            w.write(b"x")
            raise RuntimeError("stop")
    assert "k" not in MemoryStorage.buckets["pymem://two"]


def test_open_failure_carries_the_backend_error():
    with pytest.raises(backupop.AuthError, match="refused the credentials"):
        backupop.Storage.open("pymem://three", {"fail-open": "1"})


def test_encrypted_backup_and_restore_through_a_python_backend():
    pair = backupop.keygen()
    data = os.urandom(3 << 20)
    with backupop.Catalog("pymem://four", "db") as cat:
        m = cat.backup(data, recipients=pair, tags=["py"])
        objects = MemoryStorage.buckets["pymem://four"]
        assert m.object_key in objects and "db/%s/manifest.json" % m.id in objects
        assert hashlib.sha256(objects[m.object_key][0]).hexdigest() == m.stored_sha256
        assert [x.id for x in cat.list()] == [m.id]
        assert cat.verify(m.id, identities=pair).id == m.id
        assert cat.restore(m.id, identities=pair) == data
        cat.remove(m.id)
        assert cat.list() == []


def test_backend_is_closed_when_the_library_frees_it():
    before = MemoryStorage.closed
    s = backupop.Storage.open("pymem://five")
    c = backupop.Catalog(s, "db")
    s.close()
    assert MemoryStorage.closed == before       # the catalog still holds it
    c.close()
    del s, c
    gc.collect()
    assert MemoryStorage.closed == before + 1
    from backupop import plugin
    assert not any(isinstance(v[2], MemoryStorage) and v[2].url == "pymem://five"
                   for v in plugin._live.values())
