"""The learn job from the jobs page: its form, checked options, roles, a run cancelled (its
checkpoint kept) and started again (resumed, done with old and new held-out accuracy)."""

from __future__ import annotations

import json
import re
import time

import pytest
from sqlalchemy import update

from morphocluster import jobs
from morphocluster.features.learn import CHECKPOINT
from morphocluster.store import Job, Membership, Node
from test_web_fixtures import app, client_as, web_project, web_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("shared_data")

FORM = {"size": "32", "batch_size": "16", "epochs": "1", "holdout": "0.2", "seed": "0", "device": "cpu",
        "name": ""}


def wait(p, job_id, until=jobs.ENDED_STATES, timeout=600):
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = jobs.get_job(p, job_id)
        if job["state"] in until:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end: {jobs.get_job(p, job_id)}")


def sort_the_seeds(p, info):
    """The four seed clusters approved and named, their members validated (an annotator's work)."""
    with p.transaction() as s:
        for name, node_id in info["nodes"].items():
            s.execute(update(Node).where(Node.id == node_id).values(status="approved", name=name))
            s.execute(update(Membership).where(Membership.node_id == node_id).values(status="validated"))


def post(client, token, form, **headers):
    return client.post("/jobs/start/learn", data=form,
                       headers={"X-CSRFToken": token, "HX-Request": "true", **headers})


def test_jobs_page_has_the_learn_form_for_admins_and_checks_it(client_as, web_project):
    p, _ = web_project
    admin, token = client_as("ada")
    html = admin.get("/jobs/").get_data(as_text=True)
    assert 'hx-post="/jobs/start/learn"' in html and "Learn features" in html
    for field in ("name", "epochs", "size", "batch_size", "holdout", "seed", "device", "invert",
                  "no_imported", "no_pseudo", "no_labels", "no_switch"):
        assert f'name="{field}"' in html, field
    ann, ann_token = client_as("ann")
    assert "/jobs/start/learn" not in ann.get("/jobs/").get_data(as_text=True)
    assert post(ann, ann_token, FORM).status_code == 403
    assert admin.post("/jobs/start/learn", data=FORM).status_code in (400, 403)  # no CSRF token
    for bad, says in [({"size": "abc"}, "size: &#39;abc&#39; is not a whole number"),
                      ({"holdout": "2"}, "holdout: 2 is out of range"),
                      ({"name": "../../etc"}, "is not a feature set name"),
                      ({"device": "tpu"}, "device: &#39;tpu&#39; is not one of auto, cpu, cuda"),
                      ({"no_switch": "perhaps"}, "no_switch: &#39;perhaps&#39; is not on or off")]:
        resp = post(admin, token, {**FORM, **bad})
        assert resp.status_code == 400 and says in resp.get_data(as_text=True), bad
    assert jobs.list_jobs(p) == []  # nothing was started
    # a job started by a script is checked too: it fails at once, saying why, having done nothing
    for params, says in [({"size": "16"}, "ValueError: size: 16 is out of range (32 to 1024)"),
                         ({"sizes": 32}, "ValueError: learn: unknown options 'sizes'; the options are")]:
        job = wait(p, jobs.start_job(p, "learn", params))
        assert job["state"] == "failed" and job["error"].startswith(says), job["error"]
    assert not (p.features_dir / CHECKPOINT).exists() and not (p.cache_dir / "learn").exists()


def test_learn_job_cancelled_keeps_its_checkpoint_and_resumes_to_a_summary(client_as, web_project):
    import torch

    p, info = web_project
    sort_the_seeds(p, info)
    active = p.config["active_features"]
    admin, token = client_as("ada")
    resp = post(admin, token, FORM)
    assert resp.status_code == 200 and "Started: Learn features." in resp.get_data(as_text=True)
    job_id = jobs.list_jobs(p)[0]["id"]
    job = jobs.get_job(p, job_id)
    assert job["kind"] == "learn" and job["params"] == {"size": 32, "batch_size": 16, "epochs": 1,
                                                        "holdout": 0.2, "seed": 0, "device": "cpu"}
    t0 = time.time()
    while not re.match(r"training: step [2-9] ", jobs.get_job(p, job_id)["message"] or ""):
        assert jobs.get_job(p, job_id)["state"] in jobs.ACTIVE_STATES, jobs.get_job(p, job_id)
        assert time.time() - t0 < 600
        time.sleep(0.05)
    resp = admin.post(f"/jobs/{job_id}/cancel", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert "the training so far is kept" in resp.get_data(as_text=True)
    job = wait(p, job_id)
    assert job["state"] == "cancelled" and job["message"] == jobs.CANCELLED["learn"]
    assert "checkpoint" in job["message"] and "goes on from there" in job["message"]
    ck = torch.load(p.features_dir / CHECKPOINT, map_location="cpu", weights_only=False)
    stopped = ck["step"]
    assert 2 <= stopped < ck["steps"] and ck["name"] == "learned-1"
    assert not (p.features_dir / "learned-1.h5").exists() and p.config["active_features"] == active

    resp = post(admin, token, FORM)  # the same settings: it goes on
    assert resp.status_code == 200
    job_id = jobs.list_jobs(p)[0]["id"]
    job = wait(p, job_id)
    assert job["state"] == "done", job["error"]
    report = json.loads((p.features_dir / "learned-1.learn.json").read_text())
    ck = report["check"]
    assert report["resumed_from"] == stopped and f"resumed from step {stopped}" in job["message"]
    assert report["n_heldout"] >= 20 and ck["old"] is not None and ck["new"] is not None
    msg = job["message"]
    n = report["n_heldout"]
    assert f"{ck['old']:.1%} ({round(ck['old'] * n)} of {n}) with {active} (active)" in msg
    assert f"{ck['new']:.1%} ({round(ck['new'] * n)} of {n}) with learned-1" in msg
    if report["switched"]:
        assert "switched: learned-1 is now the active feature set" in msg
        assert p.config["active_features"] == "learned-1"
    else:
        assert "not switched: learned-1 is not better" in msg and p.config["active_features"] == active
    assert report["switched"] == (ck["new"] > ck["old"])
    assert not (p.features_dir / CHECKPOINT).exists()
    row = admin.get(f"/jobs/{job_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "held-out accuracy:" in row and "every 1s" not in row
    with p.session() as s:
        assert s.get(Job, job_id).params["size"] == 32
