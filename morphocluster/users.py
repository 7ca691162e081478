"""Users of a project: add, authenticate, change passwords and roles (`disabled` locks out)."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from .store import User

ROLES = ("admin", "annotator", "viewer", "disabled")
# what each role may do; a role includes everything of the roles after it. A disabled user
# (someone who left) keeps their name in the history of what they did, but cannot log in.
_RANK = {"viewer": 0, "annotator": 1, "admin": 2}


class UserError(ValueError):
    """A user name, password or role is not acceptable."""


def may(role: str | None, needed: str) -> bool:
    """Return whether `role` has at least the rights of `needed`."""
    return role in _RANK and _RANK[role] >= _RANK[needed]


def generate_password(nbytes: int = 9) -> str:
    """Return a random password that is easy to type."""
    return secrets.token_urlsafe(nbytes)


def _check(username: str, password: str | None, role: str | None) -> None:
    if not username or len(username) > 64 or not username.isprintable() or username.strip() != username:
        raise UserError(f"user name {username!r}: 1-64 printable characters, no surrounding spaces")
    if password is not None and len(password) < 6:
        raise UserError("password: at least 6 characters")
    if role is not None and role not in ROLES:
        raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")


def add_user(project, username: str, password: str, role: str = "annotator") -> dict:
    """Create a user; raise UserError if the name is taken or invalid."""
    _check(username, password, role)
    if role == "disabled":
        raise UserError("a new user cannot start disabled")
    with project.transaction() as s:
        if s.execute(select(User.id).where(User.username == username)).first():
            raise UserError(f"user {username!r} already exists")
        user = User(username=username, password_hash=generate_password_hash(password), role=role)
        s.add(user)
        s.flush()
        return _as_dict(user)


def set_password(project, username: str, password: str) -> None:
    """Change a user's password."""
    _check(username, password, None)
    with project.transaction() as s:
        user = _get(s, username)
        user.password_hash = generate_password_hash(password)


def set_role(project, username: str, role: str) -> None:
    """Change a user's role; refuse to take the role of admin from the last admin."""
    _check(username, None, role)
    with project.transaction() as s:
        user = _get(s, username)
        if user.role == "admin" and role != "admin":
            admins = s.scalar(select(func.count(User.id)).where(User.role == "admin"))
            if admins <= 1:
                raise UserError(f"{username!r} is the last admin; make another user admin first")
        user.role = role


def reset_password(project, username: str) -> str:
    """Give a user a new random password and return it."""
    password = generate_password()
    set_password(project, username, password)
    return password


def list_users(project) -> list[dict]:
    """Return every user as a dict (id, username, role, created_at)."""
    with project.session() as s:
        return [_as_dict(u) for u in s.scalars(select(User).order_by(User.username))]


def get_user(project, user_id: int) -> dict | None:
    """Return one user by id, or None (also for a disabled user: their session ends)."""
    with project.session() as s:
        user = s.get(User, user_id)
        return _as_dict(user) if user and user.role != "disabled" else None


def authenticate(project, username: str, password: str) -> dict | None:
    """Return the user if the password is right and the user is not disabled, else None."""
    with project.session() as s:
        user = s.execute(select(User).where(User.username == username)).scalar()
        if user is None:
            check_password_hash(generate_password_hash("x"), password)  # same time either way
            return None
        ok = check_password_hash(user.password_hash, password) and user.role != "disabled"
        return _as_dict(user) if ok else None


def _get(session, username: str) -> User:
    user = session.execute(select(User).where(User.username == username)).scalar()
    if user is None:
        raise UserError(f"no user named {username!r}")
    return user


def _as_dict(user: User) -> dict:
    return {"id": user.id, "username": user.username, "role": user.role, "created_at": user.created_at}
