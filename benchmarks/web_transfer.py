"""Upload and export through a real server: time, objects/s, bytes and the server's RSS per step.

Run:  nice python benchmarks/web_transfer.py --n 10000,100000 [--n 1000000] [--keep]
For each N: a ZIP of N real images (those of ../shared/data/planktonset-dev, read only, hard-
linked under unique names into class folders of at most 1000, below bench-out/; stored, not
deflated: JPEGs do not shrink) and a fresh project with an admin. `morphocluster serve`
(waitress, 4 threads) runs it in a child process; an HTTP client logs in like a browser (session
cookie, CSRF token), sends the ZIP to /import/upload streamed from disk (as upload.js does: the
file as the body, options in the query), polls the import job, then starts an EcoTaxa export
with the images and a CSV export on /export/, polls each and downloads it streamed to disk.

Where the upload's bytes go: waitress reads the whole body into a temporary file (in the
server's TMPDIR, here the run's tmp/ folder) before the app sees the request ("sent"); the app
copies it in 1 MiB chunks to the project's uploads/ and starts the job ("stored"); the job
unpacks it into cache/, checks and stages the images and moves them to images/, then deletes
the upload. Disk needed at the peak: about 6x the ZIP (ZIP, waitress's copy, the upload, the
unpacked and stored images, the export and its download); 1 M images make a ZIP of ~1.3 GB.
At 10,000 on 2 busy cores: import ~800 objects/s, EcoTaxa export with images ~1,400/s.

Memory: before each step the server's peak RSS is reset (`5` written to /proc/<pid>/clear_refs)
and read back as VmHWM after it, so "peak" is that step's own; "before"/"after" are VmRSS and
"+peak" is peak - before. Where the reset is not allowed the peak is the highest VmRSS sampled
every 50 ms ("~" in the table). The client's check of a download (the ZIP's directory read,
the CSV's rows counted) runs in this process, not the server's.
The steps run one after the other; the server keeps running across them (jobs run in its
threads), so what one step leaves allocated shows in the next one's "before".
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from urllib.parse import quote

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_scale import make_folder, real_images  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench", "bench-password"
CHUNK = 1 << 20
POLL_S = 0.2
EXPORTS = (("ecotaxa", True, "EcoTaxa ZIP with images"), ("csv", False, "CSV"))


def build_zip(n: int, work: Path) -> Path:
    """work/upload-<n>.zip: N images in <k>/<class>/ folders (made once; kept with --keep)."""
    dest = work / f"upload-{n}.zip"
    if dest.is_file():
        return dest
    src = work / f"src-{n}"
    shutil.rmtree(src, ignore_errors=True)
    make_folder(src, n, real_images())
    tmp = dest.with_suffix(".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            for fn in sorted(filenames):
                path = os.path.join(dirpath, fn)
                zf.write(path, os.path.relpath(path, src))
    tmp.rename(dest)
    shutil.rmtree(src)
    return dest


def _kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


class Server:
    """`morphocluster serve` of one project in a child process, with its memory readings."""

    def __init__(self, project: Path, work: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        tmp = work / "tmp"
        tmp.mkdir(exist_ok=True)
        self.log = open(work / "server.log", "w")
        exe = Path(sys.executable).with_name("morphocluster")
        self.proc = subprocess.Popen([str(exe), "serve", str(project), "--port", str(self.port), "--threads", "4"],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, "TMPDIR": str(tmp)})
        self.pid = self.proc.pid
        t0 = time.monotonic()
        while True:
            try:
                if requests.get(self.url + "/login", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() - t0 > 120:
                raise SystemExit(f"the server did not start; see {self.log.name}")
            time.sleep(0.2)
        self.exact = self.reset_peak()

    def rss(self) -> int:
        return _kib(self.pid, "VmRSS")

    def reset_peak(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Step:
    """Measure one step: seconds, and the server's RSS before, after and at its peak."""

    def __init__(self, server: Server, name: str, n: int):
        self.server, self.row = server, {"step": name, "n": n, "bytes": None, "note": ""}

    def __enter__(self):
        self.row["before"] = self.server.rss()
        self.server.exact = self.server.reset_peak()
        self.sampled, self._stop = self.row["before"], threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.t0 = time.perf_counter()
        return self.row

    def _sample(self):
        while not self._stop.wait(0.05):
            self.sampled = max(self.sampled, self.server.rss())

    def __exit__(self, *exc):
        self.row["seconds"] = time.perf_counter() - self.t0
        self._stop.set()
        self._thread.join()
        self.row["after"] = self.server.rss()
        self.row["peak"] = _kib(self.server.pid, "VmHWM") if self.server.exact else self.sampled
        self.row["exact"] = self.server.exact
        return False


def login(url: str) -> tuple[requests.Session, str]:
    """Log in through the form; return the session (cookie kept) and the page's CSRF token."""
    s = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', s.get(url + "/login").text).group(1)
    r = s.post(url + "/login", data={"username": USER, "password": PASSWORD, "csrf_token": token},
               allow_redirects=False)
    if r.status_code != 302:
        raise SystemExit(f"login failed: {r.status_code}")
    return s, re.search(r'data-csrf="([^"]+)"', s.get(url + "/").text).group(1)


def upload(server: Server, s: requests.Session, token: str, path: Path) -> tuple[int, float]:
    """POST the ZIP as the body, streamed from disk; return the job id and when the last byte
    was sent (the rest of the request's time is the app copying waitress's file and starting the job)."""
    size = path.stat().st_size
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=3600)
    conn.putrequest("POST", f"/import/upload?name={quote(path.name)}&labels_from_folders=1")
    for k, v in (("Content-Type", "application/zip"), ("Content-Length", str(size)), ("X-CSRFToken", token),
                 ("Cookie", "; ".join(f"{c.name}={c.value}" for c in s.cookies))):
        conn.putheader(k, v)
    conn.endheaders()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            conn.send(chunk)
    sent = time.perf_counter()
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    if resp.status != 200:
        raise SystemExit(f"upload refused ({resp.status}): {body[:500]}")
    return int(re.search(r'"job":\s*(\d+)', body).group(1)), sent


def wait_job(s: requests.Session, url: str) -> tuple[str, str]:
    """Poll a job's row (an htmx fragment) until the job ends; return its state and row."""
    while True:
        row = s.get(url, headers={"HX-Request": "true"}).text
        state = re.search(r'class="job (\w+)"', row).group(1)
        if state not in ("queued", "running"):
            return state, row
        time.sleep(POLL_S)


def _text(row: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()


def _message(row: str) -> str:
    """A job row's message: an export row's muted line, else what follows the progress figure."""
    m = re.search(r'<span class="muted">([^<]+)</span>', row)
    text = m.group(1) if m else _text(row).split("%", 1)[-1].removesuffix(" report")
    return text.strip()[:110]


def download(s: requests.Session, url: str, dest: Path) -> int:
    with s.get(url, stream=True) as r, open(dest, "wb") as f:
        r.raise_for_status()
        for chunk in r.iter_content(CHUNK):
            f.write(chunk)
    return dest.stat().st_size


def run_size(n: int, work: Path, keep: bool) -> list[dict]:
    from morphocluster.project import Project
    from morphocluster.users import add_user

    t0 = time.perf_counter()
    zpath = build_zip(n, work)
    print(f"  ZIP of {n:,} images: {zpath.stat().st_size / 2**20:,.1f} MiB ({time.perf_counter() - t0:.1f} s)",
          flush=True)
    run = work / f"run-{n}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    p = Project.create(run / "project")
    add_user(p, USER, PASSWORD, "admin")
    p.close()
    server = Server(run / "project", run)
    rows = []
    try:
        s, token = login(server.url)
        rows.append({"step": "idle, logged in", "n": n, "seconds": None, "bytes": None, "before": server.rss(),
                     "after": server.rss(), "peak": _kib(server.pid, "VmHWM"), "exact": True,
                     "note": "peak: since the server started"})
        with Step(server, "upload (POST /import/upload)", n) as row:
            start = time.perf_counter()
            job, sent = upload(server, s, token, zpath)
            stored = time.perf_counter() - sent
        row["bytes"] = zpath.stat().st_size
        row["note"] = f"{sent - start:.1f} s sent (to waitress's temp file), {stored:.1f} s stored by the app"
        rows.append(row)
        with Step(server, "import job", n) as row:
            state, jrow = wait_job(s, f"{server.url}/jobs/{job}")
        row["note"] = _message(jrow)
        rows.append(row)
        if state != "done":
            raise SystemExit(f"import job {job} {state}: {_text(jrow)}")
        for fmt, images, title in EXPORTS:
            with Step(server, f"export job: {title}", n) as row:
                r = s.post(server.url + "/export/start", headers={"X-CSRFToken": token, "HX-Request": "true"},
                           data={"format": fmt, "labels": "all", "with_images": "1" if images else "",
                                 "csrf_token": token})
                if r.status_code != 200:
                    raise SystemExit(f"export refused ({r.status_code}): {_text(r.text)[:300]}")
                job = int(re.search(r'id="export-job-(\d+)"', r.text).group(1))
                state, jrow = wait_job(s, f"{server.url}/export/job/{job}")
            if state != "done":
                raise SystemExit(f"export job {job} {state}: {_text(jrow)}")
            href = re.search(r'href="([^"]*/export/download/[^"]+)"', jrow).group(1)
            dest = run / f"download-{fmt}{'.zip' if images else '.csv'}"
            with Step(server, f"download: {title}", n) as drow:
                drow["bytes"] = download(s, server.url + href, dest)
            row["note"], drow["note"] = _message(jrow), _held(dest, images)
            rows += [row, drow]
            dest.unlink()
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(run, ignore_errors=True)
    return rows


def _held(path: Path, is_zip: bool) -> str:
    """What a download holds (checked, so a fast step is not an empty one)."""
    if is_zip:
        with zipfile.ZipFile(path) as zf:
            names = [i.filename for i in zf.infolist()]
        n_images = sum(n.lower().endswith(".jpg") for n in names)
        return f"{n_images:,} images, {len(names) - n_images} other files"
    with open(path, "rb") as f:
        return f"{sum(1 for _ in f) - 1:,} rows"


def _mb(kib) -> str:
    return f"{kib / 1024:,.0f}" if kib is not None else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", action="append", help="objects per run, comma-separated (default 10000,100000)")
    ap.add_argument("--work", type=Path, default=REPO / "bench-out" / "web-transfer")
    ap.add_argument("--keep", action="store_true", help="keep the ZIPs and the projects for a rerun")
    args = ap.parse_args(argv)
    ns = sorted({int(x) for arg in (args.n or ["10000,100000"]) for x in arg.split(",") if x.strip()})
    args.work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    rows = []
    for n in ns:
        print(f"{n:,} objects ...", flush=True)
        rows += run_size(n, args.work, args.keep)
        if not args.keep:
            (args.work / f"upload-{n}.zip").unlink(missing_ok=True)
    print(f"\nweb_transfer: upload and export through `morphocluster serve` (waitress), SQLite, "
          f"load {load:.1f} on {os.cpu_count()} CPUs at the start; server RSS in MB")
    print(f"{'step':<36}{'N':>10}{'seconds':>9}{'obj/s':>11}{'MiB':>9}{'before':>8}{'after':>8}{'peak':>8}"
          f"{'+peak':>7}  note")
    for r in rows:
        sec, size = r["seconds"], r["bytes"]
        rate = f"{r['n'] / sec:,.0f}" if sec else ""
        peak = ("" if r["exact"] else "~") + _mb(r["peak"])
        print(f"{r['step']:<36}{r['n']:>10,}{'' if sec is None else f'{sec:.2f}':>9}{rate:>11}"
              f"{'' if size is None else f'{size / 2**20:,.1f}':>9}{_mb(r['before']):>8}{_mb(r['after']):>8}"
              f"{peak:>8}{_mb(r['peak'] - r['before']):>7}  {r['note']}")
    if len(ns) > 1:
        lo, hi = ns[0], ns[-1]
        print(f"\npeak RSS from {lo:,} to {hi:,} objects ({hi / lo:g}x the data):")
        for step in dict.fromkeys(r["step"] for r in rows):
            a, b = (next(r["peak"] for r in rows if r["step"] == step and r["n"] == m) for m in (lo, hi))
            print(f"  {step:<36}{a / 1024:>8,.0f} -> {b / 1024:>6,.0f} MB ({(b - a) / 1024:+,.0f} MB)")
    print(f"\nrerun: nice python benchmarks/web_transfer.py --n {','.join(map(str, ns))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
