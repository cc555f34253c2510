"""The library's log from Python: level, format, destination (fd, logging, callable), secrets."""
import json
import logging

import pytest

import backupop
from backupop import log as bop_log


@pytest.fixture(autouse=True)
def default_log():
    """Every test starts and ends with the library's defaults (the settings are global)."""
    backupop.log_to(None)
    backupop.set_log_level("info")
    backupop.set_log_format("auto")
    yield
    backupop.log_to(None)
    backupop.set_log_level("info")
    backupop.set_log_format("auto")


def test_lines_become_records_of_a_logger_by_component_and_level(catalog, caplog):
    caplog.set_level(logging.DEBUG - 5, logger="bop-test")
    backupop.log_to(logging.getLogger("bop-test"))
    m = catalog.backup(b"row\n" * 1000)
    backup_lines = [r for r in caplog.records
                    if r.name == "bop-test.catalog" and m.id in r.getMessage()]
    assert backup_lines, [r.getMessage() for r in caplog.records]
    assert backup_lines[0].levelno == logging.INFO
    assert "4000 bytes" in backup_lines[0].getMessage()


def test_level_drops_lines_below_it(catalog, caplog):
    caplog.set_level(logging.DEBUG - 5, logger="bop-test")
    backupop.log_to(logging.getLogger("bop-test"))
    backupop.set_log_level("warn")
    catalog.backup(b"quiet\n")
    assert [r for r in caplog.records if r.name.startswith("bop-test")] == []
    bop_log._log("warn", "test", "a warning passes")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == \
        [("bop-test.test", logging.WARNING, "a warning passes")]
    backupop.set_log_level("trace")
    bop_log._log("trace", "test", "trace too")
    assert caplog.records[-1].levelno == logging.DEBUG - 5


def test_off_silences_stderr(catalog, capfd):
    backupop.set_log_level("off")
    catalog.backup(b"nothing to say\n")
    assert capfd.readouterr().err == ""
    backupop.set_log_level("info")
    catalog.backup(b"now it speaks\n")
    assert "backup" in capfd.readouterr().err


def test_json_lines_to_a_file(catalog, tmp_path):
    path = tmp_path / "bop.log"
    with open(path, "w") as f:
        backupop.log_to(f)
        backupop.set_log_format("json")
        m = catalog.backup(b"x" * 100)
        backupop.log_to(None)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    mine = [o for o in lines if m.id in o["msg"]]
    assert mine and mine[0]["level"] == "info" and mine[0]["component"] == "catalog"


def test_callable_target_and_its_exceptions(catalog, capfd):
    got = []
    backupop.log_to(lambda level, comp, msg: got.append((level, comp, msg)))
    m = catalog.backup(b"y" * 10)
    assert any(lv == "info" and c == "catalog" and m.id in msg for lv, c, msg in got), got

    def broken(level, comp, msg):
        raise RuntimeError("log sink is broken")
    backupop.log_to(broken)
    m2 = catalog.backup(b"z" * 10)   # the backup does not fail because logging did
    assert catalog.get(m2.id).id == m2.id
    err = capfd.readouterr().err
    assert "a log target raised" in err and "log sink is broken" in err


def test_secrets_are_redacted_in_lines_and_errors(storage, caplog):
    caplog.set_level(logging.INFO, logger="bop-test")
    backupop.log_to(logging.getLogger("bop-test"))
    with pytest.raises(backupop.NotFound) as before:
        storage.stat("plain-key-name")
    assert "plain-key-name" in str(before.value)      # keys are named in errors...
    backupop.add_secret("s3cr3t-token-42")
    with pytest.raises(backupop.NotFound) as e:
        storage.stat("s3cr3t-token-42")
    assert "s3cr3t-token-42" not in str(e.value) and "[REDACTED]" in str(e.value)
    bop_log._log("info", "test", "token=s3cr3t-token-42 used")
    assert caplog.records[-1].getMessage() == "token=[REDACTED] used"
    with pytest.raises(backupop.InvalidArgument):
        backupop.add_secret("abc")


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(backupop.InvalidArgument, match="unknown log level 'loud'"):
        backupop.set_log_level("loud")
    with pytest.raises(backupop.InvalidArgument, match="unknown log format"):
        backupop.set_log_format("xml")
    with pytest.raises(TypeError, match="not float"):
        backupop.log_to(3.5)
