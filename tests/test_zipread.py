"""The streamed ZIP reader: the same entries and bytes as zipfile, its directory never in memory."""

from __future__ import annotations

import tracemalloc
import zipfile

import pytest

from morphocluster.importers.zipread import StreamedZip

FIELDS = ("filename", "orig_filename", "compress_type", "flag_bits", "CRC", "compress_size",
          "file_size", "header_offset", "external_attr", "date_time", "extra")


def same_as_zipfile(path) -> int:
    with zipfile.ZipFile(path) as a, StreamedZip(path) as b:
        want, got = a.infolist(), list(b.members())
        assert len(want) == len(got) == b.n_entries
        for x, y in zip(want, got):
            assert {k: getattr(x, k) for k in FIELDS} == {k: getattr(y, k) for k in FIELDS}
            if not x.is_dir():
                assert b.open(y).read() == a.open(x).read()
    return len(want)


def test_real_zips_read_as_zipfile_reads_them(shared_data):
    paths = sorted(shared_data.rglob("*.zip"))
    assert paths
    assert sum(same_as_zipfile(p) for p in paths) > 30


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """A ZIP of 70,000 entries (more than 65,535: ZIP64 end records), with UTF-8 names."""
    path = tmp_path_factory.mktemp("zips") / "many.zip"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(70_000):
            z.writestr(f"klasse_ä/{i}.txt", f"x{i}")
    return path


def test_zip64_count_utf8_names_and_bytes_before_the_archive(many, tmp_path):
    assert same_as_zipfile(many) == 70_000
    prefixed = tmp_path / "sfx.zip"  # a self-extracting archive: a stub before the ZIP
    prefixed.write_bytes(b"#!/bin/sh\nexit 0\n" + many.read_bytes())
    assert same_as_zipfile(prefixed) == 70_000


def test_the_directory_is_read_a_record_at_a_time(many):
    tracemalloc.start()
    try:
        with zipfile.ZipFile(many) as whole:
            n = len(whole.infolist())
            held = tracemalloc.get_traced_memory()[0]
        del whole
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        with StreamedZip(many) as streamed:
            assert sum(1 for _ in streamed.members()) == n
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert held > 20 << 20 and peak < 1 << 20, (held, peak)


def test_not_a_zip_and_a_cut_directory_are_bad_zip_files(many, tmp_path):
    text = tmp_path / "x.zip"
    text.write_text("not a zip")
    with pytest.raises(zipfile.BadZipFile):
        StreamedZip(text)
    data = bytearray(many.read_bytes())
    with StreamedZip(many) as z:
        start = z._cd_offset
    at = data.index(b"PK\x01\x02", start + 100_000)  # a record in the middle of the directory
    data[at:at + 4] = b"XXXX"
    cut = tmp_path / "cut.zip"
    cut.write_bytes(bytes(data))
    with StreamedZip(cut) as z, pytest.raises(zipfile.BadZipFile):
        for _ in z.members():
            pass
