"""Repositories: the only place in the profile service that issues queries."""
