"""Inference: the ONNX Runtime backend (graphs, sessions, int8) and the Scorer."""
