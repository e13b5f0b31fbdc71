"""Candidate models behind one interface (:class:`recommender.ml.models.base.Recommender`)."""

from __future__ import annotations

from recommender.ml.models.als import ALSRecommender
from recommender.ml.models.base import Recommender
from recommender.ml.models.bpr import BPRRecommender
from recommender.ml.models.lightfm_hybrid import LightFMHybrid
from recommender.ml.models.oracle import OracleRecommender
from recommender.ml.models.popularity import PopularityRecommender, SegmentPopularityRecommender

#: Model types that can be trained, saved and loaded by name.
MODEL_TYPES: dict[str, type[Recommender]] = {
    cls.model_type: cls
    for cls in (
        ALSRecommender,
        BPRRecommender,
        LightFMHybrid,
        PopularityRecommender,
        SegmentPopularityRecommender,
    )
}

__all__ = [
    "MODEL_TYPES",
    "ALSRecommender",
    "BPRRecommender",
    "LightFMHybrid",
    "OracleRecommender",
    "PopularityRecommender",
    "Recommender",
    "SegmentPopularityRecommender",
]
