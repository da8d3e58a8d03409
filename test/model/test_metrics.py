"""World-model metrics: PSNR/SSIM against known values, Fréchet distance against closed forms, LPIPS and FVD from
local weight files (random weights with the real structure), and the missing-file errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rynnvla_model import metrics

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*:DeprecationWarning")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------------------- PSNR
def test_psnr_of_a_constant_offset_is_the_textbook_value():
    target = np.full((2, 16, 20, 3), 100, dtype=np.uint8)
    pred = target.copy()
    pred[0] += 10  # MSE (10/255)^2
    pred[1] += 3
    expected = [20 * math.log10(255 / 10), 20 * math.log10(255 / 3)]
    # torchmetrics converts ln -> log10 with a float32 constant: agreement to ~1e-7 relative
    np.testing.assert_allclose(metrics.psnr_per_image(pred, target), expected, rtol=1e-6)
    assert metrics.psnr(pred, target) == pytest.approx(sum(expected) / 2, rel=1e-6)  # mean over images


def test_psnr_against_mse_of_random_images_and_identical_images_are_capped():
    a = _rng(1).integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    b = _rng(2).integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    mse = ((a.astype(np.float64) - b) / 255.0) ** 2
    expected = -10 * np.log10(mse.reshape(3, -1).mean(axis=1))
    np.testing.assert_allclose(metrics.psnr_per_image(a, b), expected, rtol=1e-6)
    assert metrics.psnr(a[0], a[0]) == metrics.PSNR_MAX_DB  # a single HxWx3 image; MSE 0
    assert metrics.psnr(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected.mean(), rel=1e-6)


# ----------------------------------------------------------------------------------------------------- SSIM
def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def _filter(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Reflect-padded 'same' correlation of one (H, W) channel with an odd square window."""
    r = window.shape[0] // 2
    padded = np.pad(img, r, mode="reflect")
    out = np.zeros_like(img)
    for dy in range(window.shape[0]):
        for dx in range(window.shape[1]):
            out += window[dy, dx] * padded[dy : dy + img.shape[0], dx : dx + img.shape[1]]
    return out


def _reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. SSIM on [0, 1] (H, W, 3) images, Gaussian 11 / 1.5 window, mean over pixels and channels."""
    window = _gaussian_window()
    c1, c2 = 0.01**2, 0.03**2
    maps = []
    for ch in range(3):
        a, b = x[..., ch], y[..., ch]
        mu_a, mu_b = _filter(a, window), _filter(b, window)
        var_a = np.maximum(_filter(a * a, window) - mu_a**2, 0)
        var_b = np.maximum(_filter(b * b, window) - mu_b**2, 0)
        cov = _filter(a * b, window) - mu_a * mu_b
        maps.append(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(maps))


def test_ssim_matches_an_independent_gaussian_window_implementation():
    a = _rng(3).integers(0, 256, (2, 32, 40, 3), dtype=np.uint8)
    noise = _rng(4).integers(-40, 41, a.shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    expected = [_reference_ssim(a[i] / 255.0, b[i] / 255.0) for i in range(2)]
    np.testing.assert_allclose(metrics.ssim_per_image(b, a), expected, atol=1e-6)
    assert metrics.ssim(b, a) == pytest.approx(np.mean(expected), abs=1e-6)
    assert 0.0 < metrics.ssim(b, a) < 0.99


def test_ssim_of_constant_images_is_the_luminance_term_and_identical_images_give_one():
    x, y = 200 / 255, 50 / 255
    c1 = 0.01**2
    pred = np.full((1, 16, 16, 3), 200, dtype=np.uint8)
    target = np.full((1, 16, 16, 3), 50, dtype=np.uint8)
    assert metrics.ssim(pred, target) == pytest.approx((2 * x * y + c1) / (x**2 + y**2 + c1), abs=1e-9)
    img = _rng(5).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert metrics.ssim(img, img) == pytest.approx(1.0, abs=1e-9)


def test_image_metrics_reject_bad_input():
    img = np.zeros((16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr(img.astype(np.float32), img)
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.ssim(img, np.zeros((16, 17, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        metrics.psnr(np.zeros((16, 16), dtype=np.uint8), np.zeros((16, 16), dtype=np.uint8))


# -------------------------------------------------------------------------------------------- Fréchet distance
def test_frechet_distance_of_identical_feature_sets_is_zero():
    full_rank = _rng(6).normal(size=(200, 16)) * 3 + 5
    rank_deficient = _rng(7).normal(size=(20, 400)) * 50  # N < D, like FVD on few clips
    for f in (full_rank, rank_deficient):
        assert metrics.frechet_distance_from_features(f, f.copy()) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 3.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.0])  # one variance 0 (singular covariance)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, abs=1e-10)
    # scalars (1-d Gaussians): (m1 - m2)^2 + (sd1 - sd2)^2
    assert metrics.frechet_distance([2.0], [[4.0]], [-1.0], [[1.0]]) == pytest.approx(9.0 + 1.0, abs=1e-12)


def _random_spd(dim: int, seed: int) -> np.ndarray:
    a = _rng(seed).normal(size=(dim, dim))
    return a @ a.T + 0.1 * np.eye(dim)


def test_frechet_distance_of_non_commuting_2x2_covariances_matches_the_closed_form():
    s1 = np.array([[2.0, 0.9], [0.9, 1.0]])
    s2 = np.array([[1.0, -0.7], [-0.7, 3.0]])
    assert not np.allclose(s1 @ s2, s2 @ s1)
    # For a 2x2 matrix A with positive eigenvalues l1, l2: tr sqrt(A) = sqrt(l1) + sqrt(l2) = sqrt(tr A + 2 sqrt(det A))
    a = s1 @ s2
    tr_sqrt = math.sqrt(np.trace(a) + 2 * math.sqrt(np.linalg.det(a)))
    mu1, mu2 = np.array([0.5, -1.0]), np.array([2.0, 0.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-10)


def test_frechet_distance_in_higher_dimensions_matches_the_eigenvalues_of_the_product():
    s1, s2 = _random_spd(6, 8), _random_spd(6, 9)
    mu1, mu2 = _rng(10).normal(size=6), _rng(11).normal(size=6)
    # tr sqrt(S1 S2) from the (real, positive) eigenvalues of the non-symmetric product
    tr_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_from_features_uses_mean_and_unbiased_covariance():
    f1, f2 = _rng(12).normal(size=(60, 5)), _rng(13).normal(size=(40, 5)) * 2 + 1
    expected = metrics.frechet_distance(f1.mean(0), np.cov(f1.T), f2.mean(0), np.cov(f2.T))
    assert metrics.frechet_distance_from_features(f1, f2) == pytest.approx(expected, rel=1e-12)
    assert expected > 1.0
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.frechet_distance_from_features(f1[:1], f2)
    with pytest.raises(ValueError, match="dimensions differ"):
        metrics.frechet_distance_from_features(f1, f2[:, :4])


# ---------------------------------------------------------------------------------------------------- LPIPS
@pytest.fixture(scope="module")
def alexnet_weights(tmp_path_factory) -> str:
    """torchvision's AlexNet checkpoint layout with random values (the real file is ImageNet-trained)."""
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lpips") / metrics.LPIPS_BACKBONE_FILES["alex"]
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return str(path)


def test_lpips_missing_weights_name_the_file_and_where_it_was_looked_for(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "alexnet.pth"
    with pytest.raises(metrics.MissingWeightsError, match=str(missing)):
        metrics.LPIPS(missing)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(metrics.MissingWeightsError) as err:
        metrics.LPIPS()
    assert str(tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in str(err.value)
    with pytest.raises(metrics.MissingWeightsError, match="linear heads"):
        metrics.lpips_linear_path("alex", tmp_path / "lin.pth")


def test_lpips_runs_end_to_end_from_local_files(alexnet_weights, tmp_path):
    lpips = metrics.LPIPS(alexnet_weights)
    heads = torch.load(metrics.lpips_linear_path("alex"), weights_only=True, map_location="cpu")
    assert torch.equal(lpips.model.lin0.model[1].weight, heads["lin0.model.1.weight"])
    backbone = torch.load(alexnet_weights, weights_only=True)
    assert torch.equal(getattr(lpips.model.net.slice3, "6").weight, backbone["features.6.weight"])

    a = _rng(14).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    b = _rng(15).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    assert lpips(a, a) == pytest.approx(0.0, abs=1e-7)
    scores = lpips.per_image(a, b)
    assert scores.shape == (3,) and np.all(scores > 0) and np.all(np.isfinite(scores))

    # a full LPIPS state dict (net.slice* + lin*) is accepted too and gives the same numbers
    full = tmp_path / "lpips_alex_full.pth"
    torch.save(lpips.model.state_dict(), full)
    np.testing.assert_allclose(metrics.LPIPS(full).per_image(a, b), scores, rtol=1e-6)


def test_lpips_rejects_a_file_of_the_wrong_network(alexnet_weights, tmp_path):
    wrong = tmp_path / "not_alexnet.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, wrong)
    with pytest.raises(ValueError, match=r"features\.0\.bias|shape"):
        metrics.LPIPS(wrong)


# ------------------------------------------------------------------------------------------------------ FVD
class _TinyI3D(torch.nn.Module):
    """A real TorchScript video network with the I3D calling convention; refuses inputs not prepared as I3D's."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 6, kernel_size=3, stride=(1, 4, 4))

    def forward(
        self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False
    ) -> torch.Tensor:
        if rescale or resize or not return_features:
            raise RuntimeError("expected rescale=False, resize=False, return_features=True")
        if x.dim() != 5 or x.shape[1] != 3 or x.shape[3] != 224 or x.shape[4] != 224:
            raise RuntimeError("expected (N, 3, T, 224, 224)")
        if bool(x.min() < -1.0) or bool(x.max() > 1.0):
            raise RuntimeError("expected values in [-1, 1]")
        h = torch.relu(self.conv(x))
        return torch.cat([h.mean(dim=(2, 3, 4)), h.amax(dim=(2, 3, 4))], dim=1)


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("i3d") / "tiny_i3d_torchscript.pt"
    torch.jit.save(torch.jit.script(_TinyI3D()), str(path))
    return str(path)


def test_i3d_missing_or_invalid_file_gives_a_clear_error(tmp_path):
    with pytest.raises(metrics.MissingWeightsError, match=r"I3D TorchScript file not found: looked for .*i3d\.pt"):
        metrics.I3DFeatures(tmp_path / "i3d.pt")
    not_script = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, not_script)
    with pytest.raises(ValueError, match="not a TorchScript module"):
        metrics.I3DFeatures(not_script)


def test_i3d_preprocessing_resizes_to_224_and_scales_to_minus_one_one(i3d_file):
    extractor = metrics.I3DFeatures(i3d_file)
    videos = np.zeros((2, 3, 32, 48, 3), dtype=np.uint8)
    videos[1] = 255
    x = extractor.preprocess(videos)
    assert x.shape == (2, 3, 3, 224, 224) and x.dtype == torch.float32
    assert torch.all(x[0] == -1.0) and torch.all(x[1] == 1.0)


def test_fvd_pipeline_runs_and_identical_video_sets_give_zero(i3d_file):
    extractor = metrics.I3DFeatures(i3d_file, batch_size=2)
    real = _rng(16).integers(0, 256, (5, 4, 32, 32, 3), dtype=np.uint8)
    fake = np.clip(real.astype(int) + _rng(17).integers(-80, 81, real.shape), 0, 255).astype(np.uint8)
    feats = extractor(real)
    assert feats.shape == (5, 12) and feats.dtype == np.float64 and np.all(np.isfinite(feats))
    assert metrics.frechet_video_distance(real, real.copy(), extractor) == pytest.approx(0.0, abs=1e-6)
    fvd = metrics.frechet_video_distance(fake, real, extractor)
    assert np.isfinite(fvd) and fvd > 1e-6
    with pytest.raises(ValueError, match=r"\(N, T, H, W, 3\)"):
        extractor(real[0])
