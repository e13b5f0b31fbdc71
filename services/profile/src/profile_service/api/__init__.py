"""HTTP routes: parse, authorise, call the service layer."""
