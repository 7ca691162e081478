"""Background jobs (features, index, clustering, import, export, learn): one at a time per
project, run in a thread.

A job's function gets the project, its parameters and a `progress(fraction, message)`
callable (its `job_id` attribute names the job). If it raises, the job is marked failed with
the error; the pipeline steps write their results atomically, so a crashed job leaves the
project as it was. `cancel_job` asks a job to stop: its next `progress` call raises
`JobCancelled` and the job ends "cancelled". A job whose params carry `"then": [kind, ...]`
starts the next kind as a new job when it ends done (a failed or cancelled one stops there).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import sysconfig
import threading
import traceback
from pathlib import Path
from typing import Callable

from sqlalchemy import delete, select, update

from .store import Job, Meta, utcnow

log = logging.getLogger(__name__)

ACTIVE_STATES = ("queued", "running")
ENDED_STATES = ("done", "failed", "cancelled")
_START_LOCK = threading.Lock()  # one start at a time in this process (the table check is not atomic)


class JobBusy(RuntimeError):
    """Another job is already running for this project."""


class JobCancelled(Exception):
    """A user cancelled the job (raised by its `progress` callable)."""


def _features(project, params, progress):
    from .features.extract import extract_features

    params.setdefault("num_workers", 0)  # no DataLoader worker processes forked from a server thread
    return {"feature_set": extract_features(project, progress=progress, **params)}


def _index(project, params, progress):
    from .index import build_index

    progress(None, "building the index")
    return build_index(project, **params)


def _cluster(project, params, progress):
    from .cluster import cluster_round

    return cluster_round(project, progress=progress, **params)

def _import(project, params, progress):
    from .importers.job import run_import

    return run_import(project, params, progress)


def _export(project, params, progress):
    from .export.job import run_export

    return run_export(project, params, progress)


def _learn(project, params, progress):
    from .features.learn_job import run_learn

    return run_learn(project, params, progress)


KINDS: dict[str, Callable] = {"features": _features, "index": _index, "cluster": _cluster,
                              "import": _import, "export": _export, "learn": _learn}


def start_job(project, kind: str, params: dict | None = None, user_id: int | None = None,
              wait: bool = False, ending: tuple[int, dict] | None = None) -> int:
    """Record a job and run it in a background thread; return its id.

    Raise JobBusy if a job of this project is still queued or running. `ending` (job id,
    values) ends the job of a chain that starts this one, in the same transaction.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; one of {', '.join(KINDS)}")
    params = dict(params or {})
    if "then" in params:
        params["then"] = [{"kind": k, "params": p} for k, p in _steps(params["then"])]
    fail_interrupted(project, known_only=True)  # a job whose process is gone does not block the next
    with _START_LOCK, project.transaction() as s:
        if ending is not None:
            _update(s, *ending)
        busy = s.execute(select(Job).where(Job.state.in_(ACTIVE_STATES))).scalars().first()
        if busy is not None:
            raise JobBusy(f"job {busy.id} ({busy.kind}) is still {busy.state}")
        job = Job(kind=kind, params=params, state="queued", user_id=user_id)
        s.add(job)
        s.flush()
        job_id = job.id
        s.add(Meta(key=_owner_key(job_id), value=_this_process()))
        if ending is not None:
            note = f"next: {kind} (job {job_id})"
            msg = ending[1].get("message")
            s.execute(update(Job).where(Job.id == ending[0]).values(
                message="; ".join(m for m in (msg, note) if m)[:500]))
    thread = threading.Thread(target=run_job, args=(project, job_id), daemon=True,
                              name=f"morphocluster-job-{job_id}")
    thread.start()
    if wait:
        thread.join()
    return job_id


# what a cancelled job leaves, in the job's message (a job stops at its next progress call)
CANCELLED = {
    "import": "cancelled: nothing was imported",
    "export": "cancelled: no file was written",
    "features": "cancelled: the features computed so far are kept, and computing again goes on from there",
    "index": "cancelled: the previous index stays in use",
    "cluster": "cancelled: a round stopped before it was written stores nothing; one already written "
               "stays, and its node statistics are made when a screen needs them",
    "learn": "cancelled: the training so far is kept in a checkpoint (features/learn-run.pt), and "
             "learning again with the same settings goes on from there; the active feature set stays",
}


def run_job(project, job_id: int) -> None:
    """Run a recorded job in this thread, keeping its state, progress and error up to date."""
    with project.session() as s:
        job = s.get(Job, job_id)
        kind, params, user_id = job.kind, dict(job.params or {}), job.user_id
    then = params.pop("then", None) or []
    _set(project, job_id, state="running", progress=0.0)

    def progress(fraction=None, message=None):
        values = {}
        if fraction is not None:
            values["progress"] = max(0.0, min(1.0, float(fraction)))
        if message is not None:
            values["message"] = str(message)[:500]
        if values:
            _set(project, job_id, **values)
        if cancel_requested(project, job_id):
            raise JobCancelled("cancelled")

    progress.job_id = job_id
    try:
        progress()  # cancelled while queued
        result = KINDS[kind](project, params, progress)
    except JobCancelled:
        log.info("job %d (%s) of %s cancelled", job_id, kind, project.root)
        _set(project, job_id, state="cancelled", active=False, finished_at=utcnow(), error=None,
             message=CANCELLED.get(kind, "cancelled by a user"))
        return
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the UI
        log.exception("job %d (%s) of %s failed", job_id, kind, project.root)
        # the first line is what everyone sees; the traceback below it only admins, on request
        _set(project, job_id, state="failed", active=False, finished_at=utcnow(),
             error=f"{one_line(exc)}\n\n{traceback.format_exc()}")
        return
    msg = _summary(result)
    done = dict(state="done", active=False, progress=1.0, finished_at=utcnow(), error=None,
                **({"message": msg} if msg else {}))
    if then:
        _start_next(project, job_id, then, user_id, done)
    else:
        _set(project, job_id, **done)


def _steps(then) -> list[tuple[str, dict]]:
    """Return a chain (`then`: kinds, or {"kind": ..., "params": {...}}) as (kind, params) pairs."""
    if not isinstance(then, (list, tuple)):
        raise ValueError("then: give a list of job kinds")
    steps = []
    for step in then:
        kind, p = ((step, {}) if isinstance(step, str) else (step.get("kind"), step.get("params") or {})
                   if isinstance(step, dict) else (step, None))
        if not isinstance(kind, str) or kind not in KINDS or not isinstance(p, dict):
            raise ValueError(f"then: unknown job kind {kind!r}; one of {', '.join(KINDS)}")
        steps.append((kind, dict(p)))
    return steps


def _start_next(project, job_id: int, then: list, user_id, done: dict) -> None:
    """Mark a job done and start the first step of its chain with the rest, in one transaction
    (a page that stops polling at "done" already shows the next job); say so in its message."""
    (kind, params), rest = _steps(then)[0], then[1:]
    if kind == "cluster":
        params.setdefault("user_id", user_id)
    if rest:
        params["then"] = rest
    msg = done.get("message")
    try:
        start_job(project, kind, params, user_id=user_id, ending=(job_id, done))
    except Exception as exc:  # noqa: BLE001 - this job is done; the chain stops, and says why
        note = f"the chain stopped before {kind}: {one_line(exc)}"
        _set(project, job_id, **{**done, "message": "; ".join(m for m in (msg, note) if m)[:500]})


def cancel_job(project, job_id: int) -> bool:
    """Ask a queued or running job to stop; return False if it has already ended.

    Its next `progress` call raises JobCancelled; what it stores at the end (in one
    transaction) is then never written."""
    with project.transaction() as s:
        job = s.get(Job, job_id)
        if job is None or job.state not in ACTIVE_STATES:
            return False
        if s.get(Meta, _cancel_key(job_id)) is None:
            s.add(Meta(key=_cancel_key(job_id), value={"at": utcnow().isoformat()}))
        return True


def cancel_requested(project, job_id: int) -> bool:
    """Whether someone asked this job to stop."""
    with project.session() as s:
        return s.get(Meta, _cancel_key(job_id)) is not None


def job_dir(project, job_id: int) -> Path:
    """The folder where a job keeps files of its own (an import's report)."""
    return project.cache_dir / "jobs" / str(int(job_id))


def _install_dirs() -> list[str]:
    """Where Python and this package are installed, longest first."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(__file__).resolve().parent.parent),
            *(v for v in sysconfig.get_paths().values() if v)}
    return sorted((d for d in dirs if len(d) > 1), key=len, reverse=True)


def hide_install_paths(text: str) -> str:
    """Replace the install's folders in `text` by "…" (they tell users nothing)."""
    for d in _install_dirs():
        text = text.replace(d, "…")
    return text


def one_line(exc: BaseException) -> str:
    """Return the exception's last line (type and message) on one line, without install paths."""
    text = " ".join(traceback.format_exception_only(type(exc), exc)[-1].split())
    return hide_install_paths(text)[:500]


def _summary(result) -> str | None:
    if result is None:
        return None
    if callable(getattr(result, "summary", None)):
        return result.summary()[:500]
    if dataclasses.is_dataclass(result):
        result = dataclasses.asdict(result)
    if isinstance(result, dict):
        parts = [f"{k}: {v}" for k, v in result.items() if isinstance(v, (int, float, str))]
        return ", ".join(parts)[:500] or None
    return str(result)[:500]


def _set(project, job_id: int, **values) -> None:
    with project.transaction() as s:
        _update(s, job_id, values)


def _update(session, job_id: int, values: dict) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(**values))
    if values.get("state") in ENDED_STATES:  # ended: who ran it and a cancel no longer matter
        session.execute(delete(Meta).where(Meta.key.in_([_owner_key(job_id), _cancel_key(job_id)])))


def get_job(project, job_id: int) -> dict | None:
    """Return one job as a dict, or None."""
    with project.session() as s:
        job = s.get(Job, job_id)
        return _as_dict(job, s) if job else None


def list_jobs(project, limit: int = 20) -> list[dict]:
    """Return the latest jobs, newest first."""
    with project.session() as s:
        rows = s.scalars(select(Job).order_by(Job.id.desc()).limit(limit))
        return [_as_dict(j, s) for j in rows]


def active_job(project) -> dict | None:
    """Return the queued or running job, if any."""
    with project.session() as s:
        job = s.execute(select(Job).where(Job.state.in_(ACTIVE_STATES))).scalars().first()
        return _as_dict(job, s) if job else None


def _owner_key(job_id: int) -> str:
    return f"job_owner:{int(job_id)}"


def _cancel_key(job_id: int) -> str:
    return f"job_cancel:{int(job_id)}"


def _started(pid: int) -> str | None:
    """The start time of a process (Linux), which tells it from a later one given its pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _this_process() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _started(os.getpid())}


def owner_alive(owner: dict | None, unknown: bool = False) -> bool:
    """Whether the process that runs a job is still there; `unknown` where that cannot be told
    (a job of another machine, or one that recorded no process)."""
    if not owner or owner.get("host") != socket.gethostname():
        return unknown
    started = _started(int(owner.get("pid", -1)))
    return started is not None and started == owner.get("started")


def job_owner(session, job_id: int) -> dict | None:
    """Return the process recorded for a job (host, pid, start time), or None."""
    return getattr(session.get(Meta, _owner_key(job_id)), "value", None)


def reap(project) -> int:
    """Mark failed the jobs of this machine whose process is gone; return how many.

    Only reads unless one is found, so a page that polls a job can call it each time."""
    with project.session() as s:
        jobs = s.scalars(select(Job.id).where(Job.state.in_(ACTIVE_STATES))).all()
        dead = [i for i in jobs if not owner_alive(job_owner(s, i), unknown=True)]
    return fail_interrupted(project, known_only=True) if dead else 0


def fail_interrupted(project, known_only: bool = False) -> int:
    """Mark jobs whose process is gone (a stopped server or script) as failed; return how many.

    A server calls it when it starts: a job that another process on this machine still runs is
    left alone, one of another machine is taken for gone, as before. `start_job` calls it with
    `known_only`: only jobs of this machine whose process is gone."""
    with project.transaction() as s:
        jobs = s.scalars(select(Job).where(Job.state.in_(ACTIVE_STATES))).all()
        gone = [j.id for j in jobs if not owner_alive(getattr(s.get(Meta, _owner_key(j.id)), "value", None),
                                                 unknown=known_only)]
        if gone:
            s.execute(update(Job).where(Job.id.in_(gone)).values(
                state="failed", active=False, finished_at=utcnow(),
                error="interrupted: the process that ran it (a server or a script) stopped; start it again"))
        s.execute(delete(Meta).where(Meta.key.in_([k(i) for i in gone for k in (_owner_key, _cancel_key)])))
        return len(gone)


def _as_dict(job: Job, session=None) -> dict:
    """A job as a dict: `error` its one-line error, `details` the traceback (admins only),
    `cancelling` whether a cancel was asked for and it has not ended yet."""
    first, _, rest = (job.error or "").partition("\n")
    cancelling = (session is not None and job.state in ACTIVE_STATES
                  and session.get(Meta, _cancel_key(job.id)) is not None)
    return {"id": job.id, "kind": job.kind, "params": job.params, "state": job.state,
            "cancelling": cancelling,
            "progress": job.progress, "message": job.message,
            "error": hide_install_paths(first.strip()) if job.error else None,
            "details": rest.strip() or None,
            "user_id": job.user_id, "created_at": job.created_at, "finished_at": job.finished_at}
