"""Inference runtimes: what executes a model on a backend's device (Paddle Inference, ONNX Runtime,
OpenVINO). A cell is a backend (the platform) × a runtime × a precision."""
