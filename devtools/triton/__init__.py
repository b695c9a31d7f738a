"""Serving our ONNX models with NVIDIA Triton: the CPU repository builder and a server launcher."""
