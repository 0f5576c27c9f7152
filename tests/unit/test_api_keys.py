"""API keys: format, entropy, prefix, salted hash and constant-time verification."""

import base64
import hashlib

import pytest

from hearth import api_keys
from hearth.api_keys import (
    generate_key,
    hash_key,
    is_well_formed,
    key_prefix,
    new_salt,
    verify_key,
)


def test_key_format_is_scheme_and_43_base64url_chars():
    key = generate_key()
    assert key.startswith("hk_")
    assert len(key) == 46
    assert is_well_formed(key)
    body = key[3:]
    # 43 unpadded base64url characters decode to exactly 32 bytes.
    assert len(base64.urlsafe_b64decode(body + "=")) == 32


def test_keys_do_not_repeat_and_use_the_whole_alphabet():
    keys = {generate_key() for _ in range(2000)}
    assert len(keys) == 2000
    # 2000 * 43 characters drawn uniformly from 64 symbols: every symbol shows up.
    alphabet = {c for k in keys for c in k[3:]}
    assert len(alphabet) == 64


def test_prefix_is_the_first_twelve_characters():
    key = generate_key()
    prefix = key_prefix(key)
    assert len(prefix) == api_keys.PREFIX_LENGTH == 12
    assert prefix == key[:12]
    assert prefix.startswith("hk_")
    assert key_prefix("hk_AbC123xyzRest") == "hk_AbC123xyz"


def test_salt_is_sixteen_random_bytes_in_hex():
    salts = {new_salt() for _ in range(100)}
    assert len(salts) == 100
    for salt in salts:
        assert len(bytes.fromhex(salt)) == 16
        assert salt == salt.lower()


def test_hash_is_sha256_of_salt_then_key():
    salt = "00112233445566778899aabbccddeeff"
    key = "hk_" + "A" * 43
    expected = hashlib.sha256(bytes.fromhex(salt) + key.encode()).hexdigest()
    assert hash_key(key, salt) == f"sha256:{expected}"


def test_hash_verify_round_trip():
    key, salt = generate_key(), new_salt()
    assert verify_key(key, salt, hash_key(key, salt))


def test_wrong_key_is_refused():
    key, salt = generate_key(), new_salt()
    stored = hash_key(key, salt)
    assert not verify_key(generate_key(), salt, stored)
    # Same prefix, different tail: the prefix alone proves nothing.
    forged = key[:12] + ("B" if key[12] != "B" else "C") + key[13:]
    assert not verify_key(forged, salt, stored)
    assert not verify_key(key[:-1], salt, stored)
    assert not verify_key("", salt, stored)


def test_the_salt_matters():
    key = generate_key()
    salt, other = new_salt(), new_salt()
    assert hash_key(key, salt) != hash_key(key, other)
    assert not verify_key(key, other, hash_key(key, salt))


@pytest.mark.parametrize("stored", ["", "sha256:", "md5:abc", "sha256:zz", "not a hash"])
def test_malformed_stored_hash_verifies_nothing(stored):
    assert not verify_key(generate_key(), new_salt(), stored)


def test_malformed_salt_verifies_nothing_and_hash_names_it():
    key = generate_key()
    assert not verify_key(key, "not-hex", hash_key(key, new_salt()))
    with pytest.raises(ValueError, match="salt must be hex"):
        hash_key(key, "xyz")


@pytest.mark.parametrize(
    "key",
    ["", "hk_", "hk_" + "A" * 42, "hk_" + "A" * 44, "sk_" + "A" * 43, "hk_" + "A" * 42 + "="],
)
def test_malformed_keys_are_not_well_formed(key):
    assert not is_well_formed(key)
