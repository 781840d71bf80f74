"""Model inputs made from the test photos, as the worker makes them: uint8 crops
(what engines take) and, for torch-level checks, the normalised tensor."""

import numpy as np

from tests.support.images import PHOTOS, encode, photo
from worker.preprocess import normalise, preprocess


def photo_crops(names=PHOTOS, fmt: str = "JPEG") -> np.ndarray:
    """uint8 N×224×224×3, one crop per photo."""
    return np.stack([preprocess(encode(photo(name).convert("RGB"), fmt), 10**8)
                     for name in names])


def as_tensor(crops: np.ndarray):
    """uint8 N×224×224×3 → the float32 N×3×224×224 tensor torchvision's model takes."""
    import torch

    return torch.from_numpy(normalise(crops))
