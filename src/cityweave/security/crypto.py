"""Encryption of personal data at rest, and keyed hashes for searching it.

Ciphertext layout (bytes): ``version(1) | cipher(1) | key_id(4) | nonce(12) | ciphertext+tag``.
The cipher byte lets a database hold values written with AES-256-GCM and SM4-GCM side by side,
and the key id lets an old key decrypt while a new one encrypts (rotation).
Each value is bound to its column through the GCM associated data, so a ciphertext copied from
``persons.phone`` into ``persons.name`` fails to decrypt instead of showing the wrong field.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = 1
_AES_GCM = 1
_SM4_GCM = 2
_CIPHER_IDS = {"AES-256-GCM": _AES_GCM, "SM4-GCM": _SM4_GCM}
_NONCE = 12
_TAG = 16


class MasterKeyError(Exception):
    """The master key is missing or malformed."""


class DecryptionError(Exception):
    """A stored value could not be decrypted (wrong key, tampered, or wrong column)."""


def _derive(master: bytes, purpose: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose).derive(master)


class FieldCipher:
    """Encrypts and decrypts single field values; computes keyed hashes for lookups."""

    def __init__(self, master_key: bytes, cipher: str = "AES-256-GCM") -> None:
        if len(master_key) != 32:
            raise MasterKeyError("the master key must be 32 bytes")
        if cipher not in _CIPHER_IDS:
            raise MasterKeyError(f"unknown cipher {cipher!r}; choose AES-256-GCM or SM4-GCM")
        self.cipher_id = _CIPHER_IDS[cipher]
        self.key_id = hashlib.sha256(b"cityweave-key-id" + master_key).digest()[:4]
        self._aes_key = _derive(master_key, b"cityweave pii aes-256-gcm", 32)
        self._sm4_key = _derive(master_key, b"cityweave pii sm4-gcm", 16)
        self._index_key = _derive(master_key, b"cityweave blind index", 32)

    # -- encryption -----------------------------------------------------------------------------
    def encrypt(self, plaintext: str, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        aad = context.encode()
        data = plaintext.encode("utf-8")
        if self.cipher_id == _AES_GCM:
            sealed = AESGCM(self._aes_key).encrypt(nonce, data, aad)
        else:
            enc = Cipher(algorithms.SM4(self._sm4_key), modes.GCM(nonce)).encryptor()
            enc.authenticate_additional_data(aad)
            sealed = enc.update(data) + enc.finalize() + enc.tag
        return bytes([_VERSION, self.cipher_id]) + self.key_id + nonce + sealed

    def decrypt(self, blob: bytes, context: str) -> str:
        if len(blob) < 2 + 4 + _NONCE + _TAG or blob[0] != _VERSION:
            raise DecryptionError("not a CityWeave ciphertext")
        cipher_id, key_id = blob[1], blob[2:6]
        if key_id != self.key_id:
            raise DecryptionError("value was encrypted with another key")
        nonce, sealed = blob[6 : 6 + _NONCE], blob[6 + _NONCE :]
        aad = context.encode()
        try:
            if cipher_id == _AES_GCM:
                data = AESGCM(self._aes_key).decrypt(nonce, sealed, aad)
            elif cipher_id == _SM4_GCM:
                dec = Cipher(
                    algorithms.SM4(self._sm4_key), modes.GCM(nonce, sealed[-_TAG:])
                ).decryptor()
                dec.authenticate_additional_data(aad)
                data = dec.update(sealed[:-_TAG]) + dec.finalize()
            else:
                raise DecryptionError(f"unknown cipher id {cipher_id}")
        except InvalidTag as exc:
            raise DecryptionError("authentication failed: wrong key, column or tampered") from exc
        return data.decode("utf-8")

    def encrypt_optional(self, plaintext: str | None, context: str) -> bytes | None:
        return None if plaintext is None else self.encrypt(plaintext, context)

    def decrypt_optional(self, blob: bytes | None, context: str) -> str | None:
        return None if blob is None else self.decrypt(blob, context)

    # -- keyed hashes ---------------------------------------------------------------------------
    def blind_index(self, value: str, context: str) -> str:
        """HMAC-SHA256 of a normalised value: equal inputs match, the hash reveals nothing."""
        message = context.encode() + b"\x00" + value.encode("utf-8")
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()


# -- master key handling --------------------------------------------------------------------------
def generate_master_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def decode_master_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise MasterKeyError("the master key is not valid base64") from exc
    if len(key) != 32:
        raise MasterKeyError(f"the master key must decode to 32 bytes, got {len(key)}")
    return key


def load_master_key(
    *, env_value: str | None, key_file: Path | None, data_dir: Path, production: bool
) -> bytes:
    """Find the key: env var, then key file, then (outside production) one made in the data folder.

    In production the key must come from outside: a key generated next to the database would
    protect nothing, since whoever copies the folder copies the key too.
    """
    if env_value:
        return decode_master_key(env_value)
    if key_file:
        if not key_file.exists():
            raise MasterKeyError(f"key file {key_file} does not exist")
        return decode_master_key(key_file.read_text())
    if production:
        raise MasterKeyError(
            "production mode needs a master key: set CITYWEAVE_SECRET_KEY or "
            "CITYWEAVE_SECRET_KEY_FILE (create one with `cityweave keygen`)"
        )
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_master_key() + "\n")
    return decode_master_key(path.read_text())
