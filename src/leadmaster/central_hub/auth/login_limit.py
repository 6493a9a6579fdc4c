"""The login limit (CONTRACT §4): 10 failed sign-ins per username in 15 minutes, shared by every hub process.

Each attempt is written to `login_failures` before its password is checked and deleted (with the user's
earlier failures) when it succeeds, so attempts running at once count too. On PostgreSQL a transaction-level
advisory lock per username makes count-then-insert atomic across processes. Unknown usernames are limited
the same way, so the answer never tells whether a username exists.
"""

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from leadmaster.central_hub import errors
from leadmaster.central_hub.db.models import LoginFailure, utcnow

LIMIT = 10
WINDOW = timedelta(minutes=15)


def begin_attempt(s: Session, username: str, now: datetime | None = None) -> None:
    """Count this attempt as a failure until `succeeded`; TooManyAttempts when the limit is reached."""
    now = now or utcnow()
    since = now - WINDOW
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:u))"), {"u": "login:" + username})
    # Old rows of every username go here, so the table holds at most one window of attempts.
    s.execute(delete(LoginFailure).where(LoginFailure.at <= since))
    recent = s.scalars(select(LoginFailure.at).where(
        LoginFailure.username == username, LoginFailure.at > since).order_by(LoginFailure.at)).all()
    if len(recent) >= LIMIT:
        # Free again when the oldest failure that keeps the count at the limit leaves the window.
        free_at = recent[len(recent) - LIMIT] + WINDOW
        retry_after = max(1, math.ceil((free_at - now).total_seconds()))
        raise errors.TooManyAttemptsError(
            f"Too many failed sign-ins for {username!r}: {LIMIT} within {int(WINDOW.total_seconds() // 60)} "
            f"minutes. Try again in {retry_after} s.", retry_after=retry_after,
        )
    s.add(LoginFailure(username=username, at=now))


def succeeded(s: Session, username: str) -> None:
    """A correct password: the user starts from a clean slate."""
    s.execute(delete(LoginFailure).where(LoginFailure.username == username))
