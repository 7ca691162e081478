"""Feature extraction and feature sets (see h5.py for the file layout)."""

from .h5 import (  # noqa: F401
    FeatureError, active_name, feature_path, list_feature_sets, load_features, read_features, set_active,
    write_features,
)
