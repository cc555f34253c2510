"""Shared fixtures: a real file:// storage in a temporary directory, and a catalog in it."""
import pytest

backupop = pytest.importorskip("backupop", reason="the backupop module is not built")


@pytest.fixture
def storage_dir(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    return d


@pytest.fixture
def storage(storage_dir):
    with backupop.Storage.open("file://%s" % storage_dir) as s:
        yield s


@pytest.fixture
def catalog(storage):
    with backupop.Catalog(storage, "db") as c:
        yield c
