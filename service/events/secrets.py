"""Webhook secrets: derived, never stored.

A webhook row keeps a random nonce; its secret is HMAC-SHA256(server key, nonce),
shown once at creation as `whsec_` + base64 (the Standard Webhooks form). The database
alone therefore reveals no secret (a stolen backup cannot forge signatures), and the
server can sign without ever holding secrets in plain form at rest. This beats a hash,
which could not sign, and needs no cipher: there is nothing to decrypt, only to
recompute. The server key is `HEARME_SECRET_KEY`, or else a random key generated once
into `HEARME_SECRET_KEY_FILE` (created atomically, mode 0600, so that every worker on
the machine uses the same one). Replicas on several machines must share the key
(set `HEARME_SECRET_KEY`): with another key, signatures would not verify.
"""

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from service.settings import Settings

PREFIX = "whsec_"
_LABEL = b"hearme webhook secret\x00"


def server_key(settings: Settings) -> bytes:
    if settings.secret_key:
        return hashlib.sha256(settings.secret_key.encode()).digest()
    path = Path(settings.secret_key_file).expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fresh.write_text(secrets.token_hex(32) + "\n")
        fresh.chmod(0o600)
        with contextlib.suppress(FileExistsError):  # another worker was first: use its key
            os.link(fresh, path)
        fresh.unlink()
    return bytes.fromhex(path.read_text().strip())


def new_nonce() -> str:
    return secrets.token_hex(16)


def webhook_secret(key: bytes, nonce: str) -> str:
    """The secret of a webhook, `whsec_` + base64 of 32 bytes."""
    raw = hmac.new(key, _LABEL + nonce.encode(), hashlib.sha256).digest()
    return PREFIX + base64.b64encode(raw).decode()
