"""Who may use the dashboard: the host's token, the session cookie made from it, and the CSRF token.

The token is random per host (`secrets.token_urlsafe`, 256 bits), made at the dashboard's first start and kept in
a file only its owner may read (0600, under the run-state folder: /var/lib/deepracer/run/dashboard-token). Like
Jupyter's, it is handed over once in the URL (`/?token=...`); the page then swaps it for a cookie (HttpOnly,
SameSite=Strict) and drops it from the address bar. The cookie's value and the CSRF token are HMACs of the token,
so they last across restarts of the dashboard, need no server-side sessions, and change with the token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from session.core.errors import DeepracerError

COOKIE = "deepracer_dashboard"
CSRF_HEADER = "x-csrf-token"
QUERY = "token"


class AccessError(DeepracerError):
    """The token file cannot be read or written; `str()` is one line for the user."""


@dataclass(frozen=True)
class Keys:
    """The token and what is derived from it."""

    token: str

    def _derived(self, purpose: str) -> str:
        return hmac.new(self.token.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def session(self) -> str:
        """The cookie's value: proves the browser was given the token, without being the token."""
        return self._derived("session")

    @property
    def csrf(self) -> str:
        """Sent by the page's own script in CSRF_HEADER with every POST; a cross-site form cannot know it."""
        return self._derived("csrf")

    def token_matches(self, given: Optional[str]) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def session_matches(self, given: Optional[str]) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.session.encode())

    def csrf_matches(self, given: Optional[str]) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


def load_or_create(path: Path) -> tuple[Keys, bool]:
    """The host's keys from `path`, made (0600) when there is none; True when this call made it. The token is
    written whole to a file of its own, then linked into place: a second dashboard starting at once finds either
    no file or the first one's complete token, never a half-written one."""
    try:
        return Keys(_read(path)), False
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(token + "\n")
        try:
            os.link(draft, path)  # fails when it exists: the other one's token stands
        except FileExistsError:
            return Keys(_read(path)), False
    except OSError as error:
        raise AccessError(f"cannot write the dashboard's token to {path}: {error.strerror or error}; run it as the "
                          "user who trains (the run-state folder is theirs), or name another file in "
                          "DR_DASHBOARD_TOKEN_FILE") from error
    finally:
        draft.unlink(missing_ok=True)
    return Keys(token), True


def _read(path: Path) -> str:
    try:
        mode = path.stat().st_mode & 0o777
        token = path.read_text().strip()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise AccessError(f"cannot read the dashboard's token in {path}: {error.strerror or error}") from error
    if mode & 0o077:
        raise AccessError(f"{path} is readable by others (mode {mode:o}): `chmod 600 {path}`, or delete it and "
                          "start the dashboard again for a new token")
    if len(token) < 32:
        raise AccessError(f"{path} does not hold a dashboard token: delete it and start the dashboard again")
    return token
