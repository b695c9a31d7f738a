"""Inference runtimes behind one small protocol: onnxruntime in-process (default), Triton later."""
