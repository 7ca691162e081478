"""Screenshots of the browser import and export for the README, saved as docs/img/web-*.png.

Builds a server root in a temporary folder from copies of real data (an EcoTaxa ZIP of
ecotaxa-samples with two rows spoiled, 120 PlanktonSet images in a folder under the data root),
serves it with waitress and drives headless Chromium (Debian's `chromium`) through the project
list, the import page, an import's report, Import and prepare, two validated clusters and an
export. Rerun with `nice .venv/bin/python scripts/screenshots.py` (needs the shared data and
playwright; about a minute on two busy CPU cores).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from morphocluster.server import Server
from morphocluster.web.server import create_server_app
from morphocluster.web.threaded import serving

REPO = Path(__file__).resolve().parent.parent
DATA = Path("/work/shared/data")
OUT = REPO / "docs" / "img"
CLASSES = ("acantharia_protist", "chaetognath_sagitta", "copepod_cyclopoid_oithona",
           "diatom_chain_string", "fecal_pellet", "trichodesmium_puff")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "screenshots-only"
LONG = 300_000  # ms: features, index and a clustering round on a busy machine


def spoiled_zip(dest: Path) -> Path:
    """import_test.zip with one row's image missing and one area that is not a number."""
    source = DATA / "ecotaxa-samples" / "import_test.zip"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("ecotaxa_m106_mn01_n1_sml.tsv"):
                text = data.decode()
                text = text.replace("m106_mn01_n1_sml_822.jpg", "m106_mn01_n1_sml_822b.jpg")
                text = text.replace("\t1511.0\t", "\tn/a\t", 1)
                data = text.encode()
            out.writestr(info, data)
    return dest


def image_folder(dest: Path, per_class=20) -> None:
    for c in CLASSES:
        (dest / c).mkdir(parents=True)
        for f in sorted((DATA / "planktonset-dev" / c).iterdir())[:per_class]:
            shutil.copy2(f, dest / c / f.name)


def shot(target, name: str) -> None:
    """Save a screenshot of a page (whole) or a locator; make it a palette PNG if it is big."""
    path = OUT / name
    if hasattr(target, "goto"):
        target.screenshot(path=str(path), full_page=True)
    else:
        target.screenshot(path=str(path))
    im = Image.open(path)
    im.save(path, optimize=True)
    if path.stat().st_size > 150_000:
        im.convert("RGB").quantize(256).save(path, optimize=True)
    print(f"{path.relative_to(REPO)}: {im.width}x{im.height}, {path.stat().st_size // 1024} KB")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="morphocluster-shots-"))
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path) -> None:
    server = Server.create(tmp / "srv")
    server.add_user("boss", PASSWORD, admin=True)
    name = server.create_project("Cruise M106")
    server.create_project("ISIIS 2024")
    image_folder(tmp / "incoming" / "planktonset")
    upload = spoiled_zip(tmp / "m106_stations.zip")
    app = create_server_app(server, project_config={"DATA_ROOT": str(tmp / "incoming")})
    OUT.mkdir(parents=True, exist_ok=True)
    with serving(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        pg = browser.new_page(viewport={"width": 1200, "height": 200})
        pg.set_default_timeout(30_000)
        pg.goto(base + "/login")
        pg.fill("input[name=username]", "boss")
        pg.fill("input[name=password]", PASSWORD)
        pg.click("button:has-text('Log in')")
        pg.wait_for_selector("h1:has-text('Projects')")
        proj = f"{base}/p/{name}"

        pg.goto(proj + "/import/")
        pg.set_input_files("#upload-form input[type=file]", str(upload))
        pg.fill("input[name=path]", "planktonset")
        shot(pg, "web-import.png")
        pg.click("#upload-form button[name=then][value='']")
        pg.wait_for_selector("#job-page h1:text-matches(': (done|failed)$')", timeout=LONG)
        shot(pg, "web-import-report.png")

        pg.goto(proj + "/import/")
        pg.fill("input[name=path]", "planktonset")
        pg.click("form[hx-post] button[name=then][value='prepare']")
        pg.wait_for_url(re.compile(r"/jobs/\d+/details$"))
        pg.goto(proj + "/jobs/")
        pg.wait_for_selector("#job-list tr.job.done:has(td:nth-child(2):text-is('cluster'))", timeout=LONG)

        for label, grow in (("copepod", True), ("diatom chain", False)):  # a human's decisions
            pg.goto(proj + "/validate/")
            if pg.locator("h1:has-text('Nothing to validate')").count():
                break
            pg.wait_for_selector("#grid .obj")
            pg.fill("input.name-input", label)
            pg.click("button:has-text('Approve & grow')")
            pg.wait_for_url(re.compile(r"/grow/\d+$"))
            if grow:
                pg.wait_for_selector("#grid .obj")
                pg.click("button:has-text('Accept whole screen')")
                pg.wait_for_selector("#toast:has-text('Accepted')")

        pg.goto(proj + "/export/")
        pg.check("input[name=format][value=ecotaxa]")
        pg.check("input[name=labels][value=all]")
        pg.check("input[name=with_images]")
        pg.wait_for_function("() => document.getElementById('x-images')?.textContent === 'yes'")
        shot(pg, "web-export.png")
        pg.click("#export-btn")
        pg.wait_for_selector("#export-jobs a:has-text('Download')", timeout=LONG)
        pg.reload()  # without the toast
        shot(pg.locator("section.card:has(#export-jobs)"), "web-export-done.png")

        pg.goto(base + "/")
        pg.wait_for_selector("table.projects")
        shot(pg, "web-projects.png")
        browser.close()
    server.close()


if __name__ == "__main__":
    sys.exit(main())
