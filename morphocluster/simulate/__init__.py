"""Measure annotation efficiency with a simulated annotator (issue #6).

`Simulator(project, truth, settings).run()` drives the workflow through rounds of phases
(cluster, validate, grow, plus any `extra_phases`) and returns a `Result`; `report.py` writes
the JSON and the coverage/precision curve. See docs/workflow.md.
"""

from .annotator import CLICK_KINDS, Result, Settings, Simulator, imported_truth
from .presets import PRESETS, preset
from .reset import reset_annotations

__all__ = ["CLICK_KINDS", "PRESETS", "Result", "Settings", "Simulator", "imported_truth", "preset",
           "reset_annotations"]
