"""Graph tools the sources and the conversion layer call: ONNX edits (FP16, dynamic batch, names),
OpenVINO IR export, and the ONNX → MindSpore importer (mindir/). Nothing here drives a conversion
(that is facezoo.conversion) or knows a source (facezoo.sources sits above)."""
