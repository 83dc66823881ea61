# SPDX-License-Identifier: Apache-2.0
"""facecamo: the torch-free core shared by training, the Triton python models and the client.

- :mod:`facecamo.spec`: tensor names, dtypes and shapes of the served pipeline, and the frame check (numpy only);
- :mod:`facecamo.detect`: the CenterFace detector's pre- and post-processing around whatever runs its network;
- :mod:`facecamo.align`: dlib detectors, 68 landmarks and the paper's alignment (numpy, OpenCV, dlib);
- :mod:`facecamo.paste`: paste-back and the fail-closed concealment;
- :mod:`facecamo.pipeline`: the one frame pipeline (validate, detect, align, networks, check, paste), its settings;
- :mod:`facecamo.networks`: the networks on ONNX Runtime, and the load-time check every network passes;
- :mod:`facecamo.repository`: reading an exported model repository without a server;
- :mod:`facecamo.tracking`: box matching across frames (numpy only).

Nothing is imported here, so ``from facecamo import spec`` works on a box with only numpy (the gRPC client).
"""
