"""Staff accounts, roles, page sessions and API tokens (families never log in: they use SMS)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.registry import audit
from core.registry.errors import RegistryError
from core.registry.models import STAFF_ROLES, ApiToken, StaffSession, StaffUser
from core.registry.secrets import (
    check_password_strength,
    hash_password,
    new_token,
    token_hash,
    verify_password,
)
from core.registry.service import Registry

USERNAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
SESSION_TTL: Final = timedelta(hours=12)  # one working day; then log in again
SESSION_PREFIX: Final = "foyer_s"
TOKEN_PREFIX: Final = "foyer_at"  # noqa: S105 (a public prefix, not a secret)


@cache
def _dummy_hash() -> str:
    """Verified when the user does not exist, so timing does not reveal usernames."""
    return hash_password("not-a-password", salt=b"0" * 16)


class AccountError(RegistryError):
    """A staff account operation the registry refuses."""


@dataclass(frozen=True)
class Principal:
    username: str
    roles: frozenset[str]

    def may(self, allowed: frozenset[str]) -> bool:
        return "admin" in self.roles or bool(self.roles & allowed)


def _check_roles(roles: list[str]) -> str:
    unknown = sorted(set(roles) - set(STAFF_ROLES))
    if unknown or not roles:
        raise AccountError(f"roles must be among {', '.join(STAFF_ROLES)}; got {roles}")
    return ",".join(sorted(set(roles)))


def _principal(user: StaffUser | None) -> Principal | None:
    if user is None or user.disabled:
        return None
    return Principal(user.username, frozenset(user.roles.split(",")))


class People:
    """Sub-service of the registry: one transaction per call, every change audited."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def add_user(self, username: str, password: str, roles: list[str], *, actor: str) -> None:
        if not USERNAME_RE.fullmatch(username):
            raise AccountError("username: 2-64 of a-z 0-9 . _ - starting with a letter or digit")
        try:
            check_password_strength(password)
        except ValueError as err:
            raise AccountError(str(err)) from err
        role_text = _check_roles(roles)
        now = self._registry.now()
        with self._registry.transaction() as session:
            if session.get(StaffUser, username) is not None:
                raise AccountError(f"user {username!r} already exists")
            session.add(
                StaffUser(
                    username=username,
                    password_hash=hash_password(password),
                    roles=role_text,
                    created_at=now,
                )
            )
            audit.record(session, actor, "user.add", username, now, {"roles": role_text})

    def set_roles(self, username: str, roles: list[str], *, actor: str) -> None:
        role_text = _check_roles(roles)
        with self._registry.transaction() as session:
            user = self._user(session, username)
            user.roles = role_text
            audit.record(
                session, actor, "user.roles", username, self._registry.now(), {"roles": role_text}
            )

    def set_password(self, username: str, password: str, *, actor: str) -> None:
        try:
            check_password_strength(password)
        except ValueError as err:
            raise AccountError(str(err)) from err
        with self._registry.transaction() as session:
            user = self._user(session, username)
            user.password_hash = hash_password(password)
            # A new password ends every open page session of that user.
            session.execute(delete(StaffSession).where(StaffSession.username == username))
            audit.record(session, actor, "user.password", username, self._registry.now())

    def disable_user(self, username: str, *, actor: str) -> None:
        now = self._registry.now()
        with self._registry.transaction() as session:
            user = self._user(session, username)
            user.disabled = True
            session.execute(delete(StaffSession).where(StaffSession.username == username))
            audit.record(session, actor, "user.disable", username, now)

    def list_users(self) -> list[dict[str, object]]:
        with self._registry.reading() as session:
            users = session.scalars(select(StaffUser).order_by(StaffUser.username))
            return [
                {"username": u.username, "roles": u.roles.split(","), "disabled": u.disabled}
                for u in users
            ]

    def authenticate(self, username: str, password: str) -> Principal | None:
        with self._registry.reading() as session:
            user = session.get(StaffUser, username)
        stored = user.password_hash if user is not None else _dummy_hash()
        if not verify_password(password, stored):
            return None
        return _principal(user)

    def open_session(self, username: str) -> str:
        """A new page session; the cookie value is returned, only its hash is kept."""
        token = new_token(SESSION_PREFIX)
        now = self._registry.now()
        with self._registry.transaction() as session:
            session.add(
                StaffSession(
                    token_hash=token_hash(token),
                    username=username,
                    created_at=now,
                    expires_at=now + SESSION_TTL,
                )
            )
            audit.record(session, username, "session.open", username, now)
        return token

    def close_session(self, token: str) -> None:
        with self._registry.transaction() as session:
            session.execute(
                delete(StaffSession).where(StaffSession.token_hash == token_hash(token))
            )

    def session_principal(self, token: str) -> Principal | None:
        now = self._registry.now()
        with self._registry.reading() as session:
            row = session.get(StaffSession, token_hash(token))
            if row is None or row.expires_at <= now:
                return None
            return _principal(session.get(StaffUser, row.username))

    def issue_token(
        self, username: str, name: str, *, actor: str, expires_at: datetime | None = None
    ) -> str:
        """An API token for scripts, acting with the user's roles; shown once."""
        token = new_token(TOKEN_PREFIX)
        now = self._registry.now()
        with self._registry.transaction() as session:
            self._user(session, username)
            session.add(
                ApiToken(
                    token_hash=token_hash(token),
                    username=username,
                    name=name,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            audit.record(session, actor, "token.issue", username, now, {"name": name})
        return token

    def revoke_token(self, username: str, name: str, *, actor: str) -> int:
        now = self._registry.now()
        with self._registry.transaction() as session:
            rows = session.scalars(
                select(ApiToken).where(
                    ApiToken.username == username,
                    ApiToken.name == name,
                    ApiToken.revoked_at.is_(None),
                )
            ).all()
            for row in rows:
                row.revoked_at = now
            audit.record(session, actor, "token.revoke", username, now, {"name": name})
        return len(rows)

    def token_principal(self, token: str) -> Principal | None:
        now = self._registry.now()
        with self._registry.reading() as session:
            row = session.get(ApiToken, token_hash(token))
            if row is None or row.revoked_at is not None:
                return None
            if row.expires_at is not None and row.expires_at <= now:
                return None
            return _principal(session.get(StaffUser, row.username))

    @staticmethod
    def _user(session: Session, username: str) -> StaffUser:
        user = session.get(StaffUser, username)
        if user is None:
            raise AccountError(f"user {username!r} does not exist")
        return user
