"""Business logic of the recommender service (no HTTP framework objects here)."""
