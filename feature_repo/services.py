"""Feature services: the versioned feature sets that models and the decision pipeline read.

A model records the feature service it was trained on; a new column or view means a new
version (``recommender_v2``), never an edit of one that a deployed model depends on.
"""

from feast import FeatureService
from views import customer_activity, customer_profile, product_stats

recommender_v1 = FeatureService(
    name="recommender_v1",
    features=[customer_profile, customer_activity, product_stats],
    description="Ranking and policy features of the decision pipeline, version 1.",
    tags={"owner": "recommender", "version": "1"},
)
