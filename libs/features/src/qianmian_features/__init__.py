"""Feature access shared by all services: the Feast store, pushes, freshness checks."""

from qianmian_features.freshness import FeatureValue, check_freshness, view_of
from qianmian_features.settings import (
    FeastEnvironment,
    FeatureConfigError,
    FeatureSettings,
    redis_url_to_feast,
)
from qianmian_features.store import (
    CUSTOMER_ACTIVITY_COLUMNS,
    CUSTOMER_ACTIVITY_PUSH,
    OnlineFeatures,
    apply,
    feature_refs,
    historical_features,
    materialize,
    online_features,
    online_product_features,
    open_store,
    push_customer_activity,
    ttl_by_view,
)

__all__ = [
    "CUSTOMER_ACTIVITY_COLUMNS",
    "CUSTOMER_ACTIVITY_PUSH",
    "FeastEnvironment",
    "FeatureConfigError",
    "FeatureSettings",
    "FeatureValue",
    "OnlineFeatures",
    "apply",
    "check_freshness",
    "feature_refs",
    "historical_features",
    "materialize",
    "online_features",
    "online_product_features",
    "open_store",
    "push_customer_activity",
    "redis_url_to_feast",
    "ttl_by_view",
    "view_of",
]
