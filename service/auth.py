"""API keys with scopes (docs/architecture.md §7): hashed at rest, compared in constant time.

A key is presented in the `X-API-Key` header. Settings hold only sha256 hex digests. `admin`
implies every scope. A missing or unknown key is a 401, a known key without the scope a 403.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader

from service import messages
from service.scopes import ADMIN

API_KEY_HEADER = "X-API-Key"
_CHALLENGE = {"WWW-Authenticate": "ApiKey"}  # the 401's header

_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="An API key with the route's scope.")


def hash_key(key: str) -> str:
    """The form in which settings store a key."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyAuth:
    """Looks up the scopes of a presented key among the stored digests."""

    def __init__(self, hashed_keys: Mapping[str, list[str]], enabled: bool) -> None:
        self.enabled = enabled
        self._keys = [(digest.encode(), frozenset(scopes)) for digest, scopes in hashed_keys.items()]

    def scopes_of(self, key: str) -> frozenset[str] | None:
        """Scopes of `key`, None when unknown. Compares against every digest so timing reveals nothing."""
        presented = hash_key(key).encode()
        found: frozenset[str] | None = None
        for digest, scopes in self._keys:
            if hmac.compare_digest(presented, digest):
                found = scopes
        return found

    def check(self, key: str | None, scope: str) -> None:
        if not self.enabled:
            return
        if not key:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, messages.missing_api_key(API_KEY_HEADER),
                                headers=_CHALLENGE)
        scopes = self.scopes_of(key)
        if scopes is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, messages.UNKNOWN_API_KEY, headers=_CHALLENGE)
        if scope not in scopes and ADMIN not in scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, messages.lacks_scope(scope))


def require_scope(scope: str) -> Callable[..., Awaitable[None]]:
    """A route dependency that lets a request through only with a key holding `scope` (or admin)."""

    async def dependency(request: Request, key: Annotated[str | None, Depends(_api_key_header)]) -> None:
        auth: ApiKeyAuth = request.app.state.auth
        auth.check(key, scope)

    dependency.required_scope = scope  # type: ignore[attr-defined]  # read by tests and docs
    return dependency
