"""Slicing: load and check an ONNX model, cut it into a chain or a graph of slices, tile ops too big for one circuit."""
