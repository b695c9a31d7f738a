"""Gateway: the public SearchService, orchestrating encode -> search -> rerank over the other two."""
