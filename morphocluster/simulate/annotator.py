"""The simulated annotator: clicks, what it has been shown, and the run over phases.

It drives the same `morphocluster.workflow` functions a screen calls. It knows the true class of
an object only once `show()` put the object on a screen; nothing else reads the truth except
`measure()`, which scores the result afterwards.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from sqlalchemy import select

from ..store import Membership, Node, Object, User

# relabel: a wrong object (member, grow candidate, suggestion) given its class by name;
# confirm, accept, move: the sort-suggestions screen (simulate.assist), where move is a click on
# a wrongly suggested object's runner-up label, which is its class
CLICK_KINDS = ("approve", "dissolve", "remove", "remove_from", "name", "judge", "reject",
               "first_wrong", "save", "split", "merge", "undo", "next_screen", "relabel",
               "confirm", "accept", "move")


@dataclass
class Settings:
    """How the simulated annotator works; `presets.py` holds the named ones."""

    name: str = "custom"
    rounds: tuple = (128, 64)          # min_cluster_size of each clustering round
    min_samples: int | None = None
    method: str = "leaf"
    reduce: str = "pca:64"
    page_size: int = 50                # objects on one screen
    approve_purity: float = 0.9        # approve when this share of the seen members is one class
    approve_purity_seen: float | None = None  # lower bar when the whole cluster was seen (clean)
    min_clean_gain: float = 2.0        # ... and cleaning it gains this many objects per click
    validate_pages: int | None = None  # screens of a cluster looked at (None: all of them)
    clean: bool = False                # remove seen members of other classes before approving
    validate_search: bool = False      # judge later member pages to cut the impure tail
    tail_purity: float = 0.8           # a later member page is OK with this share of the class
    lost_object_cost: float = 0.5      # clicks a good object sent back to the pool is worth
    split_mixed: bool = False          # split a mixed cluster instead of dissolving it
    grow: str = "pages"                # pages | direct | pages+direct | none
    grow_page_ok: float = 0.9          # page-level judgement: OK when this share is the class
    n_prototypes: int | None = 16      # grow ranking prototypes (None: nodestats' own)
    direct_min_gain: float = 3.0       # stop direct growth when a click gains fewer objects
    regrow: bool = False               # grow nodes of earlier rounds again in later rounds
    max_direct_pages: int = 200        # safety bound on screens per node in direct growth
    relabel: bool = False              # give a wrong member or grow candidate its class by name
    #                                    (one click, as removing or rejecting it would be)
    extra_phases: tuple = ()           # "module:function" phases appended to every round
    final_phases: tuple = ()           # "module:function" phases run once after the last round

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Snapshot:
    clicks: int
    labelled: int
    correct: int
    phase: str


@dataclass
class Result:
    settings: dict
    objects: int
    labelled: int
    correct: int
    clicks: dict
    classes_total: int
    classes_found: int
    curve: list = field(default_factory=list)
    seconds: float = 0.0
    learning: list = field(default_factory=list)  # reports of learn jobs run on the way

    @property
    def total_clicks(self) -> int:
        return sum(self.clicks.values())

    def to_dict(self) -> dict:
        n, lab, ok, c = self.objects, self.labelled, self.correct, self.total_clicks
        left = n - lab
        return {
            "settings": self.settings,
            "objects": n, "labelled": lab, "correct": ok,
            "coverage": lab / n if n else 0.0,
            "precision": ok / lab if lab else 1.0,
            "clicks": c, "clicks_by_kind": dict(self.clicks),
            "objects_per_click": lab / c if c else 0.0,
            "classes_total": self.classes_total, "classes_found": self.classes_found,
            "unlabelled": left,
            "whole_set_objects_per_click": n / (c + left) if (c + left) else 0.0,
            "whole_set_precision": (ok + left) / n if n else 1.0,
            "seconds": round(self.seconds, 1),
            "learning": self.learning,
            "learn_seconds": round(sum(r["seconds"] for r in self.learning), 1) if self.learning else None,
            "learn_cpu_seconds": round(sum(r["cpu_seconds"] for r in self.learning), 1)
            if self.learning else None,
            "curve": [asdict(s) for s in self.curve],
        }


def ensure_user(project, username: str = "simulator") -> int:
    with project.transaction() as s:
        uid = s.scalar(select(User.id).where(User.username == username))
        if uid is None:
            u = User(username=username, password_hash="!", role="annotator")
            s.add(u)
            s.flush()
            uid = u.id
        return uid


def resolve_phase(phase):
    """Return a phase callable; strings name one as 'package.module:function'."""
    if callable(phase):
        return phase
    import importlib

    module, _, attr = str(phase).partition(":")
    if not attr:
        raise ValueError(f"phase {phase!r}: expected 'package.module:function'")
    return getattr(importlib.import_module(module), attr)


def imported_truth(project) -> dict[int, str]:
    """Return Object.id -> imported label (objects without one are left out)."""
    with project.session() as s:
        return {pk: lab for pk, lab in s.execute(
            select(Object.id, Object.imported_label).where(Object.imported_label.is_not(None)))}


class Simulator:
    """Run rounds of phases with a simulated annotator and score the result.

    `phases` (run every round, in order) holds callables `phase(sim, round_index)`; the defaults
    are cluster, validate, grow. `extra_phases` are appended to every round, `final_phases` run
    once after the last round. A phase acts only through `morphocluster.workflow`, pays with
    `sim.click(kind)` and learns classes only with `sim.show(pks)`.
    """

    def __init__(self, project, truth: dict, settings: Settings | None = None, user_id=None,
                 extra_phases=(), final_phases=(), log=None):
        from .phases import DEFAULT_PHASES

        self.project = project
        self.settings = settings or Settings()
        self.user_id = user_id if user_id is not None else ensure_user(project)
        self._truth = dict(truth)
        self.seen: dict[int, str | None] = {}
        self.clicks: Counter = Counter()
        st = self.settings
        self.phases = list(DEFAULT_PHASES) + [resolve_phase(p) for p in (*st.extra_phases, *extra_phases)]
        self.final_phases = [resolve_phase(p) for p in (*st.final_phases, *final_phases)]
        self.curve: list[Snapshot] = []
        self.grown: set[int] = set()   # approved nodes already grown
        self.other_gain = 0.0          # objects per click another screen (an extra phase's,
        #                                such as sorting suggestions) gains on what is left
        self.log = log or (lambda msg: None)
        self.learning: list[dict] = []  # learn jobs run (simulate.learning), with their times
        self.phase = "start"

    # --- what phases use ------------------------------------------------------------------------
    def click(self, kind: str, n: int = 1) -> None:
        """Pay n clicks of one kind."""
        if kind not in CLICK_KINDS:
            raise ValueError(f"unknown click kind {kind!r}")
        if n > 0:
            self.clicks[kind] += int(n)

    def show(self, pks) -> list:
        """Put objects on a screen: return their true classes and remember them."""
        out = []
        for pk in pks:
            pk = int(pk)
            lab = self._truth.get(pk)
            self.seen[pk] = lab
            out.append(lab)
        return out

    @property
    def total_clicks(self) -> int:
        return sum(self.clicks.values())

    # --- scoring (the only reader of the whole truth) -----------------------------------------
    def measure(self) -> tuple[int, int, set]:
        """Return (labelled, correct, names found correct) of the project as it is now."""
        with self.project.session() as s:
            rows = s.execute(select(Membership.object_pk, Node.name)
                             .join(Node, Node.id == Membership.node_id)
                             .where(Node.status == "approved", Node.name.is_not(None))).all()
        labelled = correct = 0
        found = set()
        for pk, name in rows:
            labelled += 1
            if self._truth.get(pk) == name:
                correct += 1
                found.add(name)
        return labelled, correct, found

    def snapshot(self, force: bool = False) -> None:
        if not force and self.curve and self.total_clicks - self.curve[-1].clicks < 25:
            return
        lab, ok, _ = self.measure()
        self.curve.append(Snapshot(self.total_clicks, lab, ok, self.phase))

    # --- the run ------------------------------------------------------------------------------
    def run(self) -> Result:
        """Run every round's phases, then the final phases; return the scored result."""
        before = self.project.config.get("grow")
        self.project.config["grow"] = {"n_prototypes": self.settings.n_prototypes}
        try:
            return self._run()
        finally:  # the grow setting is the simulation's, not the project's
            if before is None:
                self.project.config.pop("grow", None)
            else:
                self.project.config["grow"] = before

    def _run(self) -> Result:
        t0 = time.time()
        self.snapshot(force=True)
        for r in range(len(self.settings.rounds)):
            for phase in self.phases:
                self.phase = f"{r}:{getattr(phase, '__name__', 'phase')}"
                phase(self, r)
                self.snapshot(force=True)
                self.log(f"round {r} {self.phase}: clicks {self.total_clicks}, "
                         f"labelled {self.curve[-1].labelled}, correct {self.curve[-1].correct}")
        for phase in self.final_phases:
            self.phase = f"final:{getattr(phase, '__name__', 'phase')}"
            phase(self, len(self.settings.rounds))
            self.snapshot(force=True)
        lab, ok, found = self.measure()
        n = len(self.project_objects())
        return Result(self.settings.to_dict(), n, lab, ok, dict(self.clicks),
                      len(set(self._truth.values())), len(found), self.curve, time.time() - t0,
                      self.learning)

    def project_objects(self) -> list[int]:
        with self.project.session() as s:
            return list(s.scalars(select(Object.id)))
