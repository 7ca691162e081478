"""Sort plankton images by clusters instead of one by one."""

from importlib.resources import files
from pathlib import Path

__version__ = "0.1.0"


def frontend_dir() -> Path:
    """Return the folder holding templates/ and static/ (inside the wheel, or the source tree)."""
    packaged = Path(str(files("morphocluster"))) / "frontend"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "frontend"
