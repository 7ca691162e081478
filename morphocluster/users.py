"""Users of a project: add, authenticate, change passwords and roles (`disabled` locks out)."""

from __future__ import annotations

import secrets
from functools import cache

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from .store import User

ROLES = ("admin", "annotator", "viewer", "disabled")
# what each role may do; a role includes everything of the roles after it. A disabled user
# (someone who left) keeps their name in the history of what they did, but cannot log in.
_RANK = {"viewer": 0, "annotator": 1, "admin": 2}
# the key derivation and its cost, the same for every stored hash and for the stand-in hash an
# unknown name is checked against, so that a login costs the same whether the name exists or not
HASH_METHOD = "scrypt:32768:8:1"
# the password hash of a project's stand-in row for a user of a server (morphocluster/server.py):
# not a hash at all, so no password matches it and `serve PROJECT` never logs anyone in by it
SERVER_HASH = "!server-user"


class UserError(ValueError):
    """A user name, password or role is not acceptable."""


def may(role: str | None, needed: str) -> bool:
    """Return whether `role` has at least the rights of `needed`."""
    return role in _RANK and _RANK[role] >= _RANK[needed]


def hash_password(password: str) -> str:
    """Return the stored form of `password` (HASH_METHOD)."""
    return generate_password_hash(password, method=HASH_METHOD)


@cache
def stand_in_hash() -> str:
    """Return a hash of a random password, made once, to check unknown names against."""
    return hash_password(secrets.token_urlsafe(16))


def generate_password(nbytes: int = 9) -> str:
    """Return a random password that is easy to type."""
    return secrets.token_urlsafe(nbytes)


def check_fields(username: str, password: str | None, role: str | None) -> None:
    """Raise UserError for an unacceptable user name, password or role (None: not checked)."""
    if not username or len(username) > 64 or not username.isprintable() or username.strip() != username:
        raise UserError(f"user name {username!r}: 1-64 printable characters, no surrounding spaces")
    if password is not None and len(password) < 6:
        raise UserError("password: at least 6 characters")
    if role is not None and role not in ROLES:
        raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")


def add_user(project, username: str, password: str, role: str = "annotator") -> dict:
    """Create a user; raise UserError if the name is taken or invalid."""
    check_fields(username, password, role)
    if role == "disabled":
        raise UserError("a new user cannot start disabled")
    with project.transaction() as s:
        if s.execute(select(User.id).where(User.username == username)).first():
            raise UserError(f"user {username!r} already exists")
        user = User(username=username, password_hash=hash_password(password), role=role)
        s.add(user)
        s.flush()
        return _as_dict(user)


def set_password(project, username: str, password: str) -> None:
    """Change a user's password and end their sessions."""
    check_fields(username, password, None)
    with project.transaction() as s:
        user = _get(s, username)
        user.password_hash = hash_password(password)
        user.session_gen += 1


def set_role(project, username: str, role: str) -> None:
    """Change a user's role and end their sessions; refuse to take the role of admin from the
    last admin."""
    check_fields(username, None, role)
    with project.transaction() as s:
        user = _get(s, username)
        if user.role == "admin" and role != "admin":
            admins = s.scalar(select(func.count(User.id)).where(User.role == "admin"))
            if admins <= 1:
                raise UserError(f"{username!r} is the last admin; make another user admin first")
        user.role = role
        user.session_gen += 1


def end_sessions(project, user_id: int) -> None:
    """End every session of a user (their session cookies stop working)."""
    with project.transaction() as s:
        s.execute(update(User).where(User.id == user_id).values(session_gen=User.session_gen + 1))


def reset_password(project, username: str) -> str:
    """Give a user a new random password and return it."""
    password = generate_password()
    set_password(project, username, password)
    return password


def user_id(project, username: str) -> int:
    """Return the id of the user named `username`; raise UserError if there is none."""
    with project.session() as s:
        return _get(s, username).id


def list_users(project) -> list[dict]:
    """Return every user as a dict (id, username, role, created_at, session_gen)."""
    with project.session() as s:
        return [_as_dict(u) for u in s.scalars(select(User).order_by(User.username))]


def get_user(project, user_id: int) -> dict | None:
    """Return one user by id, or None (also for a disabled user: their session ends)."""
    with project.session() as s:
        user = s.get(User, user_id)
        return _as_dict(user) if user and user.role != "disabled" else None


def authenticate(project, username: str, password: str) -> dict | None:
    """Return the user if the password is right and the user is not disabled, else None.

    An unknown name costs one key derivation as a known one does (see HASH_METHOD); a hash made
    with other parameters (an older version) is made again at the next good login.
    """
    with project.session() as s:
        user = s.execute(select(User).where(User.username == username)).scalar()
        if user is None:
            check_password_hash(stand_in_hash(), password)
            return None
        ok = check_password_hash(user.password_hash, password) and user.role != "disabled"
        found = _as_dict(user) if ok else None
        stale = ok and not user.password_hash.startswith(HASH_METHOD + "$")
    if stale:
        with project.transaction() as s:
            s.get(User, found["id"]).password_hash = hash_password(password)
    return found


def stand_in(project, username: str, role: str) -> dict:
    """Return the project's row for a server user (made or given `role` here): the project's
    decisions, claims and jobs reference it. Its password is SERVER_HASH (it logs in nowhere);
    a project user of the same name is that row, so their history stays theirs (and their own
    password keeps working with `serve PROJECT`, unless they were disabled there)."""
    with project.session() as s:
        user = s.execute(select(User).where(User.username == username)).scalar()
        if user is not None and user.role == role:
            return _as_dict(user)
    try:
        with project.transaction() as s:
            user = s.execute(select(User).where(User.username == username)).scalar()
            if user is None:
                user = User(username=username, password_hash=SERVER_HASH, role=role)
                s.add(user)
            elif user.role == "disabled":  # someone who left: their old password stays dead
                user.password_hash = SERVER_HASH
            user.role = role
            s.flush()
            return _as_dict(user)
    except IntegrityError:  # another request made it at the same moment
        return stand_in(project, username, role)


def _get(session, username: str) -> User:
    user = session.execute(select(User).where(User.username == username)).scalar()
    if user is None:
        raise UserError(f"no user named {username!r}")
    return user


def _as_dict(user: User) -> dict:
    return {"id": user.id, "username": user.username, "role": user.role, "created_at": user.created_at,
            "session_gen": user.session_gen}
