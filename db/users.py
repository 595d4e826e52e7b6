"""User management shared by `custseg create-user` and the Admin page."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, select

from db.models import ROLES, User
from db.session import session_scope


class UserError(ValueError):
    """A user change that cannot be made; the message says why."""


def normalize_email(email: str) -> str:
    email = str(email).strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise UserError(f"not an email address: {email!r}")
    return email


def _role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    return role


def create_user(engine: Engine, email: str, password: str, role: str, update: bool = False) -> str:
    email, role = normalize_email(email), _role(role)
    with session_scope(engine) as db:
        user = db.scalar(select(User).where(User.email == email))
        if user is not None and not update:
            raise UserError(f"a user {email} already exists")
        if user is None:
            user = User(email=email, role=role, active=True, session_version=0)
            db.add(user)
        user.role = role
        user.active = True
        user.password = password  # raises ValueError when too short
    return email


def list_users(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                User.id, User.email, User.role, User.active, User.created_at, User.last_login_at
            ).order_by(User.email)
        ).all()
    return pd.DataFrame(
        rows, columns=["id", "email", "role", "active", "created_at", "last_login_at"]
    )


def change_user(
    engine: Engine,
    user_id: int,
    *,
    role: str | None = None,
    active: bool | None = None,
    acting_user_id: int | None = None,
) -> str:
    """Change a user's role or deactivate/reactivate them. Admins cannot lock themselves out."""
    with session_scope(engine) as db:
        user = db.get(User, user_id)
        if user is None:
            raise UserError(f"no user {user_id}")
        if user_id == acting_user_id and (role not in (None, "admin") or active is False):
            raise UserError("you cannot remove your own admin role or deactivate yourself")
        if role is not None:
            user.role = _role(role)
        if active is not None:
            user.active = active
            if not active:
                user.session_version += 1  # their open sessions end now
        return user.email
