"""Feature extraction and feature sets (see h5.py for the file layout)."""

from .h5 import FeatureError, active_name, feature_path, load_features, read_features, set_active, write_features  # noqa: F401
