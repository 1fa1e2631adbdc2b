"""Web plumbing every area's views share: one transaction per request, messages."""
