"""The model zoo (docs/architecture.md §6): recurrent nets that map a raw (B, N, 16) window to (B, 2) logits.

Outputs are logits for [add_cart, make_order]; a sigmoid per label gives the probabilities.
The log1p dwell scaling of model/features.py lives inside the network (`DwellScaling`), so an
exported graph takes the raw vectors that serving encodes.

Windows are zero-padded at the front (oldest first), so the recurrent nets read the last time step.

Context (model/context.py): a net whose NetConfig names context features takes a second input, the raw
(B, k) context; ContextScaling applies the one scaling of model/context.py, a small ReLU layer embeds
it, and the head reads [recurrent summary, context embedding] through one hidden layer. A net without
context (k = 0, every model before it) keeps the plain Linear head and its single input. With `wide`, a
Linear(k, 2) on the scaled context adds to the head's logits (a logistic regression beside the MLP).
Every arch uses whole nn.LSTM / nn.GRU modules, never unrolled cells: the legacy ONNX exporter then
emits LSTM / GRU ops, which ONNX Runtime can quantize (LSTM) or run fused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from model.context import context_columns, context_units
from model.features import N_ACTIONS, SCALE_DIVISOR, VECTOR_DIM

N_LABELS = 2  # [add_cart, make_order]
LABELS: tuple[str, ...] = ("add_cart", "make_order")

# Which recurrent layers each arch stacks, by the NetConfig field holding the layer's size.
_RECURRENT_STACKS: dict[str, tuple[str, ...]] = {
    "lstm_gru": ("lstm", "gru"),
    "lstm_gru_small": ("lstm", "gru"),
    "lstm": ("lstm",),
    "gru": ("gru",),
}
ARCHS: tuple[str, ...] = (*_RECURRENT_STACKS, "lstm_attn")

# Published sizes, and our choices where the paper gives none (see docs/training.md). The context sizes
# (used only when the net has context) scale with the recurrent summary they sit beside.
_ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "lstm_gru": {"lstm_units": 500, "gru_units": 300, "dropout": 0.2, "context_units": 64, "head_units": 128},
    "lstm": {"lstm_units": 500, "dropout": 0.2, "context_units": 64, "head_units": 128},
    "gru": {"gru_units": 300, "dropout": 0.2, "context_units": 64, "head_units": 128},
    "lstm_attn": {"lstm_units": 128, "attn_heads": 4, "dropout": 0.3, "context_units": 32, "head_units": 64},
    "lstm_gru_small": {"lstm_units": 64, "gru_units": 32, "dropout": 0.2, "context_units": 16, "head_units": 32},
}


@dataclass
class NetConfig:
    """Everything that fixes a network's shape; saved in model.pt and the card, so a loader rebuilds it."""

    arch: str = "lstm_gru"
    lstm_units: int = 500
    gru_units: int = 300
    attn_heads: int = 4
    dropout: float = 0.2
    window: int = 10  # N, the window length the net was trained on (FeatureConfig.window)
    input_dim: int = VECTOR_DIM
    context: tuple[str, ...] = ()  # model/context.py feature names, in input order; () = no context input
    context_units: int = 16  # the context embedding (only with context)
    head_units: int = 32  # the head's hidden layer (only with context)
    # A linear "wide" path from the scaled context straight to the logits, added to the head's (only with context)
    wide: bool = False

    @property
    def context_dim(self) -> int:
        return len(self.context)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; expected one of: {', '.join(ARCHS)}")
        if self.arch == "lstm_attn" and self.lstm_units % self.attn_heads:
            raise ValueError(f"lstm_units ({self.lstm_units}) must be divisible by attn_heads ({self.attn_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        self.context = tuple(self.context)
        context_columns(self.context)  # KeyError on a name model/context.py does not define

    @classmethod
    def for_arch(cls, arch: str, window: int = 10, **overrides: Any) -> NetConfig:
        """The arch's default sizes (published where published), with `overrides` on top."""
        if arch not in _ARCH_DEFAULTS:
            raise ValueError(f"unknown arch {arch!r}; expected one of: {', '.join(ARCHS)}")
        return cls(arch=arch, window=window, **{**_ARCH_DEFAULTS[arch], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "context": list(self.context)}  # a list, as JSON gives it back

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> NetConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


class DwellScaling(nn.Module):
    """log1p(x) / log1p(600) on the 12 dwell slots; the 4 flag slots pass through. (B, N, 16) → (B, N, 16)."""

    def forward(self, windows: Tensor) -> Tensor:
        dwell, flags = windows[..., :N_ACTIONS], windows[..., N_ACTIONS:]
        return torch.cat([torch.log1p(dwell) / SCALE_DIVISOR, flags], dim=-1)


class ContextScaling(nn.Module):
    """model/context.py's scaling, (B, k) → (B, k): log1p(x / unit) where a feature has a unit, flags as they are."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        units = torch.from_numpy(context_units(names))
        # Rebuilt from the names, so not part of the state dict: model.pt holds weights only.
        self.units: Tensor
        self.is_scaled: Tensor
        self.register_buffer("units", torch.where(units > 0, units, torch.ones_like(units)), persistent=False)
        self.register_buffer("is_scaled", units > 0, persistent=False)

    def forward(self, context: Tensor) -> Tensor:
        return torch.where(self.is_scaled, torch.log1p(torch.clamp(context, min=0.0) / self.units), context)


class RecurrentEncoder(nn.Module):
    """Stacked single-layer LSTM/GRU modules with dropout after each; (B, N, D) → last step (B, H)."""

    def __init__(self, kinds: tuple[str, ...], cfg: NetConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = cfg.input_dim
        for kind in kinds:
            units = cfg.lstm_units if kind == "lstm" else cfg.gru_units
            rnn = nn.LSTM if kind == "lstm" else nn.GRU
            layers.append(rnn(size, units, batch_first=True))
            size = units
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_dim = size

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        for layer in self.layers:
            x, _ = layer(x)  # (B, N, H)
            x = self.dropout(x)
        return x[:, -1, :]  # newest event: windows are front-padded


class AttentionEncoder(nn.Module):
    """LSTM, then multi-head self-attention read at the newest position, residual + LayerNorm. → (B, H).

    Only the newest position's attention output is ever used, so it is the only query computed;
    padded steps are masked out of the keys (the newest step is always a real event).
    """

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(cfg.input_dim, cfg.lstm_units, batch_first=True)
        self.attn = nn.MultiheadAttention(cfg.lstm_units, cfg.attn_heads, dropout=cfg.dropout, batch_first=True)
        self.norm = nn.LayerNorm(cfg.lstm_units)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_dim = cfg.lstm_units

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        h, _ = self.lstm(x)  # (B, N, H)
        h = self.dropout(h)
        newest = h[:, -1:, :]  # (B, 1, H)
        attended, _ = self.attn(newest, h, h, key_padding_mask=pad, need_weights=False)  # (B, 1, H)
        return self.norm(newest + self.dropout(attended))[:, 0, :]


class IntentNet(nn.Module):
    """Raw windows (B, N, 16) float32 → logits (B, 2) for [add_cart, make_order]."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.config = cfg
        self.scaling = DwellScaling()
        self.encoder: RecurrentEncoder | AttentionEncoder
        if cfg.arch == "lstm_attn":
            self.encoder = AttentionEncoder(cfg)
        else:
            self.encoder = RecurrentEncoder(_RECURRENT_STACKS[cfg.arch], cfg)
        self.context_encoder: nn.Sequential | None = None
        self.wide: nn.Linear | None = None
        if not cfg.context_dim:
            self.head: nn.Module = nn.Linear(self.encoder.out_dim, N_LABELS)
            return
        self.context_encoder = nn.Sequential(
            ContextScaling(cfg.context), nn.Linear(cfg.context_dim, cfg.context_units), nn.ReLU()
        )
        self.head = nn.Sequential(
            nn.Linear(self.encoder.out_dim + cfg.context_units, cfg.head_units), nn.ReLU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.head_units, N_LABELS),
        )  # fmt: skip
        if cfg.wide:
            self.wide = nn.Linear(cfg.context_dim, N_LABELS)

    def forward(self, windows: Tensor, context: Tensor | None = None) -> Tensor:
        # A front-padding step is all zeros; a real event has its dwell (≥ 1 s) in one action slot.
        pad = windows[..., :N_ACTIONS].sum(dim=-1) == 0  # (B, N) bool
        summary = self.encoder(self.scaling(windows), pad)  # (B, H)
        return self.head_logits(summary, context)

    def head_logits(self, summary: Tensor, context: Tensor | None = None) -> Tensor:
        """(B, H) recurrent summary [+ (B, k) raw context] → (B, 2) logits; export's rewritten graphs reuse it."""
        if self.context_encoder is None:
            return self.head(summary)  # (B, 2) logits
        if context is None:
            raise ValueError(f"this net takes a (B, {self.config.context_dim}) context: {self.config.context}")
        scaled = self.context_encoder[0](context)  # (B, k) ContextScaling
        logits = self.head(torch.cat([summary, self.context_encoder[1:](scaled)], dim=-1))  # (B, 2)
        # the cast: an fp16 net keeps its context scaling in fp32 (raw counts overflow fp16)
        return logits if self.wide is None else logits + self.wide(scaled.to(self.wide.weight.dtype))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_net(cfg: NetConfig) -> IntentNet:
    """A freshly initialised network for `cfg` (seed torch first for reproducible weights)."""
    return IntentNet(cfg)
