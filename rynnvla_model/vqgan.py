"""A VQGAN with Chameleon's image-tokenizer architecture and parameter names (encoder and decoder).

The module tree mirrors the taming-transformers ``VQModel`` that Chameleon's ``vqgan.ckpt`` was saved from, so its
``state_dict`` loads strictly: ``encoder.conv_in``, ``encoder.down.{i}.block.{j}.{norm1,conv1,norm2,conv2,
nin_shortcut}``, ``encoder.down.{i}.attn.{j}.{norm,q,k,v,proj_out}``, ``encoder.down.{i}.downsample.conv``,
``encoder.mid.{block_1,attn_1,block_2}``, ``encoder.norm_out``, ``encoder.conv_out``, ``quant_conv``,
``quantize.embedding``, ``post_quant_conv`` and the decoder's ``conv_in``, ``mid.*``,
``up.{i}.{block,attn,upsample.conv}``, ``norm_out``, ``conv_out``. The encoder, quantiser and the two 1x1 convs match
``transformers``' ``ChameleonVQVAE`` key for key; that class has no decoder, which this module adds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
DROPPED_PREFIXES = ("loss.", "discriminator.", "perceptual_loss.")
"""Training-only entries of a Lightning VQGAN checkpoint that the model does not own."""


@dataclass(frozen=True)
class VQGANConfig:
    """Architecture of a VQGAN (field names as in ``vqgan.yaml``'s ``ddconfig`` plus ``n_embed``/``embed_dim``)."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = ()
    z_channels: int = 256
    embed_dim: int = 256
    n_embed: int = 8192
    resolution: int = 512
    in_channels: int = 3
    out_ch: int = 3
    dropout: float = 0.0
    double_z: bool = False
    num_groups: int = 32
    """GroupNorm groups (32 in Chameleon; small test configs use fewer)."""
    beta: float = 0.25
    """Weight of the commitment term in :attr:`QuantizerOutput.loss`."""
    local: bool = False
    """An encoder that sees each token's patch alone (1x1 convs, 2x2 stride-2 downsampling, no attention, each
    position normalised over its own channels instead of GroupNorm's image-wide statistics), so an unchanged patch
    keeps its code whatever moves elsewhere. The decoder is unchanged. Not Chameleon's layout (``local: false``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        if not self.ch_mult or min(self.ch_mult) < 1:
            raise ValueError(f"ch_mult must be a non-empty list of positive ints, got {self.ch_mult}")
        for name in ("ch", "num_res_blocks", "z_channels", "embed_dim", "n_embed", "resolution", "num_groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for mult in (1, *self.ch_mult):
            if (self.ch * mult) % self.num_groups:
                raise ValueError(f"channel count {self.ch * mult} is not divisible by num_groups {self.num_groups}")
        if self.local and self.attn_resolutions:
            raise ValueError(f"a local VQGAN has no attention, got attn_resolutions {self.attn_resolutions}")
        if self.double_z:
            raise ValueError("double_z=True (a KL autoencoder) is not a VQGAN; Chameleon uses double_z: false")

    @property
    def downsample_factor(self) -> int:
        """Pixels per latent cell along one side (16 for Chameleon)."""
        return 2 ** (len(self.ch_mult) - 1)

    # ---------------------------------------------------------------- presets
    @classmethod
    def chameleon(cls) -> VQGANConfig:
        """Chameleon's image tokenizer: 8192 codes of width 256, 16x downsampling, 512 px training resolution."""
        return cls()

    @classmethod
    def small(cls, n_embed: int = 1024, downsample_factor: int = 16) -> VQGANConfig:
        """A CPU-sized tokenizer for compact models (about 1.3 M parameters at 16x, 1.2 M at 8x)."""
        levels = {8: (1, 2, 2, 2), 16: (1, 1, 2, 2, 2)}
        if downsample_factor not in levels:
            raise ValueError(f"the small preset downsamples 8x or 16x, got {downsample_factor}")
        return cls(ch=32, ch_mult=levels[downsample_factor], num_res_blocks=1, z_channels=32, embed_dim=32,
                   n_embed=n_embed, resolution=256, num_groups=8)  # fmt: skip

    @classmethod
    def tiny(cls, n_embed: int = 64, downsample_factor: int = 16) -> VQGANConfig:
        """A minimal model for unit tests (a few thousand parameters)."""
        levels = downsample_factor.bit_length()
        if 2 ** (levels - 1) != downsample_factor:
            raise ValueError(f"downsample_factor must be a power of two, got {downsample_factor}")
        return cls(ch=8, ch_mult=(1,) * levels, num_res_blocks=1, attn_resolutions=(), z_channels=8, embed_dim=4,
                   n_embed=n_embed, resolution=64, num_groups=4)  # fmt: skip

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        d = asdict(self)
        d["ch_mult"] = list(self.ch_mult)
        d["attn_resolutions"] = list(self.attn_resolutions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VQGANConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown VQGAN config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_yaml_dict(cls, d: dict[str, Any]) -> VQGANConfig:
        """From Chameleon's ``vqgan.yaml`` content (the whole file or its ``model.params``)."""
        params = d.get("model", {}).get("params", d) if isinstance(d.get("model"), dict) else d
        if "ddconfig" not in params or "n_embed" not in params or "embed_dim" not in params:
            raise ValueError("a VQGAN yaml needs model.params with 'ddconfig', 'n_embed' and 'embed_dim'")
        dd = dict(params["ddconfig"])
        keys = ("ch", "ch_mult", "num_res_blocks", "attn_resolutions", "z_channels", "resolution", "in_channels",
                "out_ch", "dropout", "double_z")  # fmt: skip
        missing = [k for k in ("ch", "ch_mult", "num_res_blocks", "z_channels") if k not in dd]
        if missing:
            raise ValueError(f"the VQGAN yaml's ddconfig lacks {missing}")
        unsupported = {
            "attn_type": dd.get("attn_type", "vanilla") != "vanilla",
            "use_linear_attn": bool(dd.get("use_linear_attn", False)),
            "resamp_with_conv": not dd.get("resamp_with_conv", True),
            "tanh_out": bool(dd.get("tanh_out", False)),
            "give_pre_end": bool(dd.get("give_pre_end", False)),
        }
        bad = [f"{k}={dd[k]!r}" for k, is_bad in unsupported.items() if is_bad]
        if bad:
            raise ValueError(f"unsupported VQGAN ddconfig settings {bad} (Chameleon uses the taming defaults)")
        kwargs = {k: dd[k] for k in keys if k in dd}
        kwargs["attn_resolutions"] = tuple(kwargs.get("attn_resolutions") or ())
        return cls(n_embed=int(params["n_embed"]), embed_dim=int(params["embed_dim"]), **kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path) -> VQGANConfig:
        """Read ``vqgan.yaml``."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"VQGAN config not found: looked for {path}")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path} does not hold a YAML mapping")
        try:
            return cls.from_yaml_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc


# -------------------------------------------------------------------- building blocks
class PositionNorm(nn.Module):
    """Normalises each position of (N, C, H, W) over its C channels (``weight``/``bias`` named as GroupNorm's)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def _norm(channels: int, groups: int | None) -> nn.Module:
    """GroupNorm with ``groups`` groups, or :class:`PositionNorm` when ``groups`` is None (a local VQGAN)."""
    if groups is None:
        return PositionNorm(channels)
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """Norm-swish-conv twice with a residual; a 1x1 ``nin_shortcut`` when the width changes."""

    def __init__(self, c_in: int, c_out: int, dropout: float, groups: int | None, kernel: int = 3) -> None:
        super().__init__()
        self.norm1 = _norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
        self.norm2 = _norm(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel, padding=kernel // 2)
        self.nin_shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1-conv projections ``q``, ``k``, ``v``, ``proj_out``."""

    def __init__(self, channels: int, groups: int | None) -> None:
        super().__init__()
        self.norm = _norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = self.norm(x)

        def tokens(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(n, 1, c, h * w).transpose(2, 3)

        out = F.scaled_dot_product_attention(tokens(self.q(y)), tokens(self.k(y)), tokens(self.v(y)))
        return x + self.proj_out(out.transpose(2, 3).reshape(n, c, h, w))


class Downsample(nn.Module):
    """Stride-2 3x3 conv after padding one pixel on the right and bottom (``local``: a 2x2 stride-2 conv, which
    mixes no pixels across 2x2 cells)."""

    def __init__(self, channels: int, local: bool = False) -> None:
        super().__init__()
        self.local = local
        self.conv = nn.Conv2d(channels, channels, 2 if local else 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x if self.local else F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling followed by a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Mid(nn.Module):
    def __init__(
        self, channels: int, dropout: float, groups: int | None, kernel: int = 3, attention: bool = True
    ) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout, groups, kernel)
        self.attn_1 = AttnBlock(channels, groups) if attention else nn.Identity()
        self.block_2 = ResnetBlock(channels, channels, dropout, groups, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Level(nn.Module):
    """One resolution level: ``block`` and ``attn`` lists plus an optional ``downsample``/``upsample``."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()

    def run(self, h: torch.Tensor) -> torch.Tensor:
        for j, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[j](h)
        return h


class Encoder(nn.Module):
    """Images (N, in_channels, H, W) -> latents (N, z_channels, H/f, W/f)."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        g, k = (None, 1) if cfg.local else (cfg.num_groups, 3)
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, k, padding=k // 2)
        self.down = nn.ModuleList()
        res, c_in = cfg.resolution, cfg.ch
        for i, mult in enumerate(cfg.ch_mult):
            level = _Level()
            c_out = cfg.ch * mult
            for _ in range(cfg.num_res_blocks):
                level.block.append(ResnetBlock(c_in, c_out, cfg.dropout, g, k))
                c_in = c_out
                if res in cfg.attn_resolutions:
                    level.attn.append(AttnBlock(c_in, g))
            if i != len(cfg.ch_mult) - 1:
                level.downsample = Downsample(c_in, cfg.local)
                res //= 2
            self.down.append(level)
        self.mid = _Mid(c_in, cfg.dropout, g, k, attention=not cfg.local)
        self.norm_out = _norm(c_in, g)
        self.conv_out = nn.Conv2d(c_in, cfg.z_channels, k, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level.run(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latents (N, z_channels, h, w) -> images (N, out_ch, h*f, w*f)."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        g = cfg.num_groups
        n_levels = len(cfg.ch_mult)
        c_in = cfg.ch * cfg.ch_mult[-1]
        res = cfg.resolution // 2 ** (n_levels - 1)
        self.conv_in = nn.Conv2d(cfg.z_channels, c_in, 3, padding=1)
        self.mid = _Mid(c_in, cfg.dropout, g)
        levels: list[_Level] = []
        for i in reversed(range(n_levels)):
            level = _Level()
            c_out = cfg.ch * cfg.ch_mult[i]
            for _ in range(cfg.num_res_blocks + 1):
                level.block.append(ResnetBlock(c_in, c_out, cfg.dropout, g))
                c_in = c_out
                if res in cfg.attn_resolutions:
                    level.attn.append(AttnBlock(c_in, g))
            if i != 0:
                level.upsample = Upsample(c_in)
                res *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)  # up[i] works at the resolution of encoder level i
        self.norm_out = _norm(c_in, g)
        self.conv_out = nn.Conv2d(c_in, cfg.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level.run(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


@dataclass
class QuantizerOutput:
    """Result of :class:`VectorQuantizer`: straight-through latents, codes and the two VQ loss terms."""

    z_q: torch.Tensor
    """(N, embed_dim, h, w); gradients flow to the encoder as if quantisation were the identity."""
    codes: torch.Tensor
    """(N, h, w) int64."""
    codebook_loss: torch.Tensor
    """mean ||sg(z) - e||^2: moves the codebook towards the encoder outputs."""
    commitment_loss: torch.Tensor
    """mean ||z - sg(e)||^2: keeps the encoder close to its codes."""
    beta: float

    @property
    def loss(self) -> torch.Tensor:
        """``codebook_loss + beta * commitment_loss`` (the VQ-VAE objective).

        taming-transformers' default ("legacy") quantiser puts ``beta`` on the codebook term instead; combine the two
        fields yourself to reproduce that.
        """
        return self.codebook_loss + self.beta * self.commitment_loss


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook lookup (``embedding``: n_embed x embed_dim)."""

    def __init__(self, n_embed: int, embed_dim: int, beta: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)
        self.beta = beta

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (N, h, w) of latents (N, embed_dim, h, w)."""
        n, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c).float()
        book = self.embedding.weight.float()
        dist = flat.pow(2).sum(1, keepdim=True) + book.pow(2).sum(1) - 2.0 * flat @ book.t()
        return dist.argmin(dim=1).reshape(n, h, w)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Latents (N, embed_dim, h, w) of codes (N, h, w)."""
        return self.embedding(codes).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        codes = self.nearest(z)
        e = self.lookup(codes).to(z.dtype)
        codebook = F.mse_loss(e, z.detach())
        commitment = F.mse_loss(z, e.detach())
        z_q = z + (e - z).detach()
        return QuantizerOutput(z_q, codes, codebook, commitment, self.beta)


class VQGAN(nn.Module):
    """Encoder + quantiser + decoder with Chameleon's parameter names."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = VectorQuantizer(config.n_embed, config.embed_dim, config.beta)
        self.quant_conv = nn.Conv2d(config.z_channels, config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)

    def _check_images(self, images: torch.Tensor) -> None:
        f = self.config.downsample_factor
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(f"images must have shape (N, {self.config.in_channels}, H, W), got {tuple(images.shape)}")
        if images.shape[2] % f or images.shape[3] % f:
            raise ValueError(f"image sides must be multiples of {f}, got {images.shape[2]}x{images.shape[3]}")
        if not images.is_floating_point():
            raise ValueError(f"images must be float in [-1, 1], got dtype {images.dtype}")

    def quantize_images(self, images: torch.Tensor) -> QuantizerOutput:
        """Encoder, ``quant_conv`` and quantiser (differentiable through the straight-through estimator)."""
        self._check_images(images)
        return self.quantize(self.quant_conv(self.encoder(images)))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Codes (N, h, w) int64 of images (N, 3, H, W) in [-1, 1]."""
        return self.quantize_images(images).codes

    def decode_latents(self, z_q: torch.Tensor) -> torch.Tensor:
        """Images from quantised latents (N, embed_dim, h, w)."""
        return self.decoder(self.post_quant_conv(z_q))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W), roughly in [-1, 1], of codes (N, h, w)."""
        if codes.ndim != 3:
            raise ValueError(f"codes must have shape (N, h, w), got {tuple(codes.shape)}")
        if codes.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.config.n_embed):
            raise ValueError(
                f"codes must lie in 0..{self.config.n_embed - 1}, got {int(codes.min())}..{int(codes.max())}"
            )
        z_q = self.quantize.lookup(codes.long()).to(self.post_quant_conv.weight.dtype)
        return self.decode_latents(z_q)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        """Reconstruction and quantiser output (for training)."""
        q = self.quantize_images(images)
        return self.decode_latents(q.z_q), q

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``; returns the directory."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        return directory


# -------------------------------------------------------------------- loading
def clean_state_dict(raw: Any) -> dict[str, torch.Tensor]:
    """The model's tensors from a raw checkpoint: unwrap ``state_dict``, drop loss/discriminator entries."""
    if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict):
        raise ValueError(f"expected a state dict (a mapping of names to tensors), got {type(raw).__name__}")
    out = {}
    for key, value in raw.items():
        if not isinstance(key, str) or key.startswith(DROPPED_PREFIXES):
            continue
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"checkpoint entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key] = value
    return out


def load_state_dict_strict(model: VQGAN, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``; missing, unexpected or mis-shaped keys raise ValueError listing them."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:

        def few(items: list[str]) -> str:
            return ", ".join(items[:10]) + (f" ... ({len(items)} in all)" if len(items) > 10 else "")

        raise ValueError(
            f"{source} does not match the VQGAN config: missing keys [{few(missing)}]; "
            f"unexpected keys [{few(unexpected)}]; shape mismatches [{few(shapes)}]"
        )
    model.load_state_dict(state, strict=True)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"VQGAN weights not found: looked for {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or EOFError for bad files
        raise ValueError(
            f"{path} could not be loaded as a weights-only torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    return clean_state_dict(raw)


def load_vqgan(path: str | Path, config: VQGANConfig | None = None, device: str | torch.device = "cpu") -> VQGAN:
    """Load a VQGAN in eval mode.

    ``path`` may be a directory written by :meth:`VQGAN.save` (``config.json`` + ``model.safetensors``), Chameleon's
    tokenizer folder (``vqgan.yaml`` + ``vqgan.ckpt``), or a single ``.ckpt``/``.pt``/``.safetensors`` file whose
    config is ``config`` or a ``config.json``/``vqgan.yaml`` beside it.
    """
    path = Path(path)
    if path.is_dir():
        if (path / WEIGHTS_FILE).is_file():
            weights = path / WEIGHTS_FILE
        elif (path / "vqgan.ckpt").is_file():
            weights = path / "vqgan.ckpt"
        else:
            raise FileNotFoundError(f"no VQGAN weights in {path}: looked for {WEIGHTS_FILE} and vqgan.ckpt")
    else:
        weights = path
    if config is None:
        folder = weights.parent
        if (folder / CONFIG_FILE).is_file():
            try:
                config = VQGANConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{folder / CONFIG_FILE}: {exc}") from exc
        elif (folder / "vqgan.yaml").is_file():
            config = VQGANConfig.from_yaml(folder / "vqgan.yaml")
        else:
            raise FileNotFoundError(
                f"no VQGAN config for {weights}: looked for {folder / CONFIG_FILE} and {folder / 'vqgan.yaml'}"
            )
    state = _read_weights(weights)
    model = VQGAN(config)
    load_state_dict_strict(model, state, str(weights))
    return model.to(device).eval()
