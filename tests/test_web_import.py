"""Import from the browser: real ZIPs uploaded through the Flask test client, a folder below the
data root, the report on the job's page, limits, paths that escape the root, roles."""

from __future__ import annotations

import csv
import html
import io
import os
import shutil
import time
import zipfile

import pytest
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from morphocluster import jobs
from morphocluster.store import Job, Meta, Object
from test_jobs_cancel import CLASSES, assert_nothing_stored, class_folders, wait, zip_folder
from test_web_fixtures import PASSWORD, login

pytestmark = pytest.mark.usefixtures("shared_data")


@pytest.fixture
def make_app(project, tmp_path):
    """Return a function: the app of a fresh project with users ada (admin), ann, vic; config
    overrides as keyword arguments."""
    from morphocluster.users import add_user
    from morphocluster.web import create_app

    for name, role in (("ada", "admin"), ("ann", "annotator"), ("vic", "viewer")):
        add_user(project, name, PASSWORD, role)

    def _make(**config):
        return create_app({"PROJECT": project, "TESTING": True, **config})

    return _make


def client(app, name="ada"):
    c = app.test_client()
    return c, login(c, name)


def upload(c, token, data: bytes, name="upload.zip", **query):
    qs = "&".join(f"{k}={v}" for k, v in {"name": name, **query}.items())
    return c.post(f"/import/upload?{qs}", data=data,
                  headers={"X-CSRFToken": token, "Content-Type": "application/zip"})


def no_uploads(p) -> bool:
    up = p.root / "uploads"
    return not up.exists() or not any(up.iterdir())


def n_objects(p) -> int:
    with p.session() as s:
        return s.scalar(select(func.count(Object.id)))


def test_upload_an_ecotaxa_zip(make_app, project, shared_data):
    c, token = client(make_app())
    page = c.get("/import/").get_data(as_text=True)
    assert 'data-upload-url="/import/upload"' in page and "upload.js" in page
    assert "--data-root" in page  # no data root: the page says how to have one
    data = (shared_data / "ecotaxa-samples" / "import_test.zip").read_bytes()
    resp = upload(c, token, data, name="import_test.zip")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["url"] == f"/jobs/{resp.get_json()['job']}/details"
    job = wait(project, resp.get_json()["job"])
    assert job["state"] == "done", job["error"]
    assert n_objects(project) == 8 and job["message"].startswith("added 8,")
    with project.session() as s:
        assert s.scalar(select(func.count(Object.id)).where(Object.imported_label.is_not(None))) > 0
    assert no_uploads(project)  # the upload is deleted after the job
    details = c.get(resp.get_json()["url"]).get_data(as_text=True)
    assert "Source: import_test.zip" in details and "Download the whole report" in details
    assert str(project.root) not in details


def test_upload_class_folders_and_the_job_row(make_app, project, shared_data, tmp_path):
    folder = class_folders(shared_data, tmp_path / "classes", 5)
    data = zip_folder(folder, tmp_path / "classes.zip").read_bytes()
    c, token = client(make_app())
    resp = upload(c, token, data, name="my classes.zip", labels_from_folders="1")
    job = wait(project, resp.get_json()["job"])
    assert job["state"] == "done", job["error"]
    with project.session() as s:
        labels = dict(s.execute(select(Object.imported_label, func.count()).group_by(Object.imported_label)).all())
    assert labels == {c: 5 for c in CLASSES}
    row = c.get(f"/jobs/{job['id']}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "added 15" in row and "every 1s" not in row and "Cancel" not in row


def test_report_of_a_bad_zip_lists_file_and_line(make_app, project, shared_data, tmp_path):
    imgs = sorted((shared_data / "planktonset-dev" / CLASSES[0]).iterdir())[:2]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.csv", "object_id,path\nok1,a.jpg\nlost,missing.jpg\nbroken,b.jpg\nok1,a.jpg\n")
        zf.write(imgs[0], "a.jpg")
        zf.writestr("b.jpg", imgs[1].read_bytes()[:200])  # a cut-off JPEG
    c, token = client(make_app())
    job = wait(project, upload(c, token, buf.getvalue(), name="bad.zip").get_json()["job"])
    assert job["state"] == "done" and "3 problems" in job["message"] and n_objects(project) == 1
    page = c.get(f"/jobs/{job['id']}/details").get_data(as_text=True)
    for line in ("3", "4", "5"):
        assert f"<td>bad.zip/index.csv</td><td>{line}</td>" in page
    assert "missing.jpg" in page and "duplicate object id" in page and str(project.root) not in page
    resp = c.get(f"/jobs/{job['id']}/report.tsv")
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert f"import-job-{job['id']}-report.tsv" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True)), delimiter="\t"))
    problems = [r for r in rows if r["kind"] == "problem"]
    assert sorted((r["file"], r["line"]) for r in problems) == [("bad.zip/index.csv", n) for n in ("3", "4", "5")]


def test_failed_upload_import_says_why(make_app, project, shared_data):
    c, token = client(make_app())
    not_zip = next((shared_data / "planktonset-dev" / CLASSES[0]).iterdir()).read_bytes()
    job = wait(project, upload(c, token, not_zip, name="photo.zip").get_json()["job"])
    assert job["state"] == "failed" and "not a readable ZIP file" in job["error"]
    page = c.get(f"/jobs/{job['id']}/details").get_data(as_text=True)
    assert "not a readable ZIP file" in page and "Traceback" in page
    assert_nothing_stored(project)
    # every row bad: nothing imported is a failure, and the report says which rows
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.csv", "object_id,path\nx,missing.jpg\n")
    job = wait(project, upload(c, token, buf.getvalue(), name="empty.zip").get_json()["job"])
    assert job["state"] == "failed" and "nothing was imported: 1 problems" in job["error"]
    assert "<td>empty.zip/index.csv</td><td>2</td>" in c.get(f"/jobs/{job['id']}/details").get_data(as_text=True)


def test_upload_over_the_limit_is_refused_before_it_is_stored(make_app, project, shared_data, tmp_path):
    folder = class_folders(shared_data, tmp_path / "big", 10)
    data = zip_folder(folder, tmp_path / "big.zip").read_bytes()
    limit = len(data) // 2
    app = make_app(MAX_UPLOAD_BYTES=limit)
    c, token = client(app)
    assert f'data-max-bytes="{limit}"' in c.get("/import/").get_data(as_text=True)
    resp = upload(c, token, data)  # Content-Length says it: refused before a byte is read
    assert resp.status_code == 413 and "above the upload limit" in resp.get_json()["error"]
    assert not (project.root / "uploads").exists()
    # no Content-Length (a chunked body): stopped at the limit, the partial file deleted
    env = EnvironBuilder(path="/import/upload?name=big.zip", method="POST", input_stream=io.BytesIO(data),
                         headers={"X-CSRFToken": token, "Content-Type": "application/zip"}).get_environ()
    del env["CONTENT_LENGTH"]
    env["wsgi.input_terminated"] = True
    resp = c.open(Request(env))  # a Request is run as it is; an environ would get its length back
    assert resp.status_code == 413 and "nothing was stored" in resp.get_json()["error"]
    assert no_uploads(project)
    # a form (multipart) over the limit is not parsed either, not even for the CSRF check
    resp = c.post("/import/upload", data={"file": (io.BytesIO(data), "big.zip")})
    assert resp.status_code == 413
    assert jobs.list_jobs(project) == [] and n_objects(project) == 0
    # under the limit it goes through; other forms are not limited by it
    small = zip_folder(class_folders(shared_data, tmp_path / "small", 1), tmp_path / "small.zip").read_bytes()
    assert len(small) < limit
    assert wait(project, upload(c, token, small).get_json()["job"])["state"] == "done"
    assert n_objects(project) == 3


def test_upload_refused_while_a_job_runs_and_bad_options(make_app, project, shared_data):
    c, token = client(make_app())
    data = (shared_data / "ecotaxa-samples" / "import_test.zip").read_bytes()
    resp = upload(c, token, data, format="dance")
    assert resp.status_code == 400 and "format" in resp.get_json()["error"]
    resp = upload(c, token, data, max_file_size="lots")
    assert resp.status_code == 400 and "max_file_size" in resp.get_json()["error"]
    with project.transaction() as s:
        job = Job(kind="index", state="running")
        s.add(job)
        s.flush()
        s.add(Meta(key=f"job_owner:{job.id}", value=jobs._this_process()))
    resp = upload(c, token, data)
    assert resp.status_code == 409 and "still running" in resp.get_json()["error"]
    assert no_uploads(project) and n_objects(project) == 0


@pytest.fixture
def data_root(tmp_path, shared_data):
    root = tmp_path / "data-root"
    class_folders(shared_data, root / "survey" / "station-1", 3)
    outside = class_folders(shared_data, tmp_path / "outside", 2)
    os.symlink(outside, root / "out")
    return root


def test_data_root_paths_that_escape_are_refused(make_app, project, data_root, tmp_path):
    c, token = client(make_app(DATA_ROOT=str(data_root)))
    page = c.get("/import/").get_data(as_text=True)
    assert '<option value="survey">' in page and str(data_root) in page
    headers = {"X-CSRFToken": token, "HX-Request": "true"}
    for path, why in (("../outside", "'..' is not allowed"), ("survey/../../outside", "'..' is not allowed"),
                      (str(tmp_path / "outside"), "not an absolute one"), ("/etc", "not an absolute one"),
                      (str(data_root / "survey"), "not an absolute one"), ("out", "outside the data root"),
                      ("out/acantharia_protist", "outside the data root"), ("nothing-here", "no such folder"),
                      ("", "name a folder")):
        resp = c.post("/import/folder", data={"path": path}, headers=headers)
        text = html.unescape(resp.get_data(as_text=True))
        assert resp.status_code == 400 and why in text, (path, text)
    assert jobs.list_jobs(project) == [] and n_objects(project) == 0
    resp = c.post("/import/folder", data={"path": "survey/station-1", "labels_from_folders": "1"}, headers=headers)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"].startswith("/jobs/")
    job = wait(project, jobs.list_jobs(project)[0]["id"])
    assert job["state"] == "done" and n_objects(project) == 9
    assert (data_root / "survey" / "station-1" / CLASSES[0]).is_dir()  # a data-root source is left alone
    # no data root: refused, and the page says how to give one
    c2, token2 = client(make_app())
    resp = c2.post("/import/folder", data={"path": "survey"}, headers={"X-CSRFToken": token2})
    assert resp.status_code == 400 and "--data-root" in resp.get_data(as_text=True)


def folder_job(c, token, path, **form):
    resp = c.post("/import/folder", data={"path": path, **form},
                  headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    return resp.headers["HX-Redirect"].split("/")[2]


def test_links_inside_a_data_root_folder_that_lead_out_are_refused(make_app, project, data_root, tmp_path):
    """A real image linked from outside the root, or a linked folder, stops the whole import."""
    app = make_app(DATA_ROOT=str(data_root))
    c, token = client(app)
    secret = next((tmp_path / "outside" / CLASSES[0]).iterdir())  # a real image outside the root
    linked = data_root / "linked"
    shutil.copytree(data_root / "survey" / "station-1", linked)
    os.symlink(secret, linked / CLASSES[1] / "zz-borrowed.jpg")
    job = wait(project, int(folder_job(c, token, "linked", labels_from_folders="1")))
    assert job["state"] == "failed", job
    assert f"linked/{CLASSES[1]}/zz-borrowed.jpg" in job["error"] and "outside the data root" in job["error"]
    assert "nothing was imported" in job["error"] and str(tmp_path / "outside") not in job["error"]
    assert_nothing_stored(project)
    page = html.unescape(c.get(f"/jobs/{job['id']}/details").get_data(as_text=True))
    assert f"linked/{CLASSES[1]}/zz-borrowed.jpg" in page and "Source: linked" in page
    # an EcoTaxa table naming an image through a linked folder: the folder link is found too
    eco = data_root / "eco"
    eco.mkdir()
    os.symlink(tmp_path / "outside" / CLASSES[0], eco / "imgs")
    (eco / "ecotaxa_x.tsv").write_text(f"object_id\timg_file_name\n[t]\t[t]\na\timgs/{secret.name}\n")
    job = wait(project, int(folder_job(c, token, "eco")))
    assert job["state"] == "failed" and "eco/imgs" in job["error"]
    # the whole root names the top-level link `out` (and is refused, not half imported)
    job = wait(project, int(folder_job(c, token, ".")))
    assert job["state"] == "failed" and "out" in job["error"] and "3 entries" in job["error"], job["error"]
    assert_nothing_stored(project)
    # links that stay inside the root are followed, and a good folder beside the bad ones imports
    os.unlink(linked / CLASSES[1] / "zz-borrowed.jpg")
    inside = next((data_root / "survey" / "station-1" / CLASSES[0]).iterdir())
    os.symlink(inside, linked / CLASSES[1] / "zz-inside.jpg")
    job = wait(project, int(folder_job(c, token, "linked")))
    assert job["state"] == "done", job["error"]
    assert n_objects(project) == 10  # 9 copies and the image linked from inside the root


def test_an_upload_is_recorded_by_the_name_its_user_gave(make_app, project, shared_data, tmp_path):
    from morphocluster.store import ImportRun

    folder = class_folders(shared_data, tmp_path / "named", 1)
    data = zip_folder(folder, tmp_path / "named.zip").read_bytes()
    c, token = client(make_app())
    name = "Station 3 <b>night</b> &amp; day\n2024.zip"
    resp = c.post("/import/upload", query_string={"name": name}, data=data,
                  headers={"X-CSRFToken": token, "Content-Type": "application/zip"})
    job = wait(project, resp.get_json()["job"])
    assert job["state"] == "done", job["error"]
    shown = "Station 3 <b>night</b> &amp; day 2024.zip"  # the newline is gone, the rest is text
    with project.session() as s:
        run = s.scalars(select(ImportRun)).one()
        assert run.source == shown and run.report["sources"] == [shown] and list(run.report["formats"]) == [shown]
        stored = repr((run.source, run.report))
    assert str(project.root) not in stored and "uploads" not in stored and "up-" not in stored
    assert job["params"]["name"] == shown and str(project.root) not in job["message"]
    page = c.get(f"/jobs/{job['id']}/details").get_data(as_text=True)
    assert "Source: Station 3 &lt;b&gt;night&lt;/b&gt; &amp;amp; day 2024.zip" in page and "<b>night" not in page
    # a name with no characters left, and a problem in the ZIP: reported under the stand-in name
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.csv", "object_id,path\nx,missing.jpg\n")
        zf.write(next(folder.rglob("*.jpg")), "a.jpg")
    resp = c.post("/import/upload", query_string={"name": "\x00\x01"}, data=buf.getvalue(),
                  headers={"X-CSRFToken": token, "Content-Type": "application/zip"})
    job = wait(project, resp.get_json()["job"])
    assert job["state"] == "failed" and job["params"]["name"] == "upload.zip"
    rows = c.get(f"/jobs/{job['id']}/report.tsv").get_data(as_text=True)
    assert "upload.zip/index.csv\t2" in rows and str(project.root) not in rows


def test_import_and_prepare_chains_the_next_jobs(make_app, project, data_root):
    c, token = client(make_app(DATA_ROOT=str(data_root)))
    resp = c.post("/import/folder", data={"path": "survey", "then": "prepare"},
                  headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert resp.status_code == 204
    first = jobs.list_jobs(project)[-1]
    assert [s["kind"] for s in first["params"]["then"]] == ["features", "index", "cluster"]
    assert wait(project, first["id"])["state"] == "done"
    t0 = time.time()
    while len(jobs.list_jobs(project)) < 2:  # the chain started the features job
        assert time.time() - t0 < 30
        time.sleep(0.05)
    features = jobs.list_jobs(project)[0]
    assert features["kind"] == "features" and [s["kind"] for s in features["params"]["then"]] == ["index", "cluster"]
    row = c.get(f"/jobs/{features['id']}", headers={"HX-Request": "true"}).get_data(as_text=True)
    if features["state"] in jobs.ACTIVE_STATES:
        assert f"/jobs/{features['id']}/cancel" in row
    resp = c.post(f"/jobs/{features['id']}/cancel", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert resp.status_code in (200, 409)
    ended = wait(project, features["id"], timeout=300)
    if resp.status_code == 200:
        assert ended["state"] == "cancelled" and "(cancelling)" in resp.get_data(as_text=True)
        time.sleep(0.3)
        assert len(jobs.list_jobs(project)) == 2  # the chain stopped with it
    assert c.post(f"/jobs/{features['id']}/cancel",
                  headers={"X-CSRFToken": token, "HX-Request": "true"}).status_code == 409


def test_cancel_button_only_for_admins(make_app, project):
    with project.transaction() as s:
        job = Job(kind="cluster", state="running", progress=0.2)
        s.add(job)
        s.flush()
        job_id = job.id
        s.add(Meta(key=f"job_owner:{job_id}", value=jobs._this_process()))
    app = make_app()
    admin, token = client(app, "ada")
    ann, ann_token = client(app, "ann")
    hx = {"HX-Request": "true"}
    assert f"/jobs/{job_id}/cancel" in admin.get(f"/jobs/{job_id}", headers=hx).get_data(as_text=True)
    assert "/import/" in admin.get("/jobs/").get_data(as_text=True)
    page = admin.get(f"/jobs/{job_id}/details").get_data(as_text=True)  # the job's page polls as a whole
    assert 'hx-select="#job-page"' in page and page.count("every 1s") == 1 and "/cancel" in page
    row = ann.get(f"/jobs/{job_id}", headers=hx).get_data(as_text=True)
    assert "/cancel" not in row and "/details" not in row
    assert ann.post(f"/jobs/{job_id}/cancel", headers={"X-CSRFToken": ann_token}).status_code == 403
    assert admin.post(f"/jobs/{job_id}/cancel").status_code == 400  # no CSRF token
    resp = admin.post(f"/jobs/{job_id}/cancel", headers={"X-CSRFToken": token, **hx})
    assert resp.status_code == 200 and "(cancelling)" in resp.get_data(as_text=True)
    assert jobs.get_job(project, job_id)["cancelling"]
    assert admin.post("/jobs/999999/cancel", headers={"X-CSRFToken": token}).status_code == 404


def test_non_admins_cannot_import(make_app, project, data_root, shared_data):
    app = make_app(DATA_ROOT=str(data_root))
    data = (shared_data / "ecotaxa-samples" / "import_test.zip").read_bytes()
    for name in ("ann", "vic"):
        c, token = client(app, name)
        assert c.get("/import/").status_code == 403
        assert upload(c, token, data).status_code == 403
        assert c.post("/import/folder", data={"path": "survey"}, headers={"X-CSRFToken": token}).status_code == 403
        assert "/import/" not in c.get("/jobs/").get_data(as_text=True)
    admin, token = client(app)
    job = wait(project, upload(admin, token, data).get_json()["job"])
    for name in ("ann", "vic"):
        c, _ = client(app, name)
        assert c.get(f"/jobs/{job['id']}/details").status_code == 403
        assert c.get(f"/jobs/{job['id']}/report.tsv").status_code == 403
    assert admin.get("/jobs/999999/report.tsv").status_code == 404
    assert no_uploads(project)
    anon = app.test_client()
    assert anon.get("/import/").status_code == 302  # to the login page


@pytest.mark.browser
def test_browser_upload_and_folder_under_a_url_prefix(make_app, project, shared_data, data_root, tmp_path):
    """Chromium: upload a real ZIP on the import page of an app mounted under /p/demo, land on the
    job's page and see it end with its report; a ZIP over the limit is refused in the page; a
    data-root path that escapes shows its message; no Content-Security-Policy violation."""
    import re

    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.wrappers import Response

    from test_browser import ARGS, CHROMIUM, serving

    if CHROMIUM is None:
        pytest.skip("chromium not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    zip_path = shared_data / "ecotaxa-samples" / "import_test.zip"
    big = zip_folder(class_folders(shared_data, tmp_path / "big", 10), tmp_path / "big.zip")
    app = make_app(DATA_ROOT=str(data_root), MAX_UPLOAD_BYTES=big.stat().st_size - 1)
    wsgi = DispatcherMiddleware(Response("not here", 404), {"/p/demo": app})
    with serving(wsgi) as base, playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page()
        pg.set_default_timeout(20_000)
        csp = []
        pg.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
        pg.goto(base + "/p/demo/login")
        pg.fill("input[name=username]", "ada")
        pg.fill("input[name=password]", PASSWORD)
        pg.click("button:has-text('Log in')")
        pg.wait_for_url(re.compile(r"/p/demo/$"))
        pg.goto(base + "/p/demo/jobs/")
        pg.click("a:has-text('Import…')")
        pg.wait_for_url(re.compile(r"/p/demo/import/$"))

        pg.set_input_files("#upload-form input[type=file]", str(big))
        pg.click("#upload-form button[name=then][value='']")
        pg.wait_for_selector("#upload-status.error:has-text('above the upload limit')")
        assert no_uploads(project) and jobs.list_jobs(project) == []

        pg.fill("input[name=path]", "../outside")
        pg.click("form[hx-post] button[name=then][value='']")
        pg.wait_for_selector("#toast:has-text('is not allowed')")
        assert jobs.list_jobs(project) == []

        pg.set_input_files("#upload-form input[type=file]", str(zip_path))
        pg.click("#upload-form button[name=then][value='']")
        pg.wait_for_url(re.compile(r"/p/demo/jobs/\d+/details$"))
        pg.wait_for_selector("#job-page h1:has-text('done')")
        pg.wait_for_selector("text=Download the whole report")
        assert "added 8" in pg.inner_text("#job-page")
        browser.close()
    assert csp == [] and n_objects(project) == 8 and no_uploads(project)
