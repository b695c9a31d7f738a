"""Generated from protos/imsearch/v1."""
