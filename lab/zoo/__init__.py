"""The model zoo: every model family of the study as a recipe that builds a PyTorch module,
exported to ONNX in Triton's repository layout (`imsearch models list|export`)."""
