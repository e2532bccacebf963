"""Run converted models through OpenVINO, ONNX Runtime or MindSpore."""
