"""facecamo: the torch-free core shared by training, the Triton python models and the client.

- :mod:`facecamo.spec`: tensor names, dtypes and shapes of the served pipeline (numpy only);
- :mod:`facecamo.align`: detection, 68 landmarks and the paper's alignment (numpy, OpenCV, dlib);
- :mod:`facecamo.paste`: paste-back and the fail-closed concealment;
- :mod:`facecamo.pipeline`: request validation and the frame-level steps around the networks.

Nothing is imported here, so ``from facecamo import spec`` works on a box with only numpy (the gRPC client).
"""
