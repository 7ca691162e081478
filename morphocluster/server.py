"""A server root: a folder of projects plus `server.sqlite` (users, each one's role per project,
the session secret). Projects found in the folder have their own users copied in once."""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import threading
import unicodedata
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from werkzeug.security import check_password_hash

from . import store, users
from .jobs import one_line
from .project import CONFIG_NAME, Project, ProjectError

log = logging.getLogger("morphocluster.server")

SERVER_DB = "server.sqlite"
PROJECT_ROLES = ("admin", "annotator", "viewer")
# folder names served under /p/<name>/ (a folder put there by hand); made here: NEW_NAME
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NEW_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")


class ServerError(RuntimeError):
    """Not a server root, or a name, role or project that cannot be used."""


class Base(DeclarativeBase):
    pass


class ServerUser(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)  # server admin: every project
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=store.utcnow)
    session_gen: Mapped[int] = mapped_column(Integer, default=0)


class Role(Base):
    __tablename__ = "roles"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))


class KnownProject(Base):
    """A project folder seen once (its users were copied in then), with what that said."""

    __tablename__ = "projects"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    found_at: Mapped[datetime] = mapped_column(DateTime, default=store.utcnow)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)


class ServerMeta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def is_server_root(path) -> bool:
    """Return whether `path` is a server root (has server.sqlite, is not itself a project)."""
    path = Path(path)
    return (path / SERVER_DB).is_file() and not (path / CONFIG_NAME).exists()


def folder_name(title: str) -> str:
    """Return a safe folder name for a project title ('Tara Oceans 2024' -> 'tara-oceans-2024')."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9_]+", "-", text).strip("-_")[:48].strip("-_")


class Server:
    """An open server root. Use `Server.create` or `Server.open`."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.engine = store.make_engine(f"sqlite:///{self.root / SERVER_DB}")
        Base.metadata.create_all(self.engine)  # new tables of a later version too
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._projects: dict[str, Project] = {}
        self._known: set[str] = set()
        self._lock = threading.RLock()

    @classmethod
    def create(cls, root, exist_ok: bool = True) -> "Server":
        """Make `root` a server root (the folder may already hold projects) and open it."""
        root = Path(root)
        if (root / CONFIG_NAME).exists():
            raise ServerError(f"{root}: is a project; a server root is the folder above projects")
        if (root / SERVER_DB).exists() and not exist_ok:
            raise ServerError(f"{root}: already a server root")
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    @classmethod
    def open(cls, root) -> "Server":
        if not is_server_root(root):
            raise ServerError(f"{root}: not a server root (no {SERVER_DB}); make one with "
                              "`morphocluster init-server`")
        return cls(root)

    def close(self) -> None:
        for p in self._projects.values():
            p.close()
        self.engine.dispose()

    def session(self):
        return self._sessions()

    @contextmanager
    def transaction(self):
        with store.transaction(self._sessions) as s:
            yield s

    @property
    def secret_key(self) -> str:
        """The session secret of every app of this server (made on first use)."""
        with self.transaction() as s:
            row = s.get(ServerMeta, "web_secret_key")
            if row is None:
                row = ServerMeta(key="web_secret_key", value=secrets.token_hex(32))
                s.add(row)
            return row.value

    # --- projects ---------------------------------------------------------------------------
    def is_project(self, name: str) -> bool:
        """Return whether `name` is a project folder of this root (copying its users in once)."""
        if not NAME_RE.fullmatch(name or "") or not (self.root / name / CONFIG_NAME).is_file():
            return False
        if name not in self._known:
            self._discover(name)
        return True

    def project_names(self) -> list[str]:
        """Return the names of the project folders, copying the users of new ones in."""
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and self.is_project(d.name))

    def project(self, name: str) -> Project:
        """Return the open project `name` (opened once, kept)."""
        with self._lock:
            if name not in self._projects:
                if not self.is_project(name):
                    raise ServerError(f"no project named {name!r}")
                self._projects[name] = Project.open(self.root / name)
            return self._projects[name]

    def notes(self) -> dict[str, str]:
        """Return what copying each project's users said (name clashes), by project."""
        with self.session() as s:
            return {k.name: k.notes for k in s.scalars(select(KnownProject)) if k.notes}

    def _discover(self, name: str) -> None:
        with self._lock:
            with self.session() as s:
                known = s.get(KnownProject, name) is not None
            if not known:
                try:
                    p = Project.open(self.root / name)
                    try:
                        self._migrate(name, p)
                    finally:
                        p.close()
                except ProjectError as exc:  # opened again (and the error shown) when used
                    log.warning("project %s: users not copied in: %s", name, exc)
                    return
                except IntegrityError:  # another server process copied them at the same moment
                    pass
            self._known.add(name)

    def _migrate(self, name: str, project: Project) -> None:
        """Copy a project's own users in (name, password hash, role on this project); a name the
        server already has keeps the server's user and gets no role here (it may be another person)."""
        notes = []
        with project.session() as ps:
            local = list(ps.scalars(select(store.User).order_by(store.User.id)))
        with self.transaction() as s:
            for u in local:
                if u.password_hash == users.SERVER_HASH:
                    continue  # a stand-in row this server made
                if u.role == "disabled":
                    notes.append(f"{u.username}: disabled in the project, not copied")
                    continue
                mine = s.scalars(select(ServerUser).where(ServerUser.username == u.username)).first()
                if mine is None:
                    mine = ServerUser(username=u.username, password_hash=u.password_hash)
                    s.add(mine)
                    s.flush()
                elif mine.password_hash != u.password_hash:
                    notes.append(f"{u.username}: the server already has a user of that name; kept "
                                 f"the server's, with no role on {name} (give one if it is the same person)")
                    continue
                if s.get(Role, (mine.id, name)) is None:
                    s.add(Role(user_id=mine.id, project=name, role=u.role))
            s.add(KnownProject(name=name, notes="\n".join(notes) or None))
        for n in notes:
            log.warning("project %s: %s", name, n)

    def create_project(self, title: str, database_url: str | None = None) -> str:
        """Create a project from a title (its folder gets a safe name); return that name."""
        name = folder_name(title or "")
        if not NEW_NAME.fullmatch(name):
            raise ServerError(f"project name {title!r}: needs letters or digits")
        if database_url and not re.match(r"postgresql(\+\w+)?://", database_url):
            raise ServerError("database URL: a postgresql:// URL, or empty for SQLite in the folder")
        folder = self.root / name
        if folder.exists():
            raise ServerError(f"a project or folder named {name!r} already exists")
        try:
            Project.create(folder, database_url or None).close()
        except Exception as exc:
            if not (folder / CONFIG_NAME).exists():
                shutil.rmtree(folder, ignore_errors=True)  # half made: not a project, nothing kept
            raise ServerError(f"could not create {name!r}: {one_line(exc)}") from exc
        self.is_project(name)
        return name

    def stats(self, name: str) -> dict:
        """Return a project's counts for the project list, or {"error": ...}."""
        from .workflow.progress import object_count

        try:
            p = self.project(name)
            with p.session() as s:
                n = object_count(s)
                approved = select(store.Node).where(store.Node.status == "approved").subquery()
                labelled = s.scalar(select(func.coalesce(func.sum(approved.c.n_members), 0)))
                validated = s.scalar(select(func.count()).select_from(approved)
                                     .where(approved.c.n_members > 0))
                jobs = s.scalar(select(func.count()).select_from(store.Job)
                                .where(store.Job.state.in_(("queued", "running"))))
        except Exception as exc:  # noqa: BLE001 - one broken project must not hide the others
            return {"name": name, "error": one_line(exc)}
        return {"name": name, "objects": n, "labelled": int(labelled or 0),
                "fraction": (labelled or 0) / n if n else 0.0, "validated": validated, "jobs": jobs}

    # --- users and roles ----------------------------------------------------------------------
    def add_user(self, username: str, password: str, admin: bool = False) -> dict:
        users.check_fields(username, password, None)
        with self.transaction() as s:
            if s.scalars(select(ServerUser.id).where(ServerUser.username == username)).first():
                raise users.UserError(f"user {username!r} already exists")
            u = ServerUser(username=username, password_hash=users.hash_password(password), is_admin=admin)
            s.add(u)
            s.flush()
            return self._as_dict(s, u)

    def authenticate(self, username: str, password: str) -> dict | None:
        """As `users.authenticate`: the same cost for an unknown name. Project folders put in
        since the last look have their users copied in first, so that those can log in."""
        self.project_names()
        with self.session() as s:
            u = s.scalars(select(ServerUser).where(ServerUser.username == username)).first()
            if u is None:
                check_password_hash(users.stand_in_hash(), password)
                return None
            ok = check_password_hash(u.password_hash, password) and not u.disabled
            stale = ok and not u.password_hash.startswith(users.HASH_METHOD + "$")
            found = self._as_dict(s, u) if ok else None
        if stale:
            with self.transaction() as s:
                s.get(ServerUser, found["id"]).password_hash = users.hash_password(password)
        return found

    def get_user(self, user_id) -> dict | None:
        """Return a user by id, None if there is none or they are disabled."""
        with self.session() as s:
            u = s.get(ServerUser, user_id) if isinstance(user_id, int) else None
            return self._as_dict(s, u) if u is not None and not u.disabled else None

    def list_users(self) -> list[dict]:
        with self.session() as s:
            return [self._as_dict(s, u) for u in s.scalars(select(ServerUser).order_by(ServerUser.username))]

    def role_of(self, user: dict | None, name: str) -> str | None:
        """Return the user's role on project `name` (server admins: admin), None for no role."""
        if user is None or not self.is_project(name):
            return None
        if user["is_admin"]:
            return "admin"
        with self.session() as s:
            row = s.get(Role, (user["id"], name))
            return row.role if row is not None else None

    def visible_projects(self, user: dict) -> list[str]:
        """Return the projects the user has a role on (all of them for a server admin)."""
        return [n for n in self.project_names() if self.role_of(user, n)]

    def set_role(self, username: str, name: str, role: str | None) -> None:
        """Give a user a role on a project (None: take it away); their sessions end."""
        if role is not None and role not in PROJECT_ROLES:
            raise users.UserError(f"role {role!r}: one of {', '.join(PROJECT_ROLES)}")
        if not self.is_project(name):
            raise ServerError(f"no project named {name!r}")
        with self.transaction() as s:
            u = self._get(s, username)
            s.execute(delete(Role).where(Role.user_id == u.id, Role.project == name))
            if role is not None:
                s.add(Role(user_id=u.id, project=name, role=role))
            u.session_gen += 1

    def set_password(self, username: str, password: str) -> None:
        users.check_fields(username, password, None)
        with self.transaction() as s:
            u = self._get(s, username)
            u.password_hash = users.hash_password(password)
            u.session_gen += 1

    def reset_password(self, username: str) -> str:
        password = users.generate_password()
        self.set_password(username, password)
        return password

    def set_flags(self, username: str, admin: bool | None = None, disabled: bool | None = None) -> None:
        """Make a user server admin or not, disabled or not; the last server admin stays one."""
        with self.transaction() as s:
            u = self._get(s, username)
            losing = u.is_admin and not u.disabled and (admin is False or disabled is True)
            if losing and s.scalar(select(func.count()).select_from(ServerUser).where(
                    ServerUser.is_admin, ServerUser.disabled.is_(False))) <= 1:
                raise users.UserError(f"{username!r} is the last server admin; make another one first")
            u.is_admin = u.is_admin if admin is None else admin
            u.disabled = u.disabled if disabled is None else disabled
            u.session_gen += 1

    def end_sessions(self, user_id: int) -> None:
        with self.transaction() as s:
            u = s.get(ServerUser, user_id)
            if u is not None:
                u.session_gen += 1

    def _get(self, s, username: str) -> ServerUser:
        u = s.scalars(select(ServerUser).where(ServerUser.username == username)).first()
        if u is None:
            raise users.UserError(f"no user named {username!r}")
        return u

    @staticmethod
    def _as_dict(s, u: ServerUser) -> dict:
        roles = dict(s.execute(select(Role.project, Role.role).where(Role.user_id == u.id)).all())
        return {"id": u.id, "username": u.username, "is_admin": bool(u.is_admin),
                "disabled": bool(u.disabled), "created_at": u.created_at,
                "session_gen": u.session_gen, "roles": roles}
