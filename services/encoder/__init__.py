"""Encoder service: decodes images, preprocesses them per model and runs the model in micro-batches."""
