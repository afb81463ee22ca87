"""CLIP image encoders from open_clip, applied to batches of rendered or loaded views.

Any open_clip model name works, with a pretrained tag (weights fetched by open_clip, so
a model hub must be reachable), a local checkpoint file, or random weights (for tests
and benchmarks: the real architecture and code path). Views go through the model's own
preprocessing, applied to uint8 tensors in batches, then `encode_image`, optionally
L2-normalised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import transforms

from connectivity.errors import ClipnavError, DataNotFoundError, close_matches
from envs.features import file_sha256

logger = logging.getLogger(__name__)


RANDOM_WEIGHTS = "random"


class EncoderError(ClipnavError, ValueError):
    """An encoder cannot be created: unknown model, unknown tag or unloadable weights."""


@dataclass(frozen=True)
class EncoderSpec:
    """Specification of the CLIP image encoder; the defaults are CLIP-ViL's ViT-B/32."""

    model: str = "ViT-B-32"
    """open_clip model name (ViT-B-32, RN50x4, ViT-L-14-336, ...)."""
    pretrained: str | None = "openai"
    """open_clip pretrained tag; None with no checkpoint gives random weights."""
    checkpoint: str | None = None
    """Local checkpoint file; takes the place of `pretrained`."""
    normalize: bool = False
    """L2-normalise each feature (CLIP-ViL's published features are not normalised)."""
    seed: int = 0
    """Seed of the random weights used when there is neither a tag nor a checkpoint."""


def _check_model_name(name: str) -> None:
    import open_clip

    known = open_clip.list_models()
    if name not in known and not name.startswith(("hf-hub:", "local-dir:")):
        raise EncoderError(
            f"unknown open_clip model {name!r}.{close_matches(name, known)} Known models: {', '.join(known)}"
        )


def _check_pretrained_tag(name: str, tag: str) -> None:
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(name)
    if tag not in tags:
        raise EncoderError(
            f"open_clip has no pretrained tag {tag!r} for {name}; known tags: {', '.join(tags) or 'none'}. "
            "Pass a local checkpoint file instead (--checkpoint), or use random weights for tests "
            "(--random-weights)."
        )


class ClipViewEncoder:
    """An open_clip image tower with its preprocessing, on a chosen device.

    On CUDA the forward pass runs in float16 autocast; on the CPU in float32.
    """

    def __init__(self, spec: EncoderSpec = EncoderSpec(), device: str | torch.device = "cpu"):
        import open_clip

        self.spec = spec
        self.device = torch.device(device)
        _check_model_name(spec.model)
        weights: str | None = None
        self.checkpoint_sha256: str | None = None
        if spec.checkpoint:
            path = Path(spec.checkpoint)
            if not path.is_file():
                raise DataNotFoundError(f"checkpoint file {path} not found")
            weights = str(path)
            self.checkpoint_sha256 = file_sha256(path)
        elif spec.pretrained:
            _check_pretrained_tag(spec.model, spec.pretrained)
            weights = spec.pretrained
        try:
            # Random weights come from a seeded generator, so every run (a resumed one, another
            # shard) builds the same network.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(spec.seed)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    spec.model, pretrained=weights, device=self.device
                )
        except Exception as error:  # open_clip and torch raise many types for unusable weights
            raise EncoderError(
                f"could not load weights {weights!r} for {spec.model}: {error}. Without a reachable "
                "model hub, download the checkpoint elsewhere and pass the local file (--checkpoint)."
            ) from None
        if weights is None:
            logger.warning("%s has random weights: use them for tests and benchmarks only", spec.model)
        # The tag that names the weights in the features' metadata.
        if spec.checkpoint:
            self.weights_tag = f"file:{Path(spec.checkpoint).name}"
        else:
            self.weights_tag = spec.pretrained or f"{RANDOM_WEIGHTS}-seed{spec.seed}"
        self.model = model.eval()
        self.preprocess = preprocess
        self.dim = int(model.visual.output_dim)
        self._tensor_steps = _tensor_pipeline(preprocess)

    def metadata(self) -> dict[str, Any]:
        """Return how the features are made by this encoder: model, weights and preprocessing.

        The keys `encoder`, `pretrained` and `normalization` are those of the feature
        stores' metadata, which agents check against their training features.
        """
        import open_clip

        return {
            "encoder": self.spec.model,
            "pretrained": self.weights_tag,
            "checkpoint": self.spec.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "random_weights": self.weights_tag.startswith(RANDOM_WEIGHTS),
            "normalization": "l2" if self.spec.normalize else "none",
            "dim": self.dim,
            "preprocess": dict(self.model.visual.preprocess_cfg),
            "library": f"open_clip {open_clip.__version__}, torch {torch.__version__}",
        }

    def preprocess_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Apply the model's preprocessing to uint8 images [N, 3, H, W]; return float [N, 3, S, S]."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images [N, 3, H, W], got {images.dtype} {list(images.shape)}")
        batch = images
        for step in self._tensor_steps:
            batch = step(batch)
        return batch

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> np.ndarray:
        """Return float32 features [N, dim] of preprocessed images [N, 3, S, S]."""
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
            features = self.model.encode_image(pixels.to(self.device))
        features = features.float()
        if self.spec.normalize:
            features = torch.nn.functional.normalize(features, dim=-1)
        return features.cpu().numpy()

    def encode(self, images: torch.Tensor) -> np.ndarray:
        """Return float32 features [N, dim] of uint8 images [N, 3, H, W]."""
        return self.forward(self.preprocess_batch(images.to(self.device)))


def _tensor_pipeline(preprocess: transforms.Compose) -> list:
    """Turn open_clip's PIL preprocessing into steps on batched uint8 tensors.

    Resize and CenterCrop run on uint8, where torchvision rounds like PIL. The step that
    converts to a tensor becomes a division by 255, and the PIL mode conversion is dropped.
    """
    steps: list = []
    for transform in preprocess.transforms:
        if isinstance(transform, (transforms.Resize, transforms.CenterCrop, transforms.Normalize)):
            steps.append(transform)
        elif isinstance(transform, transforms.ToTensor):
            steps.append(lambda batch: batch.float().div_(255.0))
        elif (
            type(transform).__name__ == "MaybeConvertMode"
            or getattr(transform, "__name__", "") == "_convert_to_rgb"
        ):
            continue
        else:
            raise EncoderError(
                f"preprocessing step {transform!r} has no batched tensor form; this model's "
                "preprocessing is not supported for extraction yet"
            )
    return steps
