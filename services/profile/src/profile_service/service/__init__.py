"""Business rules of the profile service: no SQL, no HTTP objects."""
