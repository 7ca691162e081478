"""Seed clustering: reduce the features, run HDBSCAN, write rounds of candidate nodes."""

from .estimator import ClusterParamError, SeedClusterer, parse_reduce, reduce_features  # noqa: F401
from .rounds import (  # noqa: F401
    DEFAULT_BACKEND, DEFAULT_METHOD, DEFAULT_MIN_CLUSTER_SIZE, DEFAULT_MIN_SAMPLES, DEFAULT_REDUCE,
    MIN_CLUSTER_SIZE_FLOOR, RoundResult, cluster_round, next_min_cluster_size,
)
