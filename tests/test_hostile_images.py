"""Hostile images and archives, built here: absurd aspect ratios, too many pixels, ZIP entries
that are huge once decompressed. Each is refused with a message naming the file (and the table
line where a table named it), memory and disk stay bounded, and what was stored stays."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from morphocluster.cli import main
from morphocluster.importers import import_sources
from morphocluster.store import Object

IFCB = "ifcb-sample/training_data"
ECOTAXA = "ecotaxa-samples/import_test/m106_mn01_n2_sml"


def grey_png(path: Path, width: int, height: int) -> Path:
    """Write an all-black 8-bit greyscale PNG, streamed: a 170,000,000 x 1 image is ~165 KB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    block = memoryview(b"\0" * (1 << 20))
    parts = []
    for _ in range(height):
        parts.append(z.compress(b"\0"))  # filter byte of the row
        for i in range(0, width, len(block)):
            parts.append(z.compress(block[:min(len(block), width - i)]))
    idat = b"".join(parts) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def zeros_entry(zf: zipfile.ZipFile, name: str, n_bytes: int) -> None:
    """Add an entry of `n_bytes` zeros, written in chunks (deflate makes it ~1000 times smaller)."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as out:
        block = b"\0" * (1 << 20)
        for i in range(0, n_bytes, len(block)):
            out.write(block[:min(len(block), n_bytes - i)])


def _zip(path: Path, real: list[Path], zeros: dict[str, int]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in real:
            zf.write(p, p.name)
        for name, n in zeros.items():
            zeros_entry(zf, name, n)
    return path


def _stored(project):
    with project.session() as s:
        rows = sorted(s.execute(select(Object.object_id, Object.path, Object.width, Object.height)).all())
    files = {p.relative_to(project.images_dir): p.read_bytes()
             for p in sorted(project.images_dir.rglob("*")) if p.is_file()}
    return rows, files


def _import_cli(project, *args):
    return CliRunner().invoke(main, ["import", str(project.root), *map(str, args)])


def _import_subprocess(project, *args, fsize_limit: int | None = None):
    """Run `morphocluster import` in a child process; return (exit code, output, peak RSS in MiB).
    `fsize_limit` caps the size of any file the child writes (RLIMIT_FSIZE)."""
    code = ("import resource, sys\n"
            "from morphocluster.cli import main\n"
            "try:\n"
            "    main(sys.argv[1:], standalone_mode=False)\n"
            "    rc = 0\n"
            "except SystemExit as e:\n"
            "    rc = e.code or 0\n"
            "except Exception as e:\n"
            "    print('Error:', e); rc = 1\n"
            # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the forked test
            # process across exec (hundreds of MB once torch is loaded there)
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')]\n"
            "print('PEAK_KIB', int(hwm[0].split()[1]))\n"
            "sys.exit(rc)\n")

    def cap():
        import resource
        if fsize_limit:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))

    res = subprocess.run([sys.executable, "-c", code, "import", "-q", str(project.root), *map(str, args)],
                         capture_output=True, text=True, preexec_fn=cap, timeout=300)
    out = res.stdout + res.stderr
    peak = re.search(r"PEAK_KIB (\d+)", out)
    return res.returncode, out, int(peak.group(1)) / 1024 if peak else None


# --- aspect ratio (point 11) -------------------------------------------------------------------
def test_absurd_aspect_ratios_are_refused_at_import_and_stored_objects_stay(project, copy_shared, tmp_path):
    src = copy_shared(IFCB)
    assert _import_cli(project, src).exit_code == 0
    before = _stored(project)
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    grey_png(hostile / "needle.png", 170_000_000, 1)
    grey_png(hostile / "line.png", 30_000, 1)
    real = next(src.rglob("*.png"))
    (hostile / "real.png").write_bytes(real.read_bytes())
    assert (hostile / "needle.png").stat().st_size < 400_000

    res = _import_cli(project, hostile)
    assert res.exit_code == 3, res.output  # some rows failed, the rest was imported
    assert re.search(r"hostile/needle\.png: needle\.png: 170000000x1 px, an aspect ratio of "
                     r"170000000:1, above the limit of 100:1; raise \"max_aspect_ratio\"", res.output)
    assert "line.png: 30000x1 px, an aspect ratio of 30000:1" in res.output
    assert "--max-aspect-ratio" in res.output
    rows, files = _stored(project)
    assert [r for r in rows if r not in before[0]] == [r for r in rows if r[0] == "real"]
    assert {k: v for k, v in files.items() if k in before[1]} == before[1]  # nothing stored changed
    assert set(before[0]) <= set(rows)


def test_a_refused_image_is_named_with_its_table_line(project, copy_shared):
    src = copy_shared(ECOTAXA)
    table = next(src.glob("ecotaxa_*.tsv"))
    lines = table.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    i_img = header.index("img_file_name")
    row = lines[3].split("\t")  # the second object row (file line 4)
    grey_png(src / "line.png", 30_000, 1)
    row[i_img] = "line.png"
    lines[3] = "\t".join(row)
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = import_sources(project, src, progress=False)
    assert report.failed == 1
    assert re.fullmatch(rf".*{re.escape(table.name)}:4: line\.png: 30000x1 px, an aspect ratio of "
                        r"30000:1, above the limit of 100:1; .*row skipped", report.failed_messages[0])
    assert report.added == len(lines) - 3


def test_padding_a_long_image_needs_no_square_buffer():
    import tracemalloc

    from PIL import Image

    from morphocluster.features.preprocess import Preprocess, pad_square

    pre = Preprocess(size=128)
    long = np.full((1, 20_000), 200, np.uint8)
    long[0, 5_000:15_000] = 10
    tracemalloc.start()
    out = pre.apply(long)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (128, 128) and peak < 8 << 20  # the padded square would be 400 MB
    assert out[63, 64] < 50 and out[0, 0] == 200 and out[64, 64] == 200  # a dark line, padded around
    # vignettes of ordinary size are padded and resized exactly as before
    a = np.asarray(Image.open(next((Path(__file__).parent.parent / "data").rglob("*.jpg"))).convert("L"))
    ref = np.asarray(Image.fromarray(pad_square(a, int(np.median(np.r_[a[0], a[-1], a[:, 0], a[:, -1]]))))
                     .resize((128, 128), Image.BILINEAR))
    np.testing.assert_array_equal(pre.apply(a), ref)


def _set_limits(project, **limits):
    path = project.root / "morphocluster.json"
    cfg = json.loads(path.read_text())
    cfg["limits"] = {**cfg["limits"], **limits}
    path.write_text(json.dumps(cfg))


def test_features_refuse_an_image_beyond_the_limits_by_name_and_take_it_once_raised(project, copy_shared, tmp_path):
    from morphocluster.features import FeatureError, load_features
    from morphocluster.features.extract import extract_features

    src = copy_shared(IFCB)
    grey_png(src / "line.png", 20_000, 1)
    res = _import_cli(project, src, "--max-aspect-ratio", "30000")
    assert res.exit_code == 0, res.output
    assert json.loads((project.root / "morphocluster.json").read_text())["limits"]["max_aspect_ratio"] == 30000
    _set_limits(project, max_aspect_ratio=100)  # as a project imported before the limits were
    with pytest.raises(FeatureError, match=r"object 'line' \(.*line\.png\): line\.png: 20000x1 px, "
                                           r"an aspect ratio of 20000:1, above the limit of 100:1"):
        extract_features(project, "pixels", size=32, num_workers=0, progress=False)
    _set_limits(project, max_aspect_ratio=30000)
    extract_features(project, "pixels", size=32, num_workers=0, progress=False)
    ids, X = load_features(project, "pixels")
    assert "line" in list(ids) and X.shape == (31, 32 * 32)


def test_thumbnails_refuse_an_image_beyond_the_pixel_limit(project, tmp_path):
    from morphocluster.thumbnails import ThumbnailError, thumbnail

    folder = tmp_path / "big"
    folder.mkdir()
    grey_png(folder / "big.png", 5_000, 5_000)
    assert import_sources(project, folder, progress=False,
                          limits=project.image_limits(max_pixels=30_000_000)).added == 1
    with project.session() as s:
        pk = s.scalar(select(Object.id))
    _set_limits(project, max_pixels=16_000_000)
    with pytest.raises(ThumbnailError, match=r"big\.png: 5000x5000 px \(25\.0 megapixels\), above the "
                                             r"limit of 16 megapixels; raise \"max_pixels\""):
        thumbnail(project, pk, 128)
    _set_limits(project, max_pixels=30_000_000)
    assert thumbnail(project, pk, 128).is_file()


# --- pixels (point 12) -------------------------------------------------------------------------
def test_too_many_pixels_are_refused_before_decoding(project, copy_shared, tmp_path):
    src = copy_shared(IFCB)
    small = tmp_path / "small"
    small.mkdir()
    (small / "real.png").write_bytes(next(src.rglob("*.png")).read_bytes())
    rc, out, base = _import_subprocess(project, small)
    assert rc == 0, out
    big = tmp_path / "big"
    big.mkdir()
    grey_png(big / "huge.png", 12_000, 12_000)  # 144 megapixels, under Pillow's own limit
    rc, out, peak = _import_subprocess(project, big)
    assert rc == 1, out  # every row failed
    assert "big/huge.png: huge.png: 12000x12000 px (144.0 megapixels), above the limit of 16 megapixels; " \
           "raise \"max_pixels\" under \"limits\" in the project's morphocluster.json (for one import: " \
           "`morphocluster import --max-pixels`)" in out
    assert peak - base < 60, (base, peak)  # decoding it would take 144 MiB at least


def test_the_pixel_limit_can_be_raised_for_an_import(project, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    grey_png(folder / "big.png", 5_000, 5_000)
    res = _import_cli(project, folder)
    assert res.exit_code == 1 and "above the limit of 16 megapixels" in res.output
    res = _import_cli(project, folder, "--max-pixels", "30M")
    assert res.exit_code == 0, res.output
    assert "limits are raised" in res.output
    assert project.image_limits().max_pixels == 30_000_000


def test_import_help_documents_the_limits():
    out = CliRunner().invoke(main, ["import", "--help"]).output
    for opt in ("--max-file-size", "--max-pixels", "--max-aspect-ratio", "--max-zip-ratio", '"limits"'):
        assert opt in out


# --- archives (point 13) -----------------------------------------------------------------------
def test_an_oversized_zip_entry_is_refused_with_disk_and_memory_bounded(project, copy_shared, tmp_path):
    src = copy_shared(IFCB)
    reals = sorted(src.rglob("*.png"))[:2]
    z = _zip(tmp_path / "drop.zip", reals, {"bomb.jpg": 48 << 20, "notes/junk.bin": 48 << 20})
    assert z.stat().st_size < 1 << 20
    # the child may write no file above 8 MiB: extracting either entry would kill it (SIGXFSZ)
    rc, out, peak = _import_subprocess(project, z, "--max-file-size", "1M", "--max-zip-ratio", "100000",
                                       fsize_limit=8 << 20)
    assert rc == 3, out
    assert "drop.zip:bomb.jpg: image entry is 48.0 MiB uncompressed, above the file size limit of " \
           "1.0 MiB (raise it with `import --max-file-size`); entry skipped" in out
    assert "1 entry that is neither an image nor a table was not extracted" in out
    assert "added 2" in out and peak < 400, out
    with project.session() as s:
        assert sorted(s.scalars(select(Object.object_id))) == sorted(p.stem for p in reals)


def test_a_zip_bomb_is_refused_by_its_compression_ratio(project, copy_shared, tmp_path):
    real = sorted(copy_shared(IFCB).rglob("*.png"))[:1]
    z = _zip(tmp_path / "drop.zip", real, {"bomb.jpg": 16 << 20})
    report = import_sources(project, z, progress=False)
    assert report.added == 1 and report.failed == 1
    assert re.fullmatch(r"drop\.zip:bomb\.jpg: entry expands \d+:1 \(\d+ bytes to 16\.0 MiB\), more than "
                        r"the limit of 200:1 \(a ZIP bomb\? .*`import --max-zip-ratio`\); entry skipped",
                        report.failed_messages[0])


def test_a_big_image_file_is_refused_without_reading_it(project, copy_shared, tmp_path):
    folder = copy_shared(IFCB)
    big = next(folder.rglob("*.png"))
    with open(big, "ab") as f:  # a valid PNG with 3 MiB of trailing bytes
        f.truncate(big.stat().st_size + (3 << 20))
    report = import_sources(project, folder, progress=False, limits=project.image_limits(max_file_size=2 << 20))
    assert report.failed == 1
    assert f"{big.name}: 3.0 MiB, above the file size limit of 2.0 MiB" in report.failed_messages[0]
    assert "--max-file-size" in report.failed_messages[0]


def test_a_refused_zip_entry_is_named_on_the_table_line_that_wants_it(project, copy_shared, tmp_path):
    src = copy_shared(ECOTAXA)
    table = next(src.glob("ecotaxa_*.tsv"))
    lines = table.read_text(encoding="utf-8").splitlines()
    i_img = lines[0].split("\t").index("img_file_name")
    row = lines[2].split("\t")  # file line 3
    row[i_img] = "bomb.jpg"
    lines[2] = "\t".join(row)
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    z = _zip(tmp_path / "export.zip", sorted(src.iterdir()), {"bomb.jpg": 4 << 20})
    report = import_sources(project, z, progress=False)
    assert report.failed == 1, report.failed_messages  # reported once, on the row
    assert re.fullmatch(rf".*{re.escape(table.name)}:3: image bomb\.jpg: entry expands \d+:1 .*row skipped",
                        report.failed_messages[0])
    assert report.added == len(lines) - 3
    assert not any(p.name == "bomb.jpg" for p in project.images_dir.rglob("*"))
    assert not any(n.startswith("import-") for n in os.listdir(project.cache_dir))  # work folder gone
