"""Evaluation of retrieval quality: metrics now, the `imsearch eval` harness next."""
