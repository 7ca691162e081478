"""The whole loop of issue 18 in headless Chromium, nothing but the browser after the server
starts: a server admin creates project A, uploads two real EcoTaxa ZIPs and a class-folder ZIP
of 300 real images, imports and prepares them (features, index, a clustering round), approves,
names and grows two clusters, exports an EcoTaxa ZIP with images, downloads it, creates project
B and imports the download there. B is then checked against A through the project API and the
download with pyecotaxa: the same object ids, labels, metadata and image bytes.
Run alone with `pytest -m browser tests/test_browser_loop.py`."""

from __future__ import annotations

import re
import shutil
import time
import zipfile

import pytest
from sqlalchemy import select

from morphocluster.labels import object_labels
from morphocluster.project import Project
from morphocluster.server import Server
from morphocluster.store import Meta, Object
from morphocluster.web.server import create_server_app
from test_browser import CHROMIUM, page, serving  # noqa: F401
from test_browser_csp import RECORD
from test_server import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("shared_data"),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)"),
]

ECOTAXA_ZIPS = ("import_test.zip", "UVP6_example.zip")  # 8 and 15 objects, meant to import cleanly
CLASSES = ("acantharia_protist", "chaetognath_sagitta", "copepod_cyclopoid_oithona",
           "diatom_chain_string", "fecal_pellet", "trichodesmium_puff")
PER_CLASS = 50
NAMES = ("loop-first", "loop-second")
JOB_TIMEOUT_MS = 240_000
ANNOTATION = {"object_annotation_category", "object_annotation_status", "object_annotation_person_name",
              "object_annotation_date", "object_annotation_time", "object_annotation_hierarchy"}


def class_zip(shared_data, tmp_path):
    """A ZIP of 6 x 50 real PlanktonSet images in class folders, made in tmp_path."""
    folder = tmp_path / "classes"
    for c in CLASSES:
        (folder / c).mkdir(parents=True)
        for f in sorted((shared_data / "planktonset-dev" / c).iterdir())[:PER_CLASS]:
            shutil.copy2(f, folder / c / f.name)
    dest = tmp_path / "classes.zip"
    with zipfile.ZipFile(dest, "w") as zf:
        for f in sorted(folder.rglob("*.jpg")):
            zf.write(f, f.relative_to(folder).as_posix())
    return dest


def new_project(pg, base, title):
    pg.goto(base + "/")
    pg.click("nav a:has-text('New project')")
    pg.fill("input[name=name]", title)
    pg.click("button:has-text('Create')")
    pg.wait_for_selector("text=Created project")
    name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    pg.click(f"table.projects a:text-is('{name}')")
    pg.wait_for_selector("text=Progress")
    return name


def upload(pg, path, then=""):
    """On the import page: upload `path`, land on its job's page, wait for the import to end."""
    pg.click("nav a:has-text('Jobs')")
    pg.click("a:has-text('Import…')")
    pg.set_input_files("#upload-form input[type=file]", str(path))
    pg.click(f"#upload-form button[name=then][value='{then}']")
    pg.wait_for_url(re.compile(r"/jobs/\d+/details$"))
    pg.wait_for_selector("#job-page h1:text-matches(': (done|failed|cancelled)$')", timeout=JOB_TIMEOUT_MS)
    head = pg.inner_text("#job-page h1")
    assert head.endswith(": done"), pg.inner_text("#job-page")
    return pg.inner_text("#job-page")


def wait_for_chain(pg):
    """From the import's page go to the Jobs page and, without reloading it, wait there until
    the chain's cluster round is done; return the rows' (kind, state), newest first."""
    pg.click("a:has-text('Back to the jobs')")
    pg.wait_for_selector("#job-list tr.job.done:has(td:nth-child(2):text-is('cluster'))",
                         timeout=JOB_TIMEOUT_MS)
    return pg.locator("#job-list tr").evaluate_all(
        "rs => rs.map(r => [r.children[1].textContent.trim(), r.querySelector('.state').textContent.trim()])")


def validate_and_grow(pg, name):
    """Validate the next node under `name`, then accept one whole screen of the grow page;
    return (node id, members after the growth)."""
    pg.click("nav a:has-text('Validate')")
    pg.wait_for_url(re.compile(r"/validate/\d+$"))
    node_id = int(pg.url.rsplit("/", 1)[1])
    pg.wait_for_selector("#grid .obj")
    pg.fill("input.name-input", name)
    pg.click("button:has-text('Approve & grow')")
    pg.wait_for_url(re.compile(rf"/grow/{node_id}$"))
    pg.wait_for_selector("#grid .obj")
    shown = pg.locator("#grid .obj").count()
    before = int(re.search(r"([\d,]+) member", pg.inner_text(".title .muted")).group(1).replace(",", ""))
    pg.click("button:has-text('Accept whole screen')")
    pg.wait_for_selector(f"#toast:has-text('Accepted {shown}')")
    after = int(re.search(r"([\d,]+) member", pg.inner_text(".title .muted")).group(1).replace(",", ""))
    assert after == before + shown and shown > 0
    return node_id, after


def column_types(p):
    with p.session() as s:
        return dict(map(tuple, s.get(Meta, "ecotaxa_columns").value))


def objects(p):
    with p.session() as s:
        return {o.object_id: o for o in s.scalars(select(Object))}


def test_the_whole_loop_in_the_browser(tmp_path, shared_data, page):
    t0 = time.monotonic()
    root = tmp_path / "root"
    server = Server.create(root)
    server.add_user("boss", PASSWORD, admin=True)
    zips = [shared_data / "ecotaxa-samples" / z for z in ECOTAXA_ZIPS] + [class_zip(shared_data, tmp_path)]
    pg = page
    pg.add_init_script(RECORD)  # violations of the last page, and the console's on every page:
    csp = []
    pg.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
    downloaded = tmp_path / "download.zip"
    with serving(create_server_app(server)) as base:
        pg.goto(base + "/login")
        pg.fill("input[name=username]", "boss")
        pg.fill("input[name=password]", PASSWORD)
        pg.click("button:has-text('Log in')")
        pg.wait_for_selector("h1:has-text('Projects')")

        a = new_project(pg, base, "Loop A")
        for z in zips[:-1]:
            assert "added" in upload(pg, z)
        text = upload(pg, zips[-1], then="prepare")
        assert "added 300" in text and "then features, index, cluster" in text
        chain = wait_for_chain(pg)
        assert chain == [[k, "done"] for k in ("cluster", "index", "features", "import", "import", "import")]
        t_prepared = time.monotonic() - t0

        grown = dict(validate_and_grow(pg, n) for n in NAMES)

        pg.click("nav a:has-text('Export')")
        pg.wait_for_selector("#x-objects")
        pg.check("input[name=format][value=ecotaxa]")
        pg.check("input[name=labels][value=all]")
        pg.check("input[name=with_images]")
        pg.wait_for_function("() => document.getElementById('x-objects').textContent === '323'"
                             " && document.getElementById('x-images').textContent === 'yes'")
        pg.click("#export-btn")
        pg.wait_for_selector("#toast:has-text('Export started')")
        link = pg.wait_for_selector("#export-jobs a:has-text('Download')", timeout=JOB_TIMEOUT_MS)
        with pg.expect_download() as dl:
            link.click()
        dl.value.save_as(downloaded)
        assert dl.value.suggested_filename.endswith(".zip")

        b = new_project(pg, base, "Loop B")
        assert "added 323" in upload(pg, downloaded)
        assert pg.evaluate("window.__csp") == [] and csp == []
    wall = time.monotonic() - t0
    server.close()

    pa, pb = Project.open(root / a), Project.open(root / b)
    in_a, in_b = objects(pa), objects(pb)
    labels = {r.object_id: r for r in object_labels(pa, "all")}
    assert sorted(in_b) == sorted(in_a) and len(in_a) == 323  # the same object ids
    named = {r.object_id for r in labels.values() if r.label}
    assert {labels[o].label for o in named} == set(NAMES)
    assert sum(1 for r in labels.values() if r.node_id in grown) == sum(grown.values())
    for oid, oa in in_a.items():
        ob, lab = in_b[oid], labels[oid]
        if lab.label:  # the two named clusters' objects carry their names
            assert (ob.imported_label, ob.imported_status) == (lab.label, lab.status), oid
        else:  # the rest keep what they were imported with: nothing for the class folders
            assert (ob.imported_label, ob.imported_status) == (oa.imported_label, oa.imported_status), oid
        meta_a = {k: v for k, v in (oa.meta or {}).items() if not k.startswith("_")}
        meta_b = ob.meta or {}
        for k, v in meta_a.items():  # every field the EcoTaxa tables carried, with its value
            if lab.label and k.startswith("object_annotation_"):
                continue  # the annotation made here replaced the imported one
            assert meta_b.get(k) == v, (oid, k, v, meta_b.get(k))
        # and no other field, but the object id and the annotation made here
        assert set(meta_b) - set(meta_a) <= {"object_id"} | (ANNOTATION if lab.label else set()), oid
        if lab.label:
            assert meta_b["object_annotation_person_name"] == "boss"
        image = pb.image_path(ob.path).read_bytes()
        assert image == pa.image_path(oa.path).read_bytes(), oid
        if oa.meta is None:  # a class-folder image: the very bytes uploaded
            assert image == (tmp_path / "classes" / f"{oid}.jpg").read_bytes(), oid
        assert (ob.width, ob.height) == (oa.width, oa.height)
    assert sum(1 for o in in_a.values() if o.meta is None) == 300
    assert column_types(pa).items() <= column_types(pb).items()  # the EcoTaxa columns and types
    check_download(downloaded, pa, in_a, labels)
    pa.close()
    pb.close()
    print(f"\nloop: prepared after {t_prepared:.0f} s, whole loop in the browser {wall:.0f} s")
    assert wall < 600


def check_download(path, pa, in_a, labels):
    """Read the downloaded ZIP with pyecotaxa: one row per object of A with its label, and its
    image in the archive with A's bytes. pyecotaxa reads object_lat/lon as numbers whatever the
    type row says, and the UVP6 table gives them as text ('43°0 0', [t]; pyecotaxa cannot read
    that table either): they are read as the text they are, which also keeps `validate` out."""
    archive = pytest.importorskip("pyecotaxa.archive")
    with archive.Archive(path) as ar:
        tables = list(ar.iter_tsv(dtype={"object_lat": str, "object_lon": str}))
        members = set(ar.members())
    assert len(tables) == 1
    df = tables[0][1]
    assert sorted(df["object_id"]) == sorted(in_a)
    with zipfile.ZipFile(path) as zf:
        for _, row in df.iterrows():
            oid, lab = row["object_id"], labels[row["object_id"]]
            if lab.label:
                assert (row["object_annotation_category"], row["object_annotation_status"]) == (lab.label, lab.status)
            assert row["img_file_name"] in members
            assert zf.read(row["img_file_name"]) == pa.image_path(in_a[oid].path).read_bytes(), oid
