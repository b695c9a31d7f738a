"""The `imsearch` command: a gRPC client of the gateway, plus the launcher of the suite."""
