"""Free-text search: documents, the in-database index, and searches authorized in SQL."""
