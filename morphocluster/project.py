"""A project: one folder holding the database, the images, features and indexes."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy.orm import Session, sessionmaker

from . import store
from .images import LIMITS_KEY, ImageLimits

CONFIG_NAME = "morphocluster.json"


class ProjectError(RuntimeError):
    """A project folder is missing, incomplete or of another version."""


class Project:
    """Open project folder. Use `Project.create` or `Project.open`, not the constructor."""

    def __init__(self, root: Path, config: dict):
        self.root = Path(root).resolve()  # a relative root would break when the cwd differs (Flask send_file)
        self.config = config
        self.engine = store.make_engine(self.db_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    # --- layout -----------------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.config.get("database_url") or f"sqlite:///{self.root / 'project.sqlite'}"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def image_limits(self, **override) -> ImageLimits:
        """Return the image limits of the config's "limits" as the file now says (another
        process may have raised them; defaults where absent), with `override` (e.g. an
        import's options; None keeps the config's value)."""
        self.config[LIMITS_KEY] = self._limits_on_disk()
        try:
            return ImageLimits.from_config(self.config, **override)
        except (TypeError, ValueError) as exc:
            raise ProjectError(f"{self.root / CONFIG_NAME}: {exc}") from exc

    def raise_limits(self, limits: ImageLimits) -> dict:
        """Raise the config's limits to `limits` where those are higher (so that thumbnails and
        features take what an import let in); return the raised ones. Only "limits" changes
        in the file."""
        now = self.image_limits()
        raised = {k: v for k, v in limits.to_config().items() if v > getattr(now, k)}
        if raised:
            self.config[LIMITS_KEY] = {**now.to_config(), **raised}
            on_disk = json.loads((self.root / CONFIG_NAME).read_text(encoding="utf-8"))
            self._write_config({**on_disk, LIMITS_KEY: self.config[LIMITS_KEY]})
        return raised

    def _limits_on_disk(self):
        """The file's limits (another process, or a hand edit, may have changed them)."""
        try:
            cfg = json.loads((self.root / CONFIG_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return self.config.get(LIMITS_KEY)
        return cfg.get(LIMITS_KEY) if isinstance(cfg, dict) else self.config.get(LIMITS_KEY)

    # --- life cycle ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, database_url: str | None = None, exist_ok: bool = False) -> "Project":
        """Create a project folder (and its database) and return it opened."""
        root = Path(root)
        cfg_path = root / CONFIG_NAME
        if cfg_path.exists():
            if exist_ok:
                return cls.open(root)
            raise ProjectError(f"{root}: already a morphocluster project")
        if root.exists() and any(root.iterdir()):
            raise ProjectError(f"{root}: folder exists and is not empty")
        root.mkdir(parents=True, exist_ok=True)
        config = {"format": 1, "database_url": database_url, "active_features": None,
                  LIMITS_KEY: ImageLimits().to_config()}
        project = cls(root, config)
        store.create_schema(project.engine)
        for d in (project.images_dir, project.features_dir, project.index_dir, project.cache_dir):
            d.mkdir(exist_ok=True)
        project.save_config()  # written last: a folder without it is not a project
        return project

    @classmethod
    def open(cls, root: str | Path) -> "Project":
        """Open an existing project, checking its schema version."""
        root = Path(root)
        cfg_path = root / CONFIG_NAME
        if not cfg_path.is_file():
            raise ProjectError(f"{root}: not a morphocluster project (no {CONFIG_NAME}); "
                               "create one with `morphocluster init`")
        try:
            config = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProjectError(f"{cfg_path}: unreadable project config: {exc}") from exc
        project = cls(root, config)
        try:
            store.check_schema(project.engine, str(root))
        except store.SchemaError as exc:
            raise ProjectError(str(exc)) from exc
        return project

    def save_config(self) -> None:
        """Write the config atomically; its limits stay as the file has them (`raise_limits`)."""
        if (self.root / CONFIG_NAME).is_file():
            self.config[LIMITS_KEY] = self._limits_on_disk()
        self._write_config(self.config)

    def _write_config(self, config: dict) -> None:
        tmp = self.root / (CONFIG_NAME + ".tmp")
        tmp.write_text(json.dumps(config, indent=2), encoding="utf-8")
        tmp.replace(self.root / CONFIG_NAME)

    def close(self) -> None:
        self.engine.dispose()

    # --- database -----------------------------------------------------------------------------
    def session(self) -> Session:
        """Return a new session (caller manages the transaction)."""
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session in one write transaction: commit on success, roll back on any error
        (`store.ConcurrentChange` where another transaction changed the same rows at once)."""
        with store.transaction(self._sessions) as s:
            yield s

    def image_path(self, rel: str) -> Path:
        """Resolve an object's stored image path; refuse paths outside the project."""
        p = (self.images_dir / rel).resolve()
        if not p.is_relative_to(self.images_dir.resolve()):
            raise ProjectError(f"image path {rel!r} escapes the project folder")
        return p

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r})"
