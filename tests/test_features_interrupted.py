"""A features run that another process holds, or that was killed: reported, resumed, no orphans."""

from __future__ import annotations

import h5py
import pytest

from morphocluster.features import FeatureError
from morphocluster.features.extract import extract_features
from morphocluster.features.h5 import feature_path
from test_features import small  # noqa: F401


def test_a_half_done_set_that_another_process_holds_is_reported_not_replaced(small):
    """What a killed run's leftover worker did: keep the partial file open (and HDF5-locked)."""
    import subprocess
    import sys

    extract_features(small, "pixels", name="x", batch_size=4, num_workers=0, progress=False, limit=8)
    partial = feature_path(small, "x").with_name("x.h5.partial")
    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time; h = h5py.File(sys.argv[1], 'r+'); "
                               "print('open', flush=True); time.sleep(60)", str(partial)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(FeatureError, match="another process has this half-done feature set open"):
            extract_features(small, "pixels", name="x", batch_size=4, num_workers=0, progress=False)
    finally:
        holder.kill()
        holder.wait()
    with h5py.File(partial) as h:
        assert h.attrs["done"] == 8  # kept, and resumed once the other process is gone
    extract_features(small, "pixels", name="x", batch_size=4, num_workers=0, progress=False)
    assert not partial.exists() and feature_path(small, "x").exists()


def test_a_data_loading_worker_ends_with_the_process_that_started_it():
    """A SIGKILLed `features` run left its DataLoader worker running, holding the files open."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("import os, sys, time\n"
            "from morphocluster.features.extract import die_with_parent\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    die_with_parent(0)\n"
            "    time.sleep(60)\n"
            "    os._exit(0)\n"
            "print(pid, flush=True)\n"
            "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(0.3)  # the child has set its death signal
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    def alive(pid):  # a zombie (dead, not reaped yet) counts as ended
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    for _ in range(50):
        if not alive(child):
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the worker outlived the process that started it")
