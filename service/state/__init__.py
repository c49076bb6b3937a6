"""Service state: a small key-value interface (Redis or SQLite) and the typed records on it."""
