"""Turn published checkpoints into MINDIR, ONNX and OpenVINO IR with the converted contract."""
