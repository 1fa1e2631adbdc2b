"""Use cases. Each takes a session and an actor, flushes, and never commits: the caller
(a view, an API endpoint or a CLI command) owns the one transaction."""
