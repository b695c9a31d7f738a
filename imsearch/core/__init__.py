"""Plumbing every service shares: errors, gRPC server factory, metrics, settings."""
