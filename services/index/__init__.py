"""Index service: Qdrant (HNSW and exact) beside our LSH bucket store in Redis, kept in step."""
