"""Typed domain model: hardware, models, request classes, SLOs, configurations."""

from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme, TokenBins
from dynaplan.domain.config import Configuration
from dynaplan.domain.hardware import A100_80GB, B200_180GB, DEFAULT_HARDWARE, H100_80GB, H200_141GB, HardwareType
from dynaplan.domain.model import DEFAULT_MODELS, LLAMA2_70B, ModelSpec
from dynaplan.domain.slo import DEFAULT_SLOS, SLO, SLOTable

__all__ = [
    "A100_80GB",
    "B200_180GB",
    "ClassScheme",
    "Configuration",
    "DEFAULT_CLASSES",
    "DEFAULT_HARDWARE",
    "DEFAULT_MODELS",
    "DEFAULT_SLOS",
    "H100_80GB",
    "H200_141GB",
    "HardwareType",
    "LLAMA2_70B",
    "ModelSpec",
    "SLO",
    "SLOTable",
    "TokenBins",
]
