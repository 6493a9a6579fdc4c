"""Bearer authentication for every protected route, with in-memory caches so the hot path stays cheap.

A JWT names its user and the user's `credentials_version` at issue time; every request checks both against
the user's current row (cached), so a deleted user, a demotion or a new password refuses older tokens, and
a token acts with the user's current role and cliente. The caches (API keys, users) are kept true to the
database by `CacheCoherence` (see coherence.py: LISTEN/NOTIFY across processes on PostgreSQL).
"""

import time
from dataclasses import dataclass
from typing import Any

import jwt

from leadmaster.central_hub import errors
from leadmaster.central_hub.auth import login_limit
from leadmaster.central_hub.auth.coherence import CacheCoherence
from leadmaster.central_hub.auth.hashing import PasswordHasher
from leadmaster.central_hub.auth.principal import Principal, Role
from leadmaster.central_hub.auth.secrets import API_KEY_PREFIX, hash_api_key
from leadmaster.central_hub.db import repo
from leadmaster.central_hub.db.models import User
from leadmaster.central_hub.db.session import Database

_TOKEN_CACHE_MAX = 10_000
_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class _Claims:
    user_id: int
    version: int
    expires: float


class Authenticator:
    def __init__(self, db: Database, secret: str, token_lifetime: int,
                 coherence: CacheCoherence | None = None, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.secret = secret
        self.token_lifetime = token_lifetime
        self.coherence = coherence or CacheCoherence()
        self.hasher = hasher or PasswordHasher()
        self._keys: dict[str, Principal] = {}  # sha256 of the API key → its principal
        self._tokens: dict[str, _Claims] = {}  # JWT → its verified claims (signature checks cost µs)
        self._users: dict[int, tuple[int, Principal] | None] = {}  # user id → (version, principal) or deleted
        self.coherence.register(self._keys.clear)
        self.coherence.register(self._users.clear)

    def issue_token(self, user: User) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "sub": str(user.id), "name": user.username, "role": user.role, "cid": user.cliente_id,
            "ver": user.credentials_version or 0, "iat": now, "exp": now + self.token_lifetime, "typ": "access",
        }
        token = jwt.encode(claims, self.secret, algorithm=_ALGORITHM)
        return {"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime}

    async def login(self, username: str, password: str) -> dict[str, Any]:
        def begin(s: Any) -> User | None:
            login_limit.begin_attempt(s, username)
            return repo.user_by_name(s, username)

        user = await self.db.run(begin)
        # argon2 costs tens of ms: on its own pool, off the event loop and off the database threads.
        ok = await self.hasher.verify(user.password_hash if user else None, password)
        if user is None or not ok:
            raise errors.InvalidCredentialsError("Wrong username or password.")
        await self.db.run(lambda s: login_limit.succeeded(s, username))
        return self.issue_token(user)

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or authorization[:7].lower() != "bearer ":
            raise errors.UnauthorizedError("Missing credentials: send 'Authorization: Bearer <token or API key>'.")
        credential = authorization[7:].strip()
        if credential.startswith(API_KEY_PREFIX):
            return await self._from_api_key(credential)
        return await self._from_token(credential)

    def _claims(self, token: str) -> _Claims:
        cached = self._tokens.get(token)
        if cached is not None and cached.expires > time.time():
            return cached
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub", "role"]}
            )
            ver = claims.get("ver", 0)
            parsed = _Claims(int(claims["sub"]), ver if isinstance(ver, int) else -1, float(claims["exp"]))
        except jwt.ExpiredSignatureError:
            raise errors.UnauthorizedError("The token has expired: log in again.") from None
        except (jwt.PyJWTError, ValueError):
            raise errors.UnauthorizedError("Invalid token.") from None
        if len(self._tokens) >= _TOKEN_CACHE_MAX:
            self._tokens.clear()
        self._tokens[token] = parsed
        return parsed

    async def _from_token(self, token: str) -> Principal:
        claims = self._claims(token)
        state = await self._user(claims.user_id)
        if state is None:
            raise errors.UnauthorizedError("This token's user no longer exists.")
        version, principal = state
        if version != claims.version:
            raise errors.UnauthorizedError("This user's credentials changed since the token was issued: log in again.")
        return principal

    async def _user(self, user_id: int) -> tuple[int, Principal] | None:
        if user_id in self._users and self.coherence.trusted:
            return self._users[user_id]
        generation = self.coherence.generation
        row = await self.db.run(lambda s: s.get(User, user_id)) if 0 < user_id < 2**31 else None
        state = None
        if row is not None:
            role: Role = "admin" if row.role == "admin" else "user"
            state = (row.credentials_version or 0, Principal("user", row.id, row.username, role, row.cliente_id))
        if self.coherence.may_store(generation):
            self._users[user_id] = state
        return state

    async def _from_api_key(self, key: str) -> Principal:
        digest = hash_api_key(key)
        principal = self._keys.get(digest)
        if principal is not None and self.coherence.trusted:
            return principal
        generation = self.coherence.generation
        row = await self.db.run(lambda s: repo.api_key_by_hash(s, digest))
        if row is None:
            raise errors.UnauthorizedError("Unknown or revoked API key.")
        role: Role = "admin" if row.role == "admin" else "user"
        principal = Principal("api_key", row.id, f"api-key:{row.prefix}", role, row.cliente_id)
        if self.coherence.may_store(generation):
            self._keys[digest] = principal
        return principal

    def forget_key(self, key_hash: str) -> None:
        """Drop a revoked key from the cache: its next use is refused."""
        self._keys.pop(key_hash, None)

    def close(self) -> None:
        self.hasher.close()
