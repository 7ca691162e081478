"""Background jobs: one at a time, progress, failures recorded and harmless; the jobs page."""

from __future__ import annotations

import re
import time

import pytest

from morphocluster import jobs
from morphocluster.store import Job
from test_web_fixtures import app, client_as, web_project, web_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("shared_data")


def wait(p, job_id, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = jobs.get_job(p, job_id)
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_index_job_runs_in_background(web_project):
    p, _ = web_project
    job_id = jobs.start_job(p, "index", {})
    job = wait(p, job_id)
    assert job["state"] == "done" and job["progress"] == 1.0 and job["finished_at"]
    assert any(p.index_dir.iterdir())
    assert jobs.active_job(p) is None and jobs.list_jobs(p)[0]["id"] == job_id


def test_failed_job_shows_error_and_changes_nothing(web_project):
    p, _ = web_project
    before = sorted(x.name for x in p.features_dir.iterdir())
    active = p.config["active_features"]
    job = wait(p, jobs.start_job(p, "features", {"extractor": "no-such-extractor"}))
    assert job["state"] == "failed" and "no-such-extractor" in job["error"]
    assert sorted(x.name for x in p.features_dir.iterdir()) == before
    assert p.config["active_features"] == active


def test_one_job_at_a_time(web_project):
    import subprocess
    import sys

    from morphocluster.store import Meta

    p, _ = web_project
    with p.transaction() as s:
        job = Job(kind="cluster", state="running")
        s.add(job)
        s.flush()
        key = f"job_owner:{job.id}"
        s.add(Meta(key=key, value=jobs._this_process()))  # run by a process that is alive: this one
    with pytest.raises(jobs.JobBusy, match="still running"):
        jobs.start_job(p, "index")
    assert jobs.fail_interrupted(p) == 0  # a second server starting leaves a live job alone
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    with p.transaction() as s:  # its process was killed (a server, or a script)
        s.get(Meta, key).value = {**jobs._this_process(), "pid": int(gone), "started": "0"}
    wait(p, jobs.start_job(p, "index"))  # not blocked by it
    failed = next(j for j in jobs.list_jobs(p) if j["kind"] == "cluster")
    assert failed["state"] == "failed" and "interrupted" in failed["error"]
    assert jobs.list_jobs(p)[0]["state"] == "done" and jobs.list_jobs(p)[0]["error"] is None
    with p.session() as s:  # an ended job's process record is gone with it
        assert s.get(Meta, f"job_owner:{jobs.list_jobs(p)[0]['id']}") is None
    with pytest.raises(ValueError, match="unknown job kind"):
        jobs.start_job(p, "dance")


def test_jobs_page_start_and_poll(client_as, web_project):
    p, _ = web_project
    admin, token = client_as("ada")
    html = admin.get("/jobs/").get_data(as_text=True)
    assert "Build the index" in html
    resp = admin.post("/jobs/start/index", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert resp.status_code == 200 and "Started" in resp.get_data(as_text=True)
    job_id = jobs.list_jobs(p)[0]["id"]
    wait(p, job_id)
    row = admin.get(f"/jobs/{job_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "done" in row and "every 1s" not in row  # polling stops when finished
    ann, ann_token = client_as("ann")
    assert ann.post("/jobs/start/index", headers={"X-CSRFToken": ann_token}).status_code == 403
    assert admin.post("/jobs/start/dance", headers={"X-CSRFToken": token}).status_code == 404


def test_running_job_row_polls(client_as, web_project):
    from morphocluster.store import Meta

    p, _ = web_project
    with p.transaction() as s:
        job = Job(kind="cluster", state="running", progress=0.4, message="round 2")
        s.add(job)
        s.flush()
        job_id = job.id
        s.add(Meta(key=f"job_owner:{job_id}", value=jobs._this_process()))  # alive: this process
    admin, token = client_as("ada")
    row = admin.get(f"/jobs/{job_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "every 1s" in row and "40.0%" in row and "round 2" in row
    resp = admin.post("/jobs/start/index", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert resp.status_code == 409 and "still running" in resp.get_data(as_text=True)


def test_cluster_job_writes_a_round(web_project):
    from sqlalchemy import func, select

    from morphocluster.store import Node

    p, _ = web_project
    with p.session() as s:
        before = s.scalar(select(func.count(Node.id)))
    job = wait(p, jobs.start_job(p, "cluster", {"min_cluster_size": 5, "map2d": False, "user_id": 1}))
    assert job["state"] == "done", job["error"]
    assert job["progress"] == 1.0 and "round" in job["message"]
    with p.session() as s:
        n = s.scalar(select(func.count(Node.id)).where(Node.round == 2))
        assert s.scalar(select(func.count(Node.id))) > before
    assert n > 0 and re.match(rf"round 2: {n} new clusters holding [\d,]+ of [\d,]+ objects", job["message"])
    # a round that finds nothing says what to try
    job = wait(p, jobs.start_job(p, "cluster", {"min_cluster_size": 100000, "map2d": False, "user_id": 1}))
    assert job["state"] == "done" and "no cluster among" in job["message"]
    assert "try a minimum cluster size below 100000" in job["message"]


def test_features_job_reports_progress(web_project):
    p, _ = web_project
    seen = []
    from morphocluster.features.extract import extract_features

    extract_features(p, "pixels", name="px", activate=False, progress=lambda f, m: seen.append(f),
                     batch_size=16, num_workers=0)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    job = wait(p, jobs.start_job(p, "features", {"extractor": "pixels", "name": "px2", "activate": False,
                                                 "batch_size": 16}))
    assert job["state"] == "done" and job["progress"] == 1.0 and "px2" in job["message"]
    assert (p.features_dir / "px2.h5").is_file()


def test_jobs_page_list_polls_while_a_job_runs_or_a_chain_goes_on(client_as, web_project):
    """A row polls only itself, so the list is fetched whole while a job runs, and a moment
    after a job with more steps ends done: the chain's next job shows without a reload."""
    from datetime import timedelta

    from morphocluster.store import utcnow

    p, _ = web_project
    admin, _ = client_as("ada")
    list_polls = 'hx-select="#job-list"'
    assert list_polls not in admin.get("/jobs/").get_data(as_text=True)  # no job yet
    with p.transaction() as s:
        s.add(Job(kind="import", state="done", params={"then": [{"kind": "features", "params": {}}]},
                  finished_at=utcnow()))
    html = admin.get("/jobs/").get_data(as_text=True)
    assert list_polls in html and html.count("every 1s") == 1  # the list polls, not its rows
    with p.transaction() as s:
        s.get(Job, jobs.list_jobs(p)[0]["id"]).finished_at = utcnow() - timedelta(minutes=1)
    assert list_polls not in admin.get("/jobs/").get_data(as_text=True)  # that chain stopped
    with p.transaction() as s:
        s.add(Job(kind="features", state="running"))
    html = admin.get("/jobs/").get_data(as_text=True)
    assert list_polls in html and html.count("every 1s") == 1
    part = admin.get("/jobs/", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert '<tbody id="job-list"' in part  # what the poll selects is in the fragment
