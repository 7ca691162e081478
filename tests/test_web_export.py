"""Export from the browser: the preview's counts, the job, the download of every format, roles."""

from __future__ import annotations

import csv
import io
import os
import re
import time
import zipfile

import h5py
import pytest
from sqlalchemy import select

from morphocluster import jobs
from morphocluster.export.job import KEEP, clean, export_file, exports_dir, new_params, run_export
from morphocluster.store import Job, Object, User
from morphocluster.workflow.validate import approve

from test_web_fixtures import (CLASSES, IN_NODE, app, client_as, login, web_project,  # noqa: F401
                               web_template)

pytestmark = pytest.mark.usefixtures("shared_data")

NUMBERS = ("objects", "labelled", "validated", "predicted", "unlabelled", "labels")
OPTIONS = [(fmt, labels, images) for fmt in ("ecotaxa", "csv", "imagefolder", "hdf5", "morphocluster-tree")
           for labels in ("validated", "all") for images in ((True, False) if fmt == "ecotaxa" else (False,))]


@pytest.fixture
def sorted_project(web_project):
    """The web project with two named nodes (one with predicted members), one unnamed, one not
    validated: labelled, predicted, unnamed and unlabelled objects all occur."""
    p, info = web_project
    with p.session() as s:
        ada = s.scalar(select(User.id).where(User.username == "ada"))
    first, second, third = (info["nodes"][c] for c in CLASSES[:3])
    members = info["by_class"][CLASSES[0]][:IN_NODE] + info["outliers"]
    approve(p, ada, first, name="chaetognath", seen_pks=members[:10])  # 8 more are predicted
    approve(p, ada, second, name='copépode "calanoïde" & co')
    approve(p, ada, third)  # validated but nameless: its objects carry no label
    return p, info


def hx(token):
    return {"HX-Request": "true", "X-CSRFToken": token}


def preview(c, fmt, labels, images, status=None):
    q = {"format": fmt, "labels": labels, **({"with_images": "1"} if images else {}),
         **({"status": status} if status else {})}
    resp = c.get("/export/preview", query_string=q, headers={"HX-Request": "true"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    return {k: int(re.search(rf'id="x-{k}">([\d,]+)<', html).group(1).replace(",", "")) for k in NUMBERS}, html


def start(c, token, fmt, labels, images, status=None):
    data = {"format": fmt, "labels": labels, **({"with_images": "1"} if images else {}),
            **({"status": status} if status else {})}
    return c.post("/export/start", data=data, headers=hx(token))


def finished(p, job_id, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = jobs.get_job(p, job_id)
        if job["state"] not in jobs.ACTIVE_STATES:
            return job
        time.sleep(0.05)
    raise AssertionError(f"export job {job_id} did not finish")


def export_via_web(c, token, p, fmt, labels, images, status=None):
    """Start an export, wait for it, follow the row's download link; return (job, response)."""
    resp = start(c, token, fmt, labels, images, status)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    job_id = int(re.search(r'id="export-job-(\d+)"', resp.get_data(as_text=True)).group(1))
    job = finished(p, job_id)
    assert job["state"] == "done", job["error"]
    row = c.get(f"/export/job/{job_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hx-trigger" not in row  # polling stops once done
    link = re.search(r'href="(/export/download/[^"]+)"', row).group(1)
    got = c.get(link)
    assert got.status_code == 200
    return job, got


def read_back(fmt, images, data, tmp_path):
    """Return [(object id, label, status)] of a downloaded file, and the image files it holds."""
    if fmt == "ecotaxa":
        if images:
            z = zipfile.ZipFile(io.BytesIO(data))
            text, names = z.read("ecotaxa_export.tsv").decode(), set(z.namelist())
        else:
            text, names = data.decode(), set()
        rows = list(csv.DictReader(io.StringIO(text), delimiter="\t"))[1:]  # the [t]/[f] row
        if images:
            assert all(r["img_file_name"] in names for r in rows)  # every row's image is in it
            assert len(names) == len(rows) + 1
        return [(r["object_id"], r["object_annotation_category"], r["object_annotation_status"])
                for r in rows], len(names) - 1 if images else 0
    if fmt == "csv":
        return [(r["object_id"], r["label"], r["status"])
                for r in csv.DictReader(io.StringIO(data.decode()))], 0
    if fmt == "imagefolder":
        z = zipfile.ZipFile(io.BytesIO(data))
        rows = list(csv.DictReader(io.StringIO(z.read("index.csv").decode())))
        for r in rows:  # the file lies in its label's folder (unlabelled ones at the top)
            assert z.getinfo(r["file"]).file_size > 0
            assert ("/" in r["file"]) == bool(r["label"])
        return [(r["object_id"], r["label"], r["status"]) for r in rows], len(rows)
    if fmt == "hdf5":
        path = tmp_path / "back.h5"
        path.write_bytes(data)
        with h5py.File(path, "r") as h:
            assert h["features"].shape[0] == len(h["object_id"]) and h["features"].shape[1] > 0
            return list(zip(h["object_id"].asstr()[:], h["label"].asstr()[:], h["status"].asstr()[:])), 0
    z = zipfile.ZipFile(io.BytesIO(data))  # the tree ZIP: members of approved nodes are labelled
    nodes = {r["node_id"]: r for r in csv.DictReader(io.StringIO(z.read("nodes.csv").decode()))}
    rows = list(csv.DictReader(io.StringIO(z.read("objects.csv").decode())))
    return [(r["object_id"], nodes[r["node_id"]]["name"] or r["node_id"]
             if nodes[r["node_id"]]["approved"] == "True" else "", r["status"]) for r in rows], 0


@pytest.mark.parametrize("fmt,labels,images", OPTIONS)
def test_preview_counts_match_the_downloaded_file(sorted_project, client_as, tmp_path, fmt, labels, images):
    p, _ = sorted_project
    c, token = client_as("ann")
    shown, html = preview(c, fmt, labels, images)
    job, got = export_via_web(c, token, p, fmt, labels, images)
    rows, n_images = read_back(fmt, images, got.data, tmp_path)
    labelled = [r for r in rows if r[1]]
    assert shown["objects"] == len(rows) == len({r[0] for r in rows})
    assert shown["labelled"] == len(labelled) and shown["unlabelled"] == len(rows) - len(labelled)
    assert shown["validated"] == sum(r[2] == "validated" for r in labelled)
    assert shown["predicted"] == sum(r[2] == "predicted" for r in labelled) > 0
    if fmt != "morphocluster-tree":
        assert shown["labels"] == len({r[1] for r in labelled}) == 2
        assert {"chaetognath", 'copépode "calanoïde" & co'} == {r[1] for r in labelled}
    with p.session() as s:
        total = s.query(Object).count()
    if labels == "all":
        assert len(rows) == total
    else:
        assert len(rows) < total
    if images or fmt == "imagefolder":
        assert n_images == len(rows)  # one image per object here
    if fmt != "morphocluster-tree":  # the nameless validated node: said on the page, not exported
        assert "validated nodes without a name" in html
    assert f"{shown['objects']:,} objects" in job["message"]
    assert got.headers["Content-Disposition"].startswith("attachment;")
    name = re.search(r'filename=([^;]+)', got.headers["Content-Disposition"]).group(1).strip('"')
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", name) and name.endswith((".zip", ".csv", ".tsv", ".h5"))


@pytest.mark.parametrize("fmt,labels,images", [(f, "all", i) for f, _, i in OPTIONS if _ == "all"]
                         + [("csv", "validated", False), ("morphocluster-tree", "validated", False)])
def test_validated_only_preview_matches_the_file(sorted_project, client_as, tmp_path, fmt, labels, images):
    p, _ = sorted_project
    c, token = client_as("ann")
    before, _ = preview(c, fmt, labels, images)
    shown, html = preview(c, fmt, labels, images, "validated")
    job, got = export_via_web(c, token, p, fmt, labels, images, "validated")
    rows, _ = read_back(fmt, images, got.data, tmp_path)
    labelled = [r for r in rows if r[1]]
    assert shown["objects"] == len(rows) and shown["labelled"] == len(labelled)
    assert shown["validated"] == len(labelled) == before["validated"] > 0  # the 10 seen ones
    assert shown["predicted"] == 0 and all(r[2] == "validated" for r in labelled)
    assert f"{before['predicted']:,} predicted objects" in html
    if labels == "all":
        assert shown["objects"] == before["objects"]
        assert shown["unlabelled"] == before["unlabelled"] + before["predicted"]
    else:
        assert shown["objects"] == before["objects"] - before["predicted"]
    assert "_validated-only_" in got.headers["Content-Disposition"]
    row = c.get(f"/export/job/{job['id']}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "validated only" in row


def test_the_page_offers_the_label_choice(sorted_project, client_as):
    c, _ = client_as("ann")
    page = c.get("/export/?status=validated").get_data(as_text=True)
    assert 'name="status" value="any"' in page and 'name="status" value="validated" checked' in page
    assert "status=validated" in page  # the first preview counts with it
    assert 'name="labels" value="validated" checked' in page and 'name="format"' in page
    assert c.get("/export/preview?format=csv&status=seen").status_code == 400


def test_ecotaxa_zip_with_images_imports_again_with_the_same_objects_and_labels(sorted_project, client_as, tmp_path):
    from morphocluster.importers import import_sources
    from morphocluster.labels import object_labels
    from morphocluster.project import Project

    p, _ = sorted_project
    c, token = client_as("ann")
    _, got = export_via_web(c, token, p, "ecotaxa", "all", True)
    (tmp_path / "in.zip").write_bytes(got.data)
    b = Project.create(tmp_path / "second")
    back = import_sources(b, [tmp_path / "in.zip"], progress=False)
    assert back.failed == 0
    ours = {r.object_id: r for r in object_labels(p, "all")}
    with b.session() as s:
        after = {o.object_id: o for o in s.scalars(select(Object))}
    assert set(after) == set(ours)
    for oid, r in ours.items():
        assert (after[oid].imported_label, after[oid].imported_status) == (r.label, r.status)
        if r.path:
            assert b.image_path(after[oid].path).read_bytes() == p.image_path(r.path).read_bytes()
    b.close()


def test_download_supports_ranges_and_conditional_requests(sorted_project, client_as):
    p, _ = sorted_project
    c, token = client_as("ann")
    _, got = export_via_web(c, token, p, "csv", "all", False)
    link = got.request.path
    part = c.get(link, headers={"Range": "bytes=0-8"})
    assert part.status_code == 206 and part.data == got.data[:9] == b"object_id"
    again = c.get(link, headers={"If-None-Match": got.headers["ETag"]})
    assert again.status_code == 304


def test_viewers_cannot_export_annotators_and_admins_can(sorted_project, client_as):
    p, _ = sorted_project
    c, token = client_as("ann")
    _, got = export_via_web(c, token, p, "csv", "validated", False)
    link = got.request.path
    v, vtoken = client_as("vic")
    assert "/export/" not in v.get("/").get_data(as_text=True)  # no link to it
    for resp in (v.get("/export/"), v.get("/export/preview?format=csv"), v.get(link),
                 start(v, vtoken, "csv", "all", False)):
        assert resp.status_code == 403
    a, _ = client_as("ada")
    page = a.get("/export/")
    assert page.status_code == 200 and 'href="/export/"' in page.get_data(as_text=True)
    assert a.get(link).data == got.data  # anyone who may export downloads the project's exports


def test_unknown_malformed_and_other_project_tokens_are_404(sorted_project, client_as, web_template, tmp_path):
    import shutil

    from morphocluster.project import Project
    from morphocluster.web import create_app

    p, _ = sorted_project
    c, token = client_as("ann")
    _, got = export_via_web(c, token, p, "csv", "all", False)
    real = got.request.path.rsplit("/", 1)[1]
    for bad in (new_params("csv")["token"], "..", "x", real[:-1] + ".", "%2e%2e%2fproject.sqlite"):
        assert c.get(f"/export/download/{bad}").status_code == 404, bad
    assert c.get("/export/job/999999").status_code == 404
    shutil.copytree(web_template[0], tmp_path / "other")
    other = Project.open(tmp_path / "other")
    oc = create_app({"PROJECT": other, "TESTING": True}).test_client()
    login(oc, "ann")
    assert oc.get(f"/export/download/{real}").status_code == 404  # another project's token
    other.close()


def test_a_busy_project_says_so_with_409(sorted_project, client_as):
    p, _ = sorted_project
    with p.transaction() as s:
        s.add(Job(kind="cluster", state="running", params={}))
    c, token = client_as("ann")
    assert "is running: an export starts once it has ended" in c.get("/export/").get_data(as_text=True)
    resp = start(c, token, "csv", "all", False)
    assert resp.status_code == 409 and "Another job is running" in resp.get_data(as_text=True)
    assert not exports_dir(p).exists() or not any(exports_dir(p).iterdir())


def test_nothing_to_export_is_refused_before_a_job_starts(web_project, client_as):
    p, _ = web_project  # no node validated: no labelled object
    c, token = client_as("ann")
    shown, html = preview(c, "csv", "validated", False)
    assert shown["objects"] == 0 and "no object has a label yet" in html and "disabled" in html
    resp = start(c, token, "csv", "validated", False)
    assert resp.status_code == 409 and "no object has a label yet" in resp.get_data(as_text=True)
    assert jobs.list_jobs(p) == []


class Stop(Exception):
    pass


@pytest.mark.parametrize("fmt", ["ecotaxa", "imagefolder", "morphocluster-tree", "hdf5", "csv"])
def test_a_failed_or_cancelled_export_leaves_no_file(sorted_project, fmt):
    p, _ = sorted_project
    calls = []

    def progress(fraction=None, message=None):  # the second call comes from inside the writer
        calls.append(message)
        if len(calls) == 2:
            raise Stop("cancelled")

    params = new_params(fmt, "all", True)
    with pytest.raises(Stop):
        run_export(p, params, progress)
    assert len(calls) == 2 and "% of the objects written" in calls[1]
    assert export_file(p, params["token"]) is None
    assert list(exports_dir(p).iterdir()) == []  # no folder, no temporary file


def test_a_failed_job_shows_its_error_and_leaves_no_file(sorted_project, client_as):
    p, _ = sorted_project
    params = new_params("hdf5", "all")
    os.remove(p.features_dir / f"{p.config['active_features']}.h5")  # gone after the page checked
    job_id = jobs.start_job(p, "export", params, wait=True)
    c, _ = client_as("ann")
    row = c.get(f"/export/job/{job_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'class="job failed"' in row and "has no file" in row and "Download" not in row
    assert not (exports_dir(p) / params["token"]).exists()


def test_old_exports_are_removed_and_the_newest_kept(sorted_project):
    p, _ = sorted_project
    root = exports_dir(p)
    made = []
    for i in range(KEEP + 3):
        d = root / new_params("csv")["token"]
        d.mkdir(parents=True)
        (d / "x.csv").write_text("object_id\n")
        t = time.time() - 3600 * (KEEP + 3 - i)  # hours old, the last one newest
        os.utime(d, (t, t))
        made.append(d)
    ancient = root / new_params("csv")["token"]
    ancient.mkdir()
    os.utime(ancient, (time.time() - 2 * 86400,) * 2)
    (root / "not-a-token.txt").write_text("left alone")
    assert clean(p) == 4
    assert [d.exists() for d in made] == [False] * 3 + [True] * KEEP and not ancient.exists()
    assert (root / "not-a-token.txt").exists()


def test_pages_work_under_a_url_prefix(sorted_project, client_as):
    p, _ = sorted_project
    c, token = client_as("ann")
    env = {"SCRIPT_NAME": "/p/demo"}
    page = c.get("/export/", environ_overrides=env).get_data(as_text=True)
    urls = re.findall(r'(?:href|hx-get|hx-post)="(/[^"]*)"', page)
    assert urls and all(u.startswith("/p/demo/") for u in urls), urls
    resp = c.post("/export/start", data={"format": "csv", "labels": "all"}, headers=hx(token),
                  environ_overrides=env)
    html = resp.get_data(as_text=True)
    job_id = int(re.search(r'id="export-job-(\d+)"', html).group(1))
    urls = re.findall(r'(?:href|hx-get|hx-post)="(/[^"]*)"', html)
    assert all(u.startswith("/p/demo/export/") for u in urls), urls
    finished(p, job_id)
    row = c.get(f"/export/job/{job_id}", environ_overrides=env).get_data(as_text=True)
    assert re.search(r'href="/p/demo/export/download/[A-Za-z0-9_-]+"', row)


def test_the_preview_follows_decisions(sorted_project, client_as):
    p, info = sorted_project
    c, _ = client_as("ann")
    before, _ = preview(c, "csv", "validated", False)
    with p.session() as s:
        ada = s.scalar(select(User.id).where(User.username == "ada"))
    approve(p, ada, info["nodes"][CLASSES[3]], name="solmaris")  # a decision: counted again
    after, _ = preview(c, "csv", "validated", False)
    assert after["objects"] == before["objects"] + IN_NODE and after["labels"] == 3
    assert after["validated"] == before["validated"] + IN_NODE


@pytest.mark.browser
def test_browser_export_with_the_keyboard_and_download(sorted_project, tmp_path):
    from test_browser import CHROMIUM, log_in, serving
    from test_browser_csp import RECORD  # records Content-Security-Policy violations

    if CHROMIUM is None:
        pytest.skip("chromium not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    from morphocluster.web import create_app

    p, _ = sorted_project
    with p.session() as s:
        total = s.query(Object).count()
    with serving(create_app({"PROJECT": p})) as base, playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        pg = browser.new_page()
        pg.set_default_timeout(20_000)
        pg.add_init_script(RECORD)
        log_in(pg, base, "ann")
        pg.click("nav a:has-text('Export')")
        pg.wait_for_selector("#x-objects")
        labelled = int(pg.inner_text("#x-labelled"))
        pg.check("input[name=format][value=csv]")
        pg.check("input[name=labels][value=all]")
        pg.wait_for_function(f"() => document.getElementById('x-objects').textContent === '{total}'")
        pg.keyboard.press("Escape")  # out of the field: keys act on the page
        pg.keyboard.press("e")
        pg.wait_for_selector("#toast:has-text('Export started')")
        link = pg.wait_for_selector("#export-jobs a:has-text('Download')", timeout=60_000)
        with pg.expect_download() as dl:
            link.click()
        path = dl.value.path()
        rows = list(csv.DictReader(open(path, encoding="utf-8")))
        assert len(rows) == total and sum(1 for r in rows if r["label"]) == labelled
        assert dl.value.suggested_filename.endswith(".csv")
        assert pg.evaluate("window.__csp") == []
        browser.close()
