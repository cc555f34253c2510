"""Errors: one class per bop_error_t code, carrying the library's message."""
import pytest

import backupop
from backupop import _lib


def test_every_code_has_its_class():
    names = {
        "BOP_ENOTFOUND": backupop.NotFound, "BOP_EEXISTS": backupop.AlreadyExists,
        "BOP_EINVAL": backupop.InvalidArgument, "BOP_EVERSION": backupop.VersionError,
        "BOP_ENOMEM": backupop.OutOfMemory, "BOP_EIO": backupop.IOFailure,
        "BOP_EAUTH": backupop.AuthError, "BOP_EINTEGRITY": backupop.IntegrityError,
        "BOP_ETIMEOUT": backupop.Timeout, "BOP_ECANCELED": backupop.Canceled,
        "BOP_ECONFLICT": backupop.Conflict, "BOP_ECHILD": backupop.ChildFailed,
        "BOP_ENOTSUPPORTED": backupop.NotSupported, "BOP_EFORMAT": backupop.FormatError,
        "BOP_ENOKEY": backupop.NoKey, "BOP_ECONNECT": backupop.ConnectError,
    }
    for name, cls in names.items():
        code = getattr(_lib, name)
        assert backupop.error_class(code) is cls, name
        assert issubclass(cls, backupop.BackupopError)
    assert backupop.error_class(_lib.BOP_ERROR) is backupop.BackupopError
    assert backupop.error_class(-9999) is backupop.BackupopError


def test_unknown_scheme_is_not_supported_with_the_c_message():
    with pytest.raises(backupop.NotSupported) as e:
        backupop.Storage.open("nosuch://x")
    assert e.value.code == _lib.BOP_ENOTSUPPORTED
    assert "nosuch" in str(e.value)


def test_missing_key_is_not_found_and_a_lookup_error(storage):
    with pytest.raises(backupop.NotFound) as e:
        storage.stat("no/such/key")
    assert isinstance(e.value, LookupError)
    assert e.value.message and e.value.message != "no error"


def test_bad_recipient_is_a_format_error():
    with pytest.raises(backupop.FormatError):
        backupop.Keys(recipients=["age1notarecipient"])


def test_bad_cron_field_is_invalid_argument_naming_the_field():
    with pytest.raises(backupop.InvalidArgument) as e:
        backupop.Schedule("61 * * * *")
    assert "minute" in str(e.value)
    assert isinstance(e.value, ValueError)
