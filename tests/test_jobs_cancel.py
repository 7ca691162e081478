"""Cancelling jobs and chains of jobs, with real imports of real PlanktonSet images.

A cancelled import stores nothing: no object, no import run, no image file, no staged folder,
no upload left; a failed one says why; a job that ends done starts the next of its chain.
"""

from __future__ import annotations

import shutil
import threading
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from morphocluster import jobs
from morphocluster.importers import import_sources
from morphocluster.importers import job as import_job
from morphocluster.store import ImportRun, Job, Meta, Object

pytestmark = pytest.mark.usefixtures("shared_data")

CLASSES = ("chaetognath_sagitta", "copepod_calanoid", "acantharia_protist")


def class_folders(shared_data, dst: Path, per_class: int) -> Path:
    """Copy `per_class` real images of each class into `dst/<class>/`."""
    for c in CLASSES:
        (dst / c).mkdir(parents=True, exist_ok=True)
        for f in sorted((shared_data / "planktonset-dev" / c).iterdir())[:per_class]:
            shutil.copy2(f, dst / c / f.name)
    return dst


def zip_folder(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())
    return dest


def wait(p, job_id, timeout=180):
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = jobs.get_job(p, job_id)
        if job["state"] in jobs.ENDED_STATES:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


def assert_nothing_stored(p):
    """No object or import run, no image file, nothing staged in cache/, no upload left."""
    from morphocluster.leftovers import remove_orphan_image_folders

    with p.session() as s:
        assert s.scalar(select(func.count(Object.id))) == 0
        assert s.scalar(select(func.count(ImportRun.id))) == 0
    assert not p.images_dir.is_dir() or not any(p.images_dir.rglob("*"))
    assert not any(x.name.startswith("import-") for x in p.cache_dir.iterdir())
    uploads = p.root / import_job.UPLOADS
    assert not uploads.is_dir() or not any(uploads.iterdir())
    assert remove_orphan_image_folders(p) == []


@pytest.fixture
def source_zip(shared_data, tmp_path):
    """A ZIP of 3 x 120 real images in class folders (several batches of progress calls)."""
    folder = class_folders(shared_data, tmp_path / "classes", 120)
    return zip_folder(folder, tmp_path / "classes.zip")


@pytest.mark.parametrize("phase", ["unpacked", "read", "checked"])
def test_importer_stops_in_each_phase_and_stores_nothing(project, source_zip, phase):
    seen = []

    def progress(what, n, total=None):
        seen.append(what)
        if what == phase and n > 0:
            raise jobs.JobCancelled("cancelled")

    with pytest.raises(jobs.JobCancelled):
        import_sources(project, [source_zip], labels_from_folders=True, progress=progress,
                       shard_size=100)
    assert phase in seen
    if phase == "checked":  # staged images existed, and are gone with the work folder
        assert "read" in seen
    assert_nothing_stored(project)
    # the same source imports fully afterwards: nothing half-done is in the way
    report = import_sources(project, [source_zip], labels_from_folders=True, progress=False)
    assert report.added == 3 * 120 and report.failed == 0


def test_run_import_cancelled_after_n_progress_calls(project, source_zip):
    """The job's own progress callable raises after a few calls, as a cancel would."""
    calls = []

    def progress(fraction=None, message=None):
        calls.append(message)
        if len(calls) == 4:
            raise jobs.JobCancelled("cancelled")

    dest = import_job.new_upload(project, "classes.zip")
    shutil.copy2(source_zip, dest)
    with pytest.raises(jobs.JobCancelled):
        import_job.run_import(project, {"source": str(dest), "upload": True}, progress)
    assert len(calls) == 4 and calls[0].startswith("unpacking")
    assert_nothing_stored(project)  # the upload is removed too


def test_cancel_a_running_import_job_from_another_thread(project, source_zip):
    dest = import_job.new_upload(project, "classes.zip")
    shutil.copy2(source_zip, dest)
    job_id = jobs.start_job(project, "import", {"source": str(dest), "upload": True,
                                                "labels_from_folders": True}, user_id=None)
    asked = []

    def canceller():
        while not asked:
            if jobs.get_job(project, job_id)["state"] == "running":
                asked.append(jobs.cancel_job(project, job_id))
            time.sleep(0.005)

    t = threading.Thread(target=canceller)
    t.start()
    job = wait(project, job_id)
    t.join()
    assert asked == [True]
    assert job["state"] == "cancelled" and job["error"] is None and "cancelled" in job["message"]
    assert job["finished_at"] and jobs.active_job(project) is None
    assert_nothing_stored(project)
    with project.session() as s:  # the job's process record and the cancel flag are gone with it
        assert s.get(Meta, f"job_owner:{job_id}") is None and s.get(Meta, f"job_cancel:{job_id}") is None
    assert jobs.cancel_job(project, job_id) is False  # it has ended
    assert jobs.cancel_job(project, 999999) is False


def test_failed_import_says_why_and_removes_the_upload(project, shared_data):
    dest = import_job.new_upload(project, "photo.zip")  # a JPEG called .zip
    shutil.copy2(next((shared_data / "planktonset-dev" / CLASSES[0]).iterdir()), dest)
    job = wait(project, jobs.start_job(project, "import", {"source": str(dest), "upload": True}))
    assert job["state"] == "failed"
    assert "not a readable ZIP file" in job["error"] and "photo.zip" in job["error"]
    assert str(project.root) not in job["error"]  # the upload folder means nothing to a user
    assert_nothing_stored(project)


def test_chain_starts_each_next_job_and_stops_at_a_failure(project, shared_data, tmp_path):
    src = class_folders(shared_data, tmp_path / "chain", 8)
    first = jobs.start_job(project, "import", {
        "source": str(src), "labels_from_folders": True,
        "then": [{"kind": "features", "params": {"extractor": "pixels", "batch_size": 16}}, "index"]})
    job = wait(project, first)
    assert job["state"] == "done", job["error"]
    rows = []
    t0 = time.time()
    while len(rows) < 3 or any(r["state"] not in jobs.ENDED_STATES for r in rows):
        assert time.time() - t0 < 180, rows
        rows = sorted(jobs.list_jobs(project), key=lambda r: r["id"])
        time.sleep(0.1)
    assert [r["kind"] for r in rows] == ["import", "features", "index"]
    assert [r["state"] for r in rows] == ["done", "done", "done"], [r["error"] for r in rows]
    assert f"next: features (job {rows[1]['id']})" in rows[0]["message"]
    assert f"next: index (job {rows[2]['id']})" in rows[1]["message"]
    assert rows[1]["params"]["then"] == [{"kind": "index", "params": {}}]
    assert (project.features_dir / "pixels.h5").is_file() or any(project.features_dir.iterdir())
    assert any(project.index_dir.iterdir())
    with project.session() as s:
        assert s.scalar(select(func.count(Object.id))) == 3 * 8

    # a failed step stops the chain: no index job after it
    bad = jobs.start_job(project, "features", {"extractor": "no-such-extractor", "then": ["index"]})
    assert wait(project, bad)["state"] == "failed"
    time.sleep(0.3)
    assert jobs.list_jobs(project)[0]["id"] == bad and jobs.active_job(project) is None
    with pytest.raises(ValueError, match="unknown job kind"):
        jobs.start_job(project, "index", {"then": ["dance"]})


def test_cancelled_chain_stops(project, shared_data, tmp_path):
    """A job cancelled while queued ends at once; the rest of its chain never starts."""
    with project.transaction() as s:
        job = Job(kind="index", state="queued", params={"then": ["cluster"]})
        s.add(job)
        s.flush()
        job_id = job.id
    assert jobs.cancel_job(project, job_id)
    assert jobs.get_job(project, job_id)["cancelling"] is True
    jobs.run_job(project, job_id)
    job = jobs.get_job(project, job_id)
    assert job["state"] == "cancelled" and job["cancelling"] is False
    assert [j["id"] for j in jobs.list_jobs(project)] == [job_id]
