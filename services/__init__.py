"""The three gRPC services: encoder (images -> embeddings), index (vectors -> neighbours), gateway."""
