"""The Kodak images (App. B.1) shipped with flexlib: 24 RGB photos of 768x512 (some portrait)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

KODAK_DIR = Path(__file__).resolve().parent.parent / "assets" / "kodak"


def kodak_image(number: int, folder: Path = KODAK_DIR) -> torch.Tensor:
    """kodimXX.png as a (3, H, W) float tensor in [0, 1]."""
    path = folder / f"kodim{number:02d}.png"
    if not path.is_file():
        from .storage import MissingDatasetError
        raise MissingDatasetError(f"kodak image {number}", path,
                                  "reinstall flexlib (the images ship in flexlib/assets/kodak) or get them from "
                                  "https://r0k.us/graphics/kodak/")
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
