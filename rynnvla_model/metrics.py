"""Image and video metrics for the world model: PSNR, SSIM, LPIPS, Fréchet distance and FVD. No ROS, no downloads.

Images are uint8 RGB, ``(N, H, W, 3)`` or one ``(H, W, 3)`` (numpy arrays or torch tensors); they are scaled to
[0, 1] floats (data range 255 -> 1.0) before any metric.

* **PSNR** (torchmetrics ``peak_signal_noise_ratio``, data range 1.0): per image over all pixels and channels,
  ``10 log10(1 / MSE)``, then the mean over images. Identical images (MSE 0) count as :data:`PSNR_MAX_DB`.
* **SSIM** (torchmetrics ``structural_similarity_index_measure``): Gaussian window 11x11 with sigma 1.5, K1 = 0.01,
  K2 = 0.03, data range 1.0, borders reflect-padded; the SSIM map is averaged over pixels and channels per image,
  then over images.
* **LPIPS** (:class:`LPIPS`): torchmetrics' LPIPS network with the backbone's ImageNet weights read from a local
  torchvision checkpoint file and the linear heads shipped inside the torchmetrics package (never downloaded).
* **Fréchet distance** (:func:`frechet_distance`): ``||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)``,
  the cross term computed as the nuclear norm of ``S1^1/2 S2^1/2`` (float64, no imaginary parts to discard).
* **FVD** (:class:`I3DFeatures`, :func:`frechet_video_distance`): the Fréchet distance of I3D features from a local
  TorchScript file (the ``i3d_torchscript.pt`` used by StyleGAN-V and most FVD code; Kinetics-400 I3D, 400 logits
  before the softmax).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

PSNR_MAX_DB = 100.0
"""PSNR given to an image identical to its target (its MSE is 0 and its PSNR infinite)."""
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
"""torchmetrics derives the Gaussian window from sigma: 2 * int(3.5 * sigma + 0.5) + 1 = 11 for sigma 1.5."""

LPIPS_BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
"""torchvision's ImageNet checkpoint file of each LPIPS backbone (download.pytorch.org/models/<file>)."""
I3D_RESOLUTION = 224
I3D_CALL_KWARGS = {"rescale": False, "resize": False, "return_features": True}
"""Keyword arguments of the I3D TorchScript module: inputs already in [-1, 1] and 224 px; 400-d features."""


class MissingWeightsError(FileNotFoundError):
    """A metric's weights file is not on this machine (nothing is ever downloaded)."""


# ------------------------------------------------------------------------------------------------ images
def _images01(images: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """uint8 (N, H, W, 3) / (H, W, 3) -> float64 (N, 3, H, W) in [0, 1]."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images if images.flags.writeable else images.copy())
    t = images
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(images).__name__}")
    if t.dtype != torch.uint8:
        raise ValueError(f"{name} must be uint8 RGB images (0..255), got dtype {t.dtype}")
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, H, W, 3) or (H, W, 3), got {tuple(t.shape)}")
    return t.detach().cpu().permute(0, 3, 1, 2).to(torch.float64) / 255.0


def _pair(pred: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    p, t = _images01(pred, "pred"), _images01(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    if p.shape[0] == 0:
        raise ValueError("no images given")
    return p, t


def psnr_per_image(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N,) PSNR in dB of each image (data range 1.0 on [0, 1] floats; identical images -> :data:`PSNR_MAX_DB`)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    p, t = _pair(pred, target)
    values = peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return np.minimum(values.reshape(-1).numpy().astype(np.float64), PSNR_MAX_DB)


def psnr(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Mean over images of the per-image PSNR (dB) of uint8 RGB images; see :func:`psnr_per_image`."""
    return float(psnr_per_image(pred, target).mean())


def ssim_per_image(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N,) SSIM of each image: Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, data range 1.0, reflect-padded
    borders, averaged over pixels and RGB channels."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    p, t = _pair(pred, target)
    if min(p.shape[-2:]) <= SSIM_WINDOW // 2:
        raise ValueError(f"SSIM needs images larger than {SSIM_WINDOW // 2} pixels, got {tuple(p.shape[-2:])}")
    values = [  # in chunks: torchmetrics keeps several full-size float copies of its inputs
        structural_similarity_index_measure(
            p[i : i + 64], t[i : i + 64], gaussian_kernel=True, sigma=SSIM_SIGMA, data_range=1.0, k1=0.01, k2=0.03,
            reduction="none",
        ).reshape(-1)
        for i in range(0, len(p), 64)
    ]  # fmt: skip
    return torch.cat(values).numpy().astype(np.float64)


def ssim(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Mean over images of the per-image SSIM of uint8 RGB images; see :func:`ssim_per_image`."""
    return float(ssim_per_image(pred, target).mean())


# ------------------------------------------------------------------------------------------ Fréchet distance
def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance (eigen-decomposition; tiny negative eigenvalues set to 0)."""
    sym = (sigma + sigma.T) / 2.0
    values, vectors = np.linalg.eigh(sym)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def _check_stats(mu: Any, sigma: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    m = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    s = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if m.ndim != 1 or s.shape != (m.shape[0], m.shape[0]):
        raise ValueError(f"{name}: mu must be (D,) and sigma (D, D), got {m.shape} and {s.shape}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s))):
        raise ValueError(f"{name}: statistics contain NaN or inf")
    return m, s


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``tr((S1^1/2 S2 S1^1/2)^1/2)`` equals the sum of the singular values of ``S1^1/2 S2^1/2``; that form needs only
    symmetric eigen-decompositions and an SVD, is real by construction and stays accurate for singular
    (rank-deficient) covariances. The result is clipped at 0 against rounding.
    """
    m1, s1 = _check_stats(mu1, sigma1, "first")
    m2, s2 = _check_stats(mu2, sigma2, "second")
    if m1.shape != m2.shape:
        raise ValueError(f"feature dimensions differ: {m1.shape[0]} vs {m2.shape[0]}")
    cross = np.linalg.svd(_psd_sqrt(s1) @ _psd_sqrt(s2), compute_uv=False).sum()
    diff = m1 - m2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * cross)
    return max(value, 0.0)


def feature_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of an (N, D) feature array (N >= 2), in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be an (N, D) array with N >= 2, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("features contain NaN or inf")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance_from_features(features1: Any, features2: Any) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


# ------------------------------------------------------------------------------------------------- LPIPS
def _require_file(path: Path, what: str, hint: str) -> Path:
    if not path.is_file():
        raise MissingWeightsError(f"{what} not found: looked for {path}. {hint}")
    return path


def lpips_backbone_path(net: str = "alex", weights: str | Path | None = None) -> Path:
    """The backbone checkpoint to use: ``weights`` when given, else torchvision's cache file
    ``$TORCH_HOME/hub/checkpoints/<file>``; raises :class:`MissingWeightsError` naming the path when it is absent."""
    if net not in LPIPS_BACKBONE_FILES:
        raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_BACKBONE_FILES)}, got {net!r}")
    name = LPIPS_BACKBONE_FILES[net]
    path = Path(weights) if weights is not None else Path(torch.hub.get_dir()) / "checkpoints" / name
    hint = (
        f"LPIPS-{net} needs torchvision's ImageNet weights {name} (https://download.pytorch.org/models/{name}); "
        "copy that file to this machine and pass its path (nothing is downloaded)."
    )
    return _require_file(path, f"LPIPS {net} backbone weights", hint)


def lpips_linear_path(net: str = "alex", weights: str | Path | None = None) -> Path:
    """The LPIPS linear-head file: ``weights`` when given, else the one shipped in torchmetrics
    (``torchmetrics/functional/image/lpips_models/<net>.pth``)."""
    if weights is None:
        import torchmetrics.functional.image.lpips as tm_lpips

        weights = Path(tm_lpips.__file__).parent / "lpips_models" / f"{net}.pth"
    hint = "It holds lin<i>.model.1.weight tensors (the LPIPS v0.1 heads, shipped with torchmetrics)."
    return _require_file(Path(weights), f"LPIPS {net} linear heads", hint)


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable PyTorch weights file: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} must hold a state dict of tensors")
    return state


class LPIPS:
    """LPIPS (Zhang et al. 2018) between uint8 RGB images, with weights from local files only.

    ``backbone_weights`` is torchvision's ImageNet checkpoint of the backbone (``alexnet-owt-7be5be79.pth`` for
    ``net="alex"``; see :data:`LPIPS_BACKBONE_FILES`; keys ``features.<i>.weight/bias``, the classifier is ignored),
    or a full LPIPS state dict (``net.slice<k>.<i>.*`` and ``lin<k>.model.1.weight``). Without it the file is looked
    for in torchvision's cache. The linear heads default to the file shipped with torchmetrics. Images are scaled to
    [-1, 1] as LPIPS expects; lower is more similar, identical images give 0.
    """

    def __init__(
        self,
        backbone_weights: str | Path | None = None,
        net: str = "alex",
        linear_weights: str | Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
    ) -> None:
        from torchmetrics.functional.image.lpips import _NoTrainLpips

        backbone_path = lpips_backbone_path(net, backbone_weights)
        state = _load_tensors(backbone_path)
        # pnet_rand=True builds the backbone with weights=None (no download); pretrained=False skips the heads' file.
        model = _NoTrainLpips(pretrained=False, net=net, pnet_rand=True)
        if any(k.startswith("net.") for k in state):
            full = state
        else:
            full = self._from_torchvision(model, state, backbone_path)
            full.update(_load_tensors(lpips_linear_path(net, linear_weights)))
        own = model.state_dict()
        wanted = {k for k in own if not k.startswith("lins.")}  # lins.* alias lin<i>.*
        missing = sorted(wanted - set(full))
        if missing:
            raise ValueError(f"LPIPS weights lack {missing[:6]}{' ...' if len(missing) > 6 else ''}")
        for key in wanted:
            if tuple(full[key].shape) != tuple(own[key].shape):
                raise ValueError(
                    f"LPIPS weight {key}: shape {tuple(full[key].shape)}, expected {tuple(own[key].shape)}"
                )
        model.load_state_dict({k: full[k] for k in wanted}, strict=False)
        self.net = net
        self.backbone_path = backbone_path
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size = batch_size

    @staticmethod
    def _from_torchvision(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
        """Map torchvision ``features.<i>.*`` keys onto the LPIPS backbone's ``net.slice<k>.<i>.*`` keys."""
        out: dict[str, Any] = {}
        for key in model.state_dict():
            if not key.startswith("net."):
                continue
            _, _slice, rest = key.split(".", 2)
            source = f"features.{rest}"
            if source not in state:
                raise ValueError(f"{path}: no {source} (expected torchvision's checkpoint of the LPIPS backbone)")
            out[key] = state[source]
        return out

    @torch.no_grad()
    def per_image(self, pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N,) LPIPS of each image pair."""
        p, t = _pair(pred, target)
        out = []
        for i in range(0, p.shape[0], self.batch_size):
            a = p[i : i + self.batch_size].to(self.device, torch.float32)
            b = t[i : i + self.batch_size].to(self.device, torch.float32)
            out.append(self.model(a, b, normalize=True).reshape(-1).double().cpu())
        return torch.cat(out).numpy()

    def __call__(self, pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
        """Mean LPIPS over image pairs."""
        return float(self.per_image(pred, target).mean())


# --------------------------------------------------------------------------------------------------- FVD
def _videos01(videos: Any) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) -> float32 (N, T, 3, H, W) in [0, 1]."""
    t = torch.from_numpy(np.array(videos)) if isinstance(videos, np.ndarray) else videos
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8:
        raise ValueError("videos must be uint8 arrays or tensors")
    if t.ndim != 5 or t.shape[-1] != 3:
        raise ValueError(f"videos must have shape (N, T, H, W, 3), got {tuple(t.shape)}")
    return t.permute(0, 1, 4, 2, 3).float() / 255.0


class I3DFeatures:
    """Video features from an I3D TorchScript file (``--i3d path.pt``), for FVD.

    Each video's frames are resized to 224x224 (bilinear, no crop, no antialiasing, like the original TensorFlow FVD
    preprocessing), scaled to [-1, 1] and passed as one (N, 3, T, 224, 224) float batch to
    ``module(x, rescale=False, resize=False, return_features=True)``: the calling convention of the widely used
    ``i3d_torchscript.pt`` (Kinetics-400 I3D; 400 pre-softmax features). The standard FVD uses 16-frame clips.
    """

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device = "cpu",
        resolution: int = I3D_RESOLUTION,
        batch_size: int = 8,
        call_kwargs: dict[str, Any] | None = None,
    ) -> None:
        path = _require_file(
            Path(path),
            "I3D TorchScript file",
            "FVD needs an I3D network saved with torch.jit (e.g. i3d_torchscript.pt, the Kinetics-400 I3D of "
            "StyleGAN-V / fvd-comparison); copy it to this machine and pass its path with --i3d.",
        )
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.x but is the format I3D ships in
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(str(path), map_location=device).eval()
        except Exception as exc:
            raise ValueError(f"{path} is not a TorchScript module (save one with torch.jit.save): {exc}") from exc
        self.path = path
        self.device = torch.device(device)
        self.resolution = resolution
        self.batch_size = batch_size
        self.call_kwargs = dict(I3D_CALL_KWARGS if call_kwargs is None else call_kwargs)

    def preprocess(self, videos: Any) -> torch.Tensor:
        """uint8 (N, T, H, W, 3) -> float32 (N, 3, T, R, R) in [-1, 1] on the module's device."""
        v = _videos01(videos)
        n, t, c, h, w = v.shape
        frames = v.reshape(n * t, c, h, w).to(self.device)
        if (h, w) != (self.resolution, self.resolution):
            size = (self.resolution, self.resolution)
            frames = torch.nn.functional.interpolate(frames, size=size, mode="bilinear", align_corners=False)
        frames = frames.clamp(0.0, 1.0) * 2.0 - 1.0
        return frames.reshape(n, t, c, self.resolution, self.resolution).permute(0, 2, 1, 3, 4).contiguous()

    @torch.no_grad()
    def __call__(self, videos: Any) -> np.ndarray:
        """(N, D) float64 features of N uint8 videos (N, T, H, W, 3)."""
        out = []
        for i in range(0, len(videos), self.batch_size):
            x = self.preprocess(videos[i : i + self.batch_size])
            feats = self.module(x, **self.call_kwargs)
            out.append(feats.reshape(feats.shape[0], -1).double().cpu())
        if not out:
            raise ValueError("no videos given")
        return torch.cat(out).numpy()


def frechet_video_distance(videos1: Any, videos2: Any, features: I3DFeatures | Callable[[Any], np.ndarray]) -> float:
    """FVD between two sets of uint8 videos (N, T, H, W, 3) (N >= 2 each) with an I3D feature extractor."""
    return frechet_distance_from_features(features(videos1), features(videos2))
