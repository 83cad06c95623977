"""The query corpus: a fixture catalogue and the queries with their expected results."""
