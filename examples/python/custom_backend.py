#!/usr/bin/python3
"""A storage backend written in Python: "dirjson://PATH" keeps each object as a file
under PATH and its metadata in a JSON index, and becomes usable by every part of the
library (here: a backup and a verified restore) once registered.

    custom_backend.py DIRECTORY
"""
import json
import os
import sys
import threading
import time

import backupop


class DirJsonStorage(backupop.StorageBackend):
    """Objects are files named by the hex of their key; index.json maps key -> mtime.
    A put is written to a temporary file and appears at commit."""

    lock = threading.Lock()

    def __init__(self, url, settings):
        super().__init__(url, settings)
        self.root = url[len("dirjson://"):]
        os.makedirs(self.root, exist_ok=True)
        self.index_path = os.path.join(self.root, "index.json")

    def _index(self):
        try:
            with open(self.index_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def _save(self, index):
        tmp = self.index_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(index, f)
        os.replace(tmp, self.index_path)

    def _file(self, key):
        return os.path.join(self.root, key.encode().hex())

    class Writer:
        def __init__(self, store, key):
            self.store, self.key = store, key
            self.tmp = store._file(key) + ".part"
            self.f = open(self.tmp, "wb")

        def write(self, b):
            self.f.write(b)

        def commit(self):
            self.f.close()
            with DirJsonStorage.lock:
                os.replace(self.tmp, self.store._file(self.key))
                index = self.store._index()
                index[self.key] = int(time.time())
                self.store._save(index)

        def abort(self):
            self.f.close()
            os.unlink(self.tmp)

    def put(self, key, size_hint, exclusive):
        if exclusive and key in self._index():
            raise backupop.AlreadyExists("%s exists" % key)
        return self.Writer(self, key)

    def get(self, key, offset):
        if key not in self._index():
            raise backupop.NotFound("no object %s" % key)
        f = open(self._file(key), "rb")
        f.seek(offset)
        return f

    def stat(self, key):
        index = self._index()
        if key not in index:
            raise backupop.NotFound("no object %s" % key)
        return os.path.getsize(self._file(key)), index[key]

    def list(self, prefix):
        for key, mtime in sorted(self._index().items()):
            if key.startswith(prefix):
                yield key, (os.path.getsize(self._file(key)), mtime)

    def remove(self, key):
        with DirJsonStorage.lock:
            index = self._index()
            if index.pop(key, None) is None:
                raise backupop.NotFound("no object %s" % key)
            os.unlink(self._file(key))
            self._save(index)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    backupop.register_storage("dirjson", DirJsonStorage)
    pair = backupop.keygen()
    data = os.urandom(1 << 20)
    with backupop.Catalog("dirjson://" + sys.argv[1], "demo") as cat:
        m = cat.backup(data, recipients=pair, tags=["example"])
        print("backup %s: %d bytes, %d stored" % (m.id, m.plain_bytes, m.stored_bytes))
        cat.verify(m.id, identities=pair)
        if cat.restore(m.id, identities=pair) != data:
            print("restored data differs", file=sys.stderr)
            return 1
        print("verified and restored through dirjson://")
    return 0


if __name__ == "__main__":
    sys.exit(main())
