"""MindSpore checkpoints as conversion sources (``framework: mindspore``): the networks, the
checkpoint reader, the oneDNN handling and the context facezoo runs MindSpore in."""
