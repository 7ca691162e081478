import json

import pytest
from sqlalchemy import insert, select

from morphocluster.project import Project, ProjectError
from morphocluster.store import Event, Membership, Meta, Node, Object, log_event


def test_create_and_reopen(tmp_path):
    p = Project.create(tmp_path / "p")
    assert (tmp_path / "p" / "project.sqlite").is_file()
    with p.transaction() as s:
        s.execute(insert(Object), [{"object_id": "a", "path": "a.png"}])
    p.close()
    q = Project.open(tmp_path / "p")
    with q.session() as s:
        assert s.scalars(select(Object.object_id)).all() == ["a"]


def test_open_non_project_is_clear(tmp_path):
    with pytest.raises(ProjectError, match="not a morphocluster project"):
        Project.open(tmp_path)


def test_create_refuses_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("keep me")
    with pytest.raises(ProjectError, match="not empty"):
        Project.create(tmp_path / "x")
    assert (tmp_path / "x" / "file").read_text() == "keep me"


def test_old_schema_version_is_refused(project):
    with project.transaction() as s:
        s.get(Meta, "schema_version").value = 0
    root = project.root
    project.close()
    with pytest.raises(ProjectError, match="schema version 0"):
        Project.open(root)


def test_object_in_at_most_one_node(project):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        with project.transaction() as s:
            s.add(Object(id=1, object_id="o", path="o.png"))
            s.add_all([Node(id=1), Node(id=2)])
            s.flush()
            s.add(Membership(object_pk=1, node_id=1))
            s.flush()
            s.add(Membership(object_pk=1, node_id=2))
            s.flush()


def test_event_log_rolls_back_with_change(project):
    with pytest.raises(RuntimeError):
        with project.transaction() as s:
            log_event(s, None, "approve", {"node": 1})
            raise RuntimeError("boom")
    with project.session() as s:
        assert s.scalars(select(Event)).all() == []


def test_image_path_cannot_escape(project):
    with pytest.raises(ProjectError, match="escapes"):
        project.image_path("../../etc/passwd")


def test_config_is_json(project):
    cfg = json.loads((project.root / "morphocluster.json").read_text())
    assert cfg["format"] == 1
