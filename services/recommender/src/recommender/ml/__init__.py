"""The recommender's learning half: data, models, metrics, registry and offline evaluation."""
