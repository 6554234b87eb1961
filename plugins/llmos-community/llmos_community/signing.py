"""ed25519 keys, canonical digests and signatures.

- Private keys live in ``$LLMOS_HOME/keys/<handle>.key`` (PKCS#8 PEM, mode 0600), never
  in the index; the index holds only public keys (raw 32 bytes, base64).
- A digest is ``sha256:`` + the hex SHA-256 of canonical JSON (sorted keys, no
  whitespace, UTF-8) of the parsed manifests, so reformatting a TOML file does not
  change it but any change of a value does.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from llmos.sdk import NotFoundError, ValidationError

#: fields of a version manifest that may change after release (a yank can be undone)
MUTABLE_VERSION_FIELDS = ("yanked", "yanked_reason")


def _default(obj: Any) -> Any:
    if isinstance(obj, (dt.date, dt.datetime, dt.time)):
        return obj.isoformat()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default).encode()


def digest(obj: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(obj)).hexdigest()


def frozen_version(raw: dict[str, Any]) -> dict[str, Any]:
    """A version manifest without the fields that may change after release."""
    return {k: v for k, v in raw.items() if k not in MUTABLE_VERSION_FIELDS}


def plugin_digest(name: str, plugin_raw: dict[str, Any], versions_raw: dict[str, dict[str, Any]],
                  description_sha256: str | None) -> str:
    """Digest of a plugin entry: its manifest, its description file and the
    (frozen) manifests of the versions in ``versions_raw``."""
    return digest({
        "name": name,
        "plugin": plugin_raw,
        "description_sha256": description_sha256,
        "versions": {v: frozen_version(r) for v, r in versions_raw.items()},
    })


def version_digest(name: str, version_raw: dict[str, Any]) -> str:
    """Digest of one release of plugin ``name``."""
    return digest({"name": name, "version": frozen_version(version_raw)})


def maintainers_digest(maintainers_raw: dict[str, Any]) -> str:
    """Digest of ``maintainers.toml`` (what a core maintainer approves when it changes)."""
    return digest({"maintainers": maintainers_raw})


#: the ``plugin`` and ``subject`` a signed approval of maintainers.toml names
MAINTAINERS_SUBJECT = ("maintainers.toml", "maintainers")


def review_message(plugin: str, subject: str, decision: str, digest_: str, reason: str, handle: str) -> bytes:
    """The bytes a review signature covers."""
    return canonical_json({
        "llmos-review": 1, "plugin": plugin, "subject": subject, "decision": decision,
        "digest": digest_, "reason": reason, "handle": handle,
    })


# -- keys ----------------------------------------------------------------------------


def keys_dir() -> Path:
    from llmos.sdk import home

    return home() / "keys"


def key_path(handle: str) -> Path:
    return keys_dir() / f"{handle}.key"


def generate_key(handle: str, *, force: bool = False) -> str:
    """Create ``$LLMOS_HOME/keys/<handle>.key`` (0600); return the public key (base64)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = key_path(handle)
    if path.exists() and not force:
        raise ValidationError(
            f"a key for {handle!r} already exists at {path}; use it, or pass --force to replace it "
            "(the index still lists the old public key)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_suffix(".key.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, path)
    pub = public_key_of(key)
    (keys_dir() / f"{handle}.pub").write_text(pub + "\n")
    return pub


def load_private_key(handle: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    path = key_path(handle)
    if not path.exists():
        raise NotFoundError(f"no private key for {handle!r} at {path}: run `llmos contrib keygen --handle {handle}`")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ValidationError(f"{path} is readable by others (mode {mode:o}): run chmod 600 {path}")
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def public_key_of(private_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign(private_key: Any, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message)).decode()


def parse_public_key(public_key_b64: str) -> Any:
    """The ed25519 public key, or raise :class:`ValidationError` saying why not."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = base64.b64decode(public_key_b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except Exception as exc:  # noqa: BLE001 - binascii.Error, ValueError
        raise ValidationError(f"not an ed25519 public key (32 bytes, base64): {public_key_b64[:20]!r}") from exc


def verify(public_key_b64: str, message: bytes, signature_b64: str) -> bool:
    """True when ``signature_b64`` is a valid signature of ``message`` by the key."""
    from cryptography.exceptions import InvalidSignature

    try:
        key = parse_public_key(public_key_b64)
        key.verify(base64.b64decode(signature_b64, validate=True), message)
        return True
    except (InvalidSignature, ValidationError, ValueError):
        return False
