"""imsearch: visual search over gRPC. Shared code for the encoder, index and gateway services."""
