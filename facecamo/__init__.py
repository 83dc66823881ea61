"""facecamo: the torch-free core shared by training, the Triton python models and the client.

Only numpy, OpenCV and dlib are imported here, so a video-management-system box can install it
without PyTorch.
"""

from facecamo.align import (
    ALIGN_CROP,
    ALIGN_FRAME,
    AlignedFace,
    Detection,
    FaceAligner,
    FaceDetector,
    LandmarkPredictor,
    alignment_affine,
    as_rgb_uint8,
    warp_face,
)

__all__ = [
    "ALIGN_CROP",
    "ALIGN_FRAME",
    "AlignedFace",
    "Detection",
    "FaceAligner",
    "FaceDetector",
    "LandmarkPredictor",
    "alignment_affine",
    "as_rgb_uint8",
    "warp_face",
]
