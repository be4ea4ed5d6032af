"""LLM model specifications (what is served)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dynaplan.domain.hardware import HardwareType


class ModelSpec(BaseModel):
    """An LLM as far as memory and compute sizing need it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Identifier used in profiles, e.g. 'llama2-70b'.")
    params: float = Field(gt=0, description="Parameter count (parameters).")
    weight_bytes: float = Field(gt=0, description="Bytes of weights at serving precision (bytes).")
    n_layers: int = Field(gt=0, description="Transformer layers (count).")
    kv_bytes_per_token: float = Field(
        gt=0, description="KV-cache bytes per token over all layers (bytes/token)."
    )
    activation_reserve_frac: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="Fraction of GPU memory kept for activations and engine overheads (fraction).",
    )

    def kv_cache_bytes(self, hw: HardwareType, tp: int) -> float:
        """KV-cache bytes left on ``tp`` GPUs of ``hw`` after weights and the reserve (bytes)."""
        total = tp * hw.gpu_memory_gb * 1e9 * (1.0 - self.activation_reserve_frac)
        return total - self.weight_bytes

    def fits(self, hw: HardwareType, tp: int, min_kv_tokens: int = 8192) -> bool:
        """True if weights plus a KV cache of ``min_kv_tokens`` tokens fit on ``tp`` GPUs."""
        return self.kv_cache_bytes(hw, tp) >= min_kv_tokens * self.kv_bytes_per_token

    def feasible_tp_degrees(self, hw: HardwareType, min_kv_tokens: int = 8192) -> tuple[int, ...]:
        """TP degrees inside one server of ``hw`` on which the model fits."""
        return tuple(k for k in hw.tp_degrees() if self.fits(hw, k, min_kv_tokens))


LLAMA2_70B = ModelSpec(
    name="llama2-70b",
    params=69e9,
    weight_bytes=138e9,
    n_layers=80,
    # 2 (K and V) x 80 layers x 8 KV heads x 128 dims x 2 bytes (BF16)
    kv_bytes_per_token=2 * 80 * 8 * 128 * 2,
)

DEFAULT_MODELS: dict[str, ModelSpec] = {LLAMA2_70B.name: LLAMA2_70B}
