"""Read a Mélange config (its JSON format) as a dynaplan capacity problem.

Mélange's input: ``gpu_info`` maps a GPU type to ``{"cost": USD per GPU-hour, "tputs": [[req/s of
one GPU for each (input, output) bucket]]}``; ``workload_distribution`` is the share of requests
in each bucket (same shape as ``tputs``); ``total_request_rate`` (req/s) and ``slice_factor``
(each bucket's load is cut into that many equal slices). Each bucket becomes a class, each GPU
type an offer of one-GPU servers with one single-piece recipe per bucket of zero power; instance
counts are continuous (a GPU's time is shared between buckets, as in Mélange's model).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dynaplan.capacity.problem import CapacityProblem, Offer, Recipe
from dynaplan.errors import ValidationError
from dynaplan.validation import excerpt


_MAX_TPUT_RPS = 1e12  # Recipe.max_load_rps's upper limit


def _load(config) -> tuple[dict, str]:
    if isinstance(config, Mapping):
        return dict(config), "melange config"
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise ValidationError(f"melange config {str(config)!r}: no such file")
        try:
            return json.loads(path.read_text()), str(path)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError(f"{path}: not JSON ({exc})") from None
    raise ValidationError(f"melange config: {type(config).__name__} {excerpt(config)}; expected a dict or a path")


def _matrix(value, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: {excerpt(value)}; expected a list of lists of numbers") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.size == 0 or not np.all(np.isfinite(arr)) or (arr < 0).any():
        raise ValidationError(f"{where}: expected a non-empty matrix of finite numbers >= 0")
    return arr


def read_melange(config, *, assignment: str = "divisible", slice_factor: int | None = None) -> CapacityProblem:
    """The question of a Mélange config as a :class:`CapacityProblem` (one period of one hour;
    ``plan_capacity(...).cost_usd_per_h`` is Mélange's objective). ``assignment='sliced'`` is
    Mélange's own model; ``'divisible'`` lets a bucket's load split over types freely."""
    cfg, src = _load(config)
    for key in ("gpu_info", "workload_distribution", "total_request_rate"):
        if key not in cfg:
            raise ValidationError(f"{src}: missing field {key!r}")
    if not isinstance(cfg["gpu_info"], Mapping) or not cfg["gpu_info"]:
        raise ValidationError(f"{src}: gpu_info: expected a mapping GPU name -> {{cost, tputs}}")
    dist = _matrix(cfg["workload_distribution"], f"{src}: workload_distribution")
    rate = cfg["total_request_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not np.isfinite(rate) or rate < 0:
        raise ValidationError(f"{src}: total_request_rate: {excerpt(rate)}; expected a number >= 0 (req/s)")
    sf = slice_factor if slice_factor is not None else cfg.get("slice_factor", 1)
    if isinstance(sf, bool) or not isinstance(sf, int) or not 1 <= sf <= 1024:
        raise ValidationError(f"{src}: slice_factor: {excerpt(sf)}; expected an integer 1..1024")
    total = dist.sum()
    if total <= 0:
        raise ValidationError(f"{src}: workload_distribution sums to 0")
    demand = dist.ravel() / total * float(rate)
    classes = tuple(f"b{i}_{j}" for i in range(dist.shape[0]) for j in range(dist.shape[1]))
    offers, recipes = [], []
    for name, info in cfg["gpu_info"].items():
        if not isinstance(info, Mapping) or "cost" not in info or "tputs" not in info:
            raise ValidationError(f"{src}: gpu_info.{name}: expected {{'cost': ..., 'tputs': [[...]]}}")
        cost = info["cost"]
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not np.isfinite(cost) or cost < 0:
            raise ValidationError(f"{src}: gpu_info.{name}.cost: {excerpt(cost)}; expected a number >= 0 (USD/h)")
        tp = _matrix(info["tputs"], f"{src}: gpu_info.{name}.tputs")
        if tp.shape != dist.shape:
            raise ValidationError(f"{src}: gpu_info.{name}.tputs: shape {tp.shape}; expected {dist.shape} "
                                  "(that of workload_distribution)")
        if tp.max() > _MAX_TPUT_RPS:
            raise ValidationError(f"{src}: gpu_info.{name}.tputs: {tp.max():g} req/s; expected at most "
                                  f"{_MAX_TPUT_RPS:g}")
        offers.append(Offer(hardware=str(name), gpus_per_server=1, price_usd_per_server_h=float(cost),
                            price_kind="melange"))
        # every field checked above (a throughput in (0, 1e12], the rest constants): the recipes
        # are built without pydantic's per-object validation, a third of a small config's solve
        recipes.extend(Recipe.model_construct(hardware=str(name), request_class=classes[k], tp=1, freq_mhz=0,
                                              segment=0, max_load_rps=v, u_hi=1.0, static_w=0.0, w_per_util=0.0,
                                              segment_error_w=0.0)
                       for k, v in enumerate(tp.ravel().tolist()) if v > 0)
    return CapacityProblem(
        classes=classes, period_s=3600.0, demand_rps=(tuple(demand.tolist()),),
        load_basis=f"Mélange config {src}: total_request_rate {float(rate):g} req/s over the bucket distribution",
        offers=tuple(offers), recipes=tuple(recipes), electricity_usd_per_kwh=(0.0,), carbon_g_per_kwh=(0.0,),
        objective="cost", idle="off", assignment=assignment, slice_factor=sf, shared_instances=True,
        source="melange")
