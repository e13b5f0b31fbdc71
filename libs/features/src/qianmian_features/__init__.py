"""Feature access shared by all services."""
