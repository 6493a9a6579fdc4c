"""Bearer authentication for every protected route, with in-memory caches so the hot path stays cheap.

Caches are per process: the hub runs as one process (see docs/central-hub.md), so a revocation through
the admin API drops the key from the cache at once.
"""

import asyncio
import time
from typing import Any

import jwt

from leadmaster.central_hub import errors
from leadmaster.central_hub.auth.principal import Principal, Role
from leadmaster.central_hub.auth.secrets import API_KEY_PREFIX, hash_api_key, verify_password
from leadmaster.central_hub.db import repo
from leadmaster.central_hub.db.models import User
from leadmaster.central_hub.db.session import Database

_TOKEN_CACHE_MAX = 10_000
_ALGORITHM = "HS256"


class Authenticator:
    def __init__(self, db: Database, secret: str, token_lifetime: int) -> None:
        self.db = db
        self.secret = secret
        self.token_lifetime = token_lifetime
        self._keys: dict[str, Principal] = {}  # sha256 of the API key → its principal
        self._tokens: dict[str, tuple[Principal, float]] = {}  # JWT → (principal, expiry)

    def issue_token(self, user: User) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "sub": str(user.id), "name": user.username, "role": user.role, "cid": user.cliente_id,
            "iat": now, "exp": now + self.token_lifetime, "typ": "access",
        }
        token = jwt.encode(claims, self.secret, algorithm=_ALGORITHM)
        return {"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime}

    async def login(self, username: str, password: str) -> dict[str, Any]:
        user = await self.db.run(lambda s: repo.user_by_name(s, username))
        # argon2 costs tens of ms: keep it off the event loop.
        ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
        if user is None or not ok:
            raise errors.InvalidCredentialsError("Wrong username or password.")
        return self.issue_token(user)

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or authorization[:7].lower() != "bearer ":
            raise errors.UnauthorizedError("Missing credentials: send 'Authorization: Bearer <token or API key>'.")
        credential = authorization[7:].strip()
        if credential.startswith(API_KEY_PREFIX):
            return await self._from_api_key(credential)
        return self._from_token(credential)

    def _from_token(self, token: str) -> Principal:
        cached = self._tokens.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub", "role"]}
            )
        except jwt.ExpiredSignatureError:
            raise errors.UnauthorizedError("The token has expired: log in again.") from None
        except jwt.PyJWTError:
            raise errors.UnauthorizedError("Invalid token.") from None
        role: Role = "admin" if claims["role"] == "admin" else "user"
        cid = claims.get("cid")
        principal = Principal("user", int(claims["sub"]), str(claims.get("name")), role,
                              cid if isinstance(cid, int) else None)
        if len(self._tokens) >= _TOKEN_CACHE_MAX:
            self._tokens.clear()
        self._tokens[token] = (principal, float(claims["exp"]))
        return principal

    async def _from_api_key(self, key: str) -> Principal:
        digest = hash_api_key(key)
        principal = self._keys.get(digest)
        if principal is not None:
            return principal
        row = await self.db.run(lambda s: repo.api_key_by_hash(s, digest))
        if row is None:
            raise errors.UnauthorizedError("Unknown or revoked API key.")
        role: Role = "admin" if row.role == "admin" else "user"
        principal = Principal("api_key", row.id, f"api-key:{row.prefix}", role, row.cliente_id)
        self._keys[digest] = principal
        return principal

    def forget_key(self, key_hash: str) -> None:
        """Drop a revoked key from the cache: its next use is refused."""
        self._keys.pop(key_hash, None)

