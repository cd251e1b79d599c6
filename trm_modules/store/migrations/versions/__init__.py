"""Migration revisions, oldest first by number."""
