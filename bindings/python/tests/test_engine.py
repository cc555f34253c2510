"""An engine written in Python, registered by name and used by real backups and restores
through the library."""
import os

import pytest

import backupop


class FileEngine(backupop.EngineBackend):
    """Backs up one file; restores it atomically (temporary file, renamed at commit)."""

    def __init__(self, config):
        super().__init__(config)
        if "path" not in config:
            raise backupop.InvalidArgument("config: \"path\" is required")
        self.path = config["path"]

    def validate(self):
        if not os.path.isdir(os.path.dirname(self.path) or "."):
            raise backupop.NotFound("no directory for %s" % self.path)

    def backup(self):
        return open(self.path, "rb")

    class Writer:
        def __init__(self, path):
            self.path, self.tmp = path, path + ".restoring"
            self.f = open(self.tmp, "wb")

        def write(self, b):
            self.f.write(b)

        def commit(self):
            self.f.close()
            os.replace(self.tmp, self.path)

        def abort(self):
            self.f.close()
            os.unlink(self.tmp)

    def restore(self):
        return self.Writer(self.path)


@pytest.fixture(scope="module", autouse=True)
def registered():
    backupop.register_engine("pyfile", FileEngine)


def test_backup_and_restore_through_a_python_engine(catalog, tmp_path):
    data = os.urandom(2 << 20)
    path = tmp_path / "db.bin"
    path.write_bytes(data)
    pair = backupop.keygen()
    with backupop.Engine("pyfile", {"path": str(path)}) as eng:
        eng.validate()
        m = catalog.backup(eng, recipients=pair)
    assert m.engine == "pyfile" and m.plain_bytes == len(data)
    path.write_bytes(b"damaged")
    with backupop.Engine("pyfile", {"path": str(path)}) as eng:
        catalog.restore(m.id, to=eng, identities=pair)
    assert path.read_bytes() == data
    assert not (tmp_path / "db.bin.restoring").exists()


def test_failed_restore_aborts_the_engine_sink(catalog, tmp_path, storage_dir):
    path = tmp_path / "db.bin"
    path.write_bytes(b"original" * 10000)
    with backupop.Engine("pyfile", {"path": str(path)}) as eng:
        m = catalog.backup(eng, compression="none")
    obj = storage_dir / m.object_key
    raw = bytearray(obj.read_bytes())
    raw[100] ^= 1
    obj.write_bytes(bytes(raw))
    path.write_bytes(b"current")
    with backupop.Engine("pyfile", {"path": str(path)}) as eng:
        with pytest.raises(backupop.IntegrityError):
            catalog.restore(m.id, to=eng)
    assert path.read_bytes() == b"current"
    assert not (tmp_path / "db.bin.restoring").exists()


def test_engine_config_errors_reach_the_caller():
    with pytest.raises(backupop.InvalidArgument, match="path"):
        backupop.Engine("pyfile", {})
    with pytest.raises(backupop.InvalidArgument):
        backupop.Engine("pyfile", "{not json")
    with pytest.raises(backupop.NotFound):
        backupop.Engine("no-such-engine", {})
    with backupop.Engine("pyfile", {"path": "/no/such/dir/x"}) as eng:
        with pytest.raises(backupop.NotFound, match="no directory"):
            eng.validate()
