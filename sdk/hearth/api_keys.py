"""API keys: generation, the lookup prefix and the stored hash.

A key is ``hk_`` followed by 43 base64url characters encoding 32 random bytes (256 bits),
so it cannot be guessed and a slow password hash (bcrypt, scrypt, argon2) would buy
nothing: those exist to slow down guessing of low-entropy secrets. Only
``sha256(salt || key)`` is stored, with a 16-byte random salt per key so that equal keys
(which never happen) or precomputed tables give nothing away, and the comparison is
constant time (``hmac.compare_digest``). The plaintext is shown once and never stored by
Hearth outside the Secret handed to the key's user.

The first :data:`PREFIX_LENGTH` characters are not secret: they are shown to users (like
Fireworks' ``prefix``) and let the gateway find the key's record without scanning.

Pure standard library: the gateway, the operator and hearthctl import it alike.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

#: What every Hearth key starts with (tells a leaked string apart from other tokens).
KEY_SCHEME = "hk_"
#: Random bytes behind each key.
KEY_BYTES = 32
#: Characters of the key shown as its ``prefix`` and used as the lookup index.
PREFIX_LENGTH = 12
#: Random bytes of each key's salt.
SALT_BYTES = 16
#: The hash algorithm, written in front of the hex digest.
HASH_SCHEME = "sha256"

#: A well-formed key: the scheme and 43 base64url characters (32 bytes, unpadded).
KEY_PATTERN = re.compile(r"^hk_[A-Za-z0-9_-]{43}$")


def generate_key() -> str:
    """A new random key: ``hk_`` + 32 random bytes in unpadded base64url (46 characters)."""
    return KEY_SCHEME + secrets.token_urlsafe(KEY_BYTES)


def is_well_formed(key: str) -> bool:
    """Whether ``key`` has the shape :func:`generate_key` produces (not whether it is valid)."""
    return KEY_PATTERN.fullmatch(key) is not None


def key_prefix(key: str) -> str:
    """The first :data:`PREFIX_LENGTH` characters: public, and the gateway's lookup index."""
    return key[:PREFIX_LENGTH]


def new_salt() -> str:
    """A fresh random salt, :data:`SALT_BYTES` bytes as lowercase hex."""
    return secrets.token_hex(SALT_BYTES)


def hash_key(key: str, salt: str) -> str:
    """``sha256:`` + hex of sha256(salt bytes + key UTF-8); ``salt`` is hex.

    Raises ValueError when ``salt`` is not hex.
    """
    try:
        salt_bytes = bytes.fromhex(salt)
    except ValueError:
        raise ValueError(f"salt must be hex, got {salt!r}") from None
    digest = hashlib.sha256(salt_bytes + key.encode("utf-8")).hexdigest()
    return f"{HASH_SCHEME}:{digest}"


def verify_key(key: str, salt: str, key_hash: str) -> bool:
    """Whether ``key`` hashes to ``key_hash`` with ``salt``, compared in constant time.

    A malformed salt or hash verifies nothing (False) rather than raising: a stored record
    that cannot be checked must not let anyone in.
    """
    try:
        expected = hash_key(key, salt)
    except ValueError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), key_hash.encode("utf-8"))
