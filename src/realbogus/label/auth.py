"""Passwords, session tokens, CSRF tokens and the login rate limit of the labelling service.

Passwords are hashed with argon2id (argon2-cffi defaults) and never stored or logged in clear.
A session is a random token in an HttpOnly, SameSite=Strict cookie; the database keeps only its
SHA-256. Each session has its own CSRF token, returned by the login and required in the
``X-CSRF-Token`` header of every write.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "LoginRateLimiter",
    "hash_password",
    "verify_password",
    "new_token",
    "token_hash",
    "tokens_match",
    "MIN_PASSWORD_LENGTH",
]

MIN_PASSWORD_LENGTH = 8
_HASHER = PasswordHasher()
# A real hash to verify against for unknown user names, so that both paths cost the same.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (which must have at least `MIN_PASSWORD_LENGTH` chars)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        msg = f"passwords need at least {MIN_PASSWORD_LENGTH} characters"
        raise ValueError(msg)
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if `password` matches `stored_hash`; an absent hash costs the same as a wrong one."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A fresh 256-bit URL-safe random token (sessions, CSRF)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The SHA-256 hex digest under which a session token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token with the header value."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


class LoginRateLimiter:
    """Failed logins allowed per key (user name, client address) in a sliding window.

    Parameters
    ----------
    max_failures : int
        Failures allowed within `window_s` before further attempts are refused.
    window_s : float
        Window length, seconds.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 60.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked(self, *keys: str) -> float:
        """Seconds until any of `keys` may try again (0 = allowed now)."""
        now = time.monotonic()
        with self._lock:
            wait = 0.0
            for key in keys:
                q = self._recent(key, now)
                if len(q) >= self.max_failures:
                    wait = max(wait, self.window_s - (now - q[0]))
            return wait

    def failed(self, *keys: str) -> None:
        """Record one failed attempt against each key."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        """Forget the failures of `keys` after a good login."""
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
