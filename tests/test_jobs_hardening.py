"""A failed job shows everyone one line, its traceback only to admins (and the server log); a job
whose process was killed is reported as interrupted, not running."""

from __future__ import annotations

import html
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import morphocluster
from morphocluster import jobs
from test_web_fixtures import PASSWORD, app, client_as, web_project, web_template  # noqa: F401

INSTALL = str(Path(morphocluster.__file__).resolve().parent)


def wait(p, job_id, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = jobs.get_job(p, job_id)
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.mark.usefixtures("shared_data")
def test_failed_job_shows_one_line_and_the_traceback_to_admins_only(client_as, web_project, caplog):
    p, _ = web_project
    missing = Path(sys.prefix) / "no-such-features.h5"  # an error message that names an install path
    with caplog.at_level(logging.ERROR, logger="morphocluster.jobs"):
        job = wait(p, jobs.start_job(p, "features", {"extractor": f"external:{missing}"}))
    assert job["state"] == "failed" and "no-such-features.h5" in job["error"]
    assert "\n" not in job["error"] and sys.prefix not in job["error"]
    # the server log has the whole traceback
    rec = next(r for r in caplog.records if f"job {job['id']} (features)" in r.getMessage())
    assert rec.exc_info and "Traceback" in caplog.text

    for user in ("vic", "ann"):  # a viewer, an annotator
        c, _ = client_as(user)
        page = c.get("/jobs/").get_data(as_text=True)
        row = c.get(f"/jobs/{job['id']}", headers={"HX-Request": "true"}).get_data(as_text=True)
        for text in (html.unescape(page), html.unescape(row)):
            assert "no-such-features.h5" in text
            assert "Traceback" not in text and 'File "' not in text and INSTALL not in text
            assert sys.prefix not in text and f"/jobs/{job['id']}/details" not in text
        assert c.get(f"/jobs/{job['id']}/details").status_code == 403

    admin, _ = client_as("ada")
    row = admin.get(f"/jobs/{job['id']}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert f"/jobs/{job['id']}/details" in row and "Traceback" not in row
    details = html.unescape(admin.get(f"/jobs/{job['id']}/details").get_data(as_text=True))
    assert "Traceback (most recent call last)" in details and 'File "' in details
    assert admin.get("/jobs/999999/details").status_code == 404


def test_one_line_is_the_last_line_without_install_paths():
    try:
        open(Path(sys.prefix) / "lib" / "missing.txt")
    except OSError as exc:
        line = jobs.one_line(exc)
    assert line == "FileNotFoundError: [Errno 2] No such file or directory: '…/lib/missing.txt'"
    try:
        raise ValueError("two\nlines")
    except ValueError as exc:
        assert jobs.one_line(exc) == "ValueError: two lines"


CHILD = textwrap.dedent("""
    import sys, time
    from morphocluster import jobs
    from morphocluster.project import Project

    # a job that runs until its process is killed, as a long features run would
    jobs.KINDS["wait"] = lambda project, params, progress: time.sleep(600)
    p = Project.open(sys.argv[1])
    print(jobs.start_job(p, "wait"), flush=True)
    time.sleep(600)
""")


def test_info_reports_the_job_of_a_killed_process_as_interrupted(project, tmp_path):
    from click.testing import CliRunner

    from morphocluster.cli import main
    from morphocluster.info import format_summary, summarize
    from morphocluster.users import add_user
    from morphocluster.web import create_app
    from test_web_fixtures import login

    child = subprocess.Popen([sys.executable, "-c", CHILD, str(project.root)], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        job_id = int(child.stdout.readline())
        t0 = time.time()
        while jobs.get_job(project, job_id)["state"] != "running":
            assert time.time() - t0 < 30, "the job did not start"
            time.sleep(0.05)
        line = next(x for x in format_summary(summarize(project)).splitlines() if x.startswith("Job"))
        assert line.startswith(f"Job {job_id} (wait): running since")  # alive: running
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()

    data = summarize(project)
    assert [(j["id"], j["state"], j["alive"], j["pid"]) for j in data["active_jobs"]] == \
        [(job_id, "interrupted", False, child.pid)]
    res = CliRunner().invoke(main, ["info", str(project.root)])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("Job"))
    assert line.startswith(f"Job {job_id} (wait): interrupted (started ")
    assert f"process {child.pid} is gone" in line and "running" not in line

    # the Jobs page of a server that was already up (no start-up recovery) marks it failed
    add_user(project, "vic", PASSWORD, "viewer")
    c = create_app({"PROJECT": project, "TESTING": True, "RECOVER_JOBS": False}).test_client()
    login(c, "vic")
    row = c.get(f"/jobs/{job_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "failed" in row and "interrupted" in row and "every 1s" not in row
    assert jobs.get_job(project, job_id)["state"] == "failed"
    assert summarize(project)["active_jobs"] == []
