"""Login: username + password → short-lived JWT."""

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from leadmaster.central_hub.api.deps import HubDep
from leadmaster.central_hub.db.models import NO_NUL
from leadmaster.central_hub.errors import doc_response

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=150, pattern=NO_NUL)
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


@router.post("/login", response_model=TokenOut, responses={
    400: doc_response("VALIDATION_ERROR: malformed body", "VALIDATION_ERROR"),
    401: doc_response("INVALID_CREDENTIALS: wrong username or password", "INVALID_CREDENTIALS"),
    429: doc_response("TOO_MANY_ATTEMPTS: 10 failures for this username within 15 minutes (Retry-After)",
                      "TOO_MANY_ATTEMPTS", retry_after=840),
})
async def login(body: LoginIn, hub: HubDep) -> dict[str, Any]:
    """Exchange a username and password for a bearer token."""
    return await hub.auth.login(body.username, body.password)
