"""age keys: new identities, recipients, and the key sets backups are encrypted to and
restored with."""
from __future__ import annotations

import os
from typing import Iterable, NamedTuple, Optional, Union

from ._backupop import ffi, lib
from ._errors import check, take_string

PathLike = Union[str, "os.PathLike[str]"]


class KeyPair(NamedTuple):
    """A new X25519 identity. ``identity`` is the identity file text as age-keygen writes
    it (comments and the AGE-SECRET-KEY-1... line); ``recipient`` is its "age1..."
    recipient. Keep ``identity`` secret."""

    identity: str
    recipient: str

    def __repr__(self) -> str:
        return "KeyPair(identity=<secret>, recipient=%r)" % self.recipient


def keygen() -> KeyPair:
    """Makes a new X25519 identity, as ``age-keygen`` does."""
    ident = ffi.new("char **")
    recip = ffi.new("char **")
    check(lib.bop_age_keygen(ident, recip))
    return KeyPair(take_string(ident[0]), take_string(recip[0]))


def identity_to_recipient(identity: str) -> str:
    """The "age1..." recipient of an "AGE-SECRET-KEY-1..." identity (or of the first
    identity in identity file text)."""
    line = _identity_lines(identity)
    out = ffi.new("char **")
    check(lib.bop_age_identity_to_recipient(out, (line[0] if line else "").encode()))
    return take_string(out[0])


def _identity_lines(text: str) -> list:
    return [ln.strip() for ln in text.splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


class Keys:
    """The recipients a backup is encrypted to, and the identities or passphrase it is
    decrypted with (a bop_keys_t). Key material is wiped when the object is closed or
    collected, and never logged.

    >>> pair = keygen()
    >>> Keys(recipients=[pair.recipient])          # to encrypt
    >>> Keys(identities=[pair.identity])           # to decrypt (and to encrypt)
    >>> Keys(passphrase="correct horse")           # scrypt, alone
    """

    def __init__(self, recipients: Iterable[str] = (), identities: Iterable[str] = (),
                 passphrase: Optional[Union[str, bytes]] = None, *,
                 recipients_files: Iterable[PathLike] = (),
                 identity_files: Iterable[PathLike] = (),
                 scrypt_work_factor: Optional[int] = None) -> None:
        p = ffi.new("bop_keys_t **")
        check(lib.bop_keys_new(p))
        self._ptr = ffi.gc(p[0], lib.bop_keys_free)
        if isinstance(recipients, str):
            recipients = [recipients]
        if isinstance(identities, str):
            identities = [identities]
        for r in recipients:
            self.add_recipient(r)
        for i in identities:
            self.add_identity(i)
        for path in recipients_files:
            self.add_recipients_file(path)
        for path in identity_files:
            self.add_identity_file(path)
        if scrypt_work_factor is not None:
            check(lib.bop_keys_set_scrypt_work_factor(self._ptr, scrypt_work_factor))
        if passphrase is not None:
            self.set_passphrase(passphrase)

    def add_recipient(self, recipient: str) -> "Keys":
        """Adds an "age1..." recipient (FormatError if it is not one)."""
        check(lib.bop_keys_add_recipient(self._ptr, recipient.strip().encode()))
        return self

    def add_recipients_file(self, path: PathLike) -> "Keys":
        """Adds every recipient of a recipients file (one a line, '#' comments)."""
        check(lib.bop_keys_add_recipients_file(self._ptr, os.fsencode(path)))
        return self

    def add_identity(self, identity: str) -> "Keys":
        """Adds an "AGE-SECRET-KEY-1..." identity, or every identity of identity file text
        such as KeyPair.identity. An identity also counts as a recipient."""
        lines = _identity_lines(identity)
        if not lines:
            lines = [identity]
        for line in lines:
            check(lib.bop_keys_add_identity(self._ptr, line.encode()))
        return self

    def add_identity_file(self, path: PathLike) -> "Keys":
        """Adds every identity of an identity file as written by age-keygen."""
        check(lib.bop_keys_add_identity_file(self._ptr, os.fsencode(path)))
        return self

    def set_passphrase(self, passphrase: Union[str, bytes]) -> "Keys":
        """Sets the scrypt passphrase (a file encrypted with one has no other recipient)."""
        data = passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)
        check(lib.bop_keys_set_passphrase(self._ptr, data, len(data)))
        return self

    def __len__(self) -> int:
        """How many recipients encryption would use."""
        return int(lib.bop_keys_recipient_count(self._ptr))

    def close(self) -> None:
        """Wipes and frees the key material now."""
        if self._ptr is not None:
            ffi.release(self._ptr)
            self._ptr = None

    def __enter__(self) -> "Keys":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<backupop.Keys: %d recipients>" % len(self) if self._ptr else "<Keys closed>"
