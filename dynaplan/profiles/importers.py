"""Import public measurements into the profile schema (partial profiles).

* :func:`import_splitwise` reads splitwise-sim's ``perf_model.csv`` (Mutinifni/splitwise-sim,
  MIT): latency of fixed batches (``batch_size`` requests of ``prompt_size`` input and
  ``token_size`` output tokens) per model, hardware and TP degree.
* :func:`import_mlenergy` reads ML.ENERGY leaderboard configuration tables (v3 and v2 layouts, as
  flattened in ``shared/data/mlenergy``; Apache-2.0, Chung et al., NeurIPS D&B 2025): steady-state
  power, throughput and inter-token latency per (model, GPU, TP, max batch).

Both return a :class:`pandas.DataFrame` in the profile schema that ``Profile(df, complete=False)``
can judge. The rules (see ``docs/profiles.md``):

* Every operating point is at the hardware's maximum clock (both sources ran at default clocks).
* Load comes from Little's law: a measurement that keeps ``B`` requests in flight, each taking
  ``W`` seconds, carries ``load_rps = B / W``; the runs were closed-loop, so
  ``throughput_rps = load_rps``.
* Request classes come from the :class:`ClassScheme` applied to the run's token counts.
* Hardware names are mapped to dynaplan's (``h100-80gb``, ``a100-80gb``, ``b200-180gb``); unknown ones are
  reported (error by default, or dropped with a note when ``unknown_hardware="drop"``).
* Nothing is invented silently. A quantity the source lacks stays NaN, so validation rejects it
  and says which field is missing; an explicit option fills it and the frame's
  ``attrs["notes"]`` records how. P99 latencies are filled from medians only when
  ``p99_over_median`` is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme
from dynaplan.domain.hardware import DEFAULT_HARDWARE, HardwareType
from dynaplan.errors import ValidationError
from dynaplan.profiles import schema

__all__ = [
    "MLENERGY_HARDWARE_NAMES",
    "SPLITWISE_CONSTANT_POWER_W",
    "SPLITWISE_HARDWARE_NAMES",
    "import_mlenergy",
    "import_splitwise",
]

#: splitwise-sim hardware names -> dynaplan names. ``h100-80gb-pcap`` (H100 under a 70 % power
#: cap) has no dynaplan hardware type and is reported as unknown.
SPLITWISE_HARDWARE_NAMES: dict[str, str] = {"a100-80gb": "a100-80gb", "h100-80gb": "h100-80gb"}

#: ML.ENERGY GPU names (v3 ``gpu_model``, v2 ``gpu``) -> dynaplan names. v3's B200 maps to the 8-GPU
#: HGX/DGX part, ``b200-180gb`` (the table does not state the memory size). A100-SXM4-40GB is not a dynaplan hardware type (40 GB is not the 80 GB
#: part) and is reported as unknown.
MLENERGY_HARDWARE_NAMES: dict[str, str] = {"H100": "h100-80gb", "NVIDIA H100 80GB HBM3": "h100-80gb",
                                           "B200": "b200-180gb"}

#: splitwise-sim's constant power model, per GPU (W): configs/power_model/constant.yaml.
SPLITWISE_CONSTANT_POWER_W: dict[str, dict[str, float]] = {
    "a100-80gb": {"idle": 63.0, "prompt": 400.0, "token": 250.0},
    "h100-80gb": {"idle": 75.0, "prompt": 700.0, "token": 380.0},
}

_SPLITWISE_COLUMNS = ("model", "hardware", "prompt_size", "batch_size", "token_size", "average_power",
                      "prompt_time", "token_time", "e2e_time", "tensor_parallel")
_V3_COLUMNS = ("task", "model_id", "gpu_model", "num_gpus", "tensor_parallel", "avg_batch_size",
               "avg_output_len", "avg_power_watts", "output_throughput_tokens_per_sec", "median_itl_ms",
               "p99_itl_ms")
_V2_COLUMNS = ("task", "gpu", "model_id", "tensor_parallel", "num_gpus", "avg_batch_size", "avg_tpot_s",
               "token_throughput_tok_s", "avg_output_tokens", "energy_per_output_token_j")
_OUT_COLUMNS = schema.KEY_COLUMNS + schema.REQUIRED_VALUE_COLUMNS + schema.OPTIONAL_VALUE_COLUMNS


# ---------------------------------------------------------------------------------- helpers
def _read(path_or_df, what: str) -> tuple[pd.DataFrame, str]:
    if isinstance(path_or_df, pd.DataFrame):
        return path_or_df.copy(), f"<{what} DataFrame>"
    path = Path(path_or_df)
    if not path.is_file():
        raise ValidationError(f"{path}: {what} file not found")
    try:
        return pd.read_csv(path), str(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ValidationError(f"{path}: cannot read as a {what} table ({exc})") from None


def _require(df: pd.DataFrame, cols, source: str, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValidationError(f"{source}: not a {what} table, missing column(s) {missing}")


def _map_hardware(names: pd.Series, mapping: Mapping[str, str], hardware: Mapping[str, HardwareType],
                  source: str, unknown: str, notes: list[str]) -> tuple[pd.Series, np.ndarray]:
    """Map source hardware names; returns (mapped names, keep mask). Unknown names raise or drop."""
    mapped = names.map(lambda n: mapping.get(n, n if n in hardware else None))
    bad = mapped.isna() | ~mapped.isin(list(hardware))
    if bad.any():
        unknown_names = sorted(set(names[bad].astype(str)))
        msg = (f"{source}: unknown hardware {unknown_names} ({int(bad.sum())} rows); known to dynaplan: "
               f"{sorted(hardware)}; mapping used: {dict(mapping)}")
        if unknown == "raise":
            raise ValidationError(msg + " (pass hardware_names= to map them, or unknown_hardware='drop')")
        notes.append("dropped " + msg)
    return mapped, ~bad.to_numpy()


def _finish(rows: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    out = rows.reindex(columns=list(_OUT_COLUMNS)).reset_index(drop=True)
    out["tp"] = out["tp"].astype("int64")
    out["freq_mhz"] = out["freq_mhz"].astype("int64")
    out.attrs["notes"] = list(notes)
    return out


# ---------------------------------------------------------------------------------- splitwise
def import_splitwise(
    path_or_df,
    *,
    models: tuple[str, ...] | None = None,
    classes: ClassScheme = DEFAULT_CLASSES,
    hardware: Mapping[str, HardwareType] | None = None,
    hardware_names: Mapping[str, str] | None = None,
    unknown_hardware: Literal["raise", "drop"] = "raise",
    power_from: Literal["measured", "constant"] | None = "measured",
    p99_over_median: float | None = None,
) -> pd.DataFrame:
    """Partial profile from splitwise-sim's ``perf_model.csv`` (one row per distinct batch run).

    Each run (``batch_size`` = B requests of ``prompt_size`` input and ``token_size`` output
    tokens, replicates reduced to their median) becomes one operating point:

    ===================  ============================================================
    load_rps             B / e2e_time (Little's law; closed batch, so = throughput_rps)
    ttft_p50_ms          prompt_time (the batch's prefill; every request waits for it)
    tbt_p50_ms           token_time (per-token decode time at batch B)
    ttft/tbt_p99_ms      ``p99_over_median`` x the above, else NaN (splitwise has no tails)
    power_w              ``"measured"``: average_power x GPU TDP x TP where measured (> 0;
                         A100 only), else NaN. ``"constant"``: splitwise-sim's constant
                         power model, tp x (P_prompt prompt_time + P_token (e2e - prompt_time))
                         / e2e_time. ``None``: NaN.
    request_class        class of (prompt_size, token_size) in ``classes``
    freq_mhz             the hardware's maximum clock
    ===================  ============================================================

    ``average_power`` has no documented unit; values in 0..1.09 read as a fraction of GPU TDP.
    """
    hw_types = dict(DEFAULT_HARDWARE if hardware is None else hardware)
    names = dict(SPLITWISE_HARDWARE_NAMES if hardware_names is None else hardware_names)
    df, source = _read(path_or_df, "splitwise-sim perf_model")
    _require(df, _SPLITWISE_COLUMNS, source, "splitwise-sim perf_model")
    notes: list[str] = []
    if models is not None:
        df = df[df["model"].isin(models)]
    if df.empty:
        raise ValidationError(f"{source}: no rows{' for models ' + str(models) if models else ''}")
    keys = ["model", "hardware", "tensor_parallel", "prompt_size", "batch_size", "token_size"]
    med = df.groupby(keys, sort=True)[["average_power", "prompt_time", "token_time", "e2e_time"]].median().reset_index()
    n_rep = df.groupby(keys, sort=True).size().to_numpy()
    notes.append(f"{len(df)} source rows reduced to {len(med)} runs (median of {n_rep.min()}..{n_rep.max()} replicates)")
    hw, keep = _map_hardware(med["hardware"], names, hw_types, source, unknown_hardware, notes)
    med = med[keep].assign(hardware=hw[keep]).reset_index(drop=True)
    if med.empty:
        raise ValidationError(f"{source}: no rows left after dropping unknown hardware")

    b = med["batch_size"].to_numpy(float)
    e2e_ms = med["e2e_time"].to_numpy(float)
    pf_ms = med["prompt_time"].to_numpy(float)
    tok_ms = med["token_time"].to_numpy(float)
    tp = med["tensor_parallel"].to_numpy(int)
    load = b / (e2e_ms / 1000.0)
    tdp = med["hardware"].map(lambda h: hw_types[h].max_power_w).to_numpy(float)
    if power_from == "measured":
        frac = med["average_power"].to_numpy(float)
        power = np.where(frac > 0, frac * tdp * tp, np.nan)
        notes.append("power_w = average_power x TDP x tp where measured (> 0), else NaN")
    elif power_from == "constant":
        cp = med["hardware"].map(lambda h: SPLITWISE_CONSTANT_POWER_W.get(h))
        if cp.isna().any():
            raise ValidationError(f"{source}: no splitwise constant power for hardware {sorted(set(med['hardware'][cp.isna()]))}")
        p_prompt = cp.map(lambda d: d["prompt"]).to_numpy(float)
        p_token = cp.map(lambda d: d["token"]).to_numpy(float)
        decode_ms = np.maximum(e2e_ms - pf_ms, 0.0)
        power = tp * (p_prompt * pf_ms + p_token * decode_ms) / e2e_ms
        notes.append("power_w MODELLED from splitwise-sim's constant power model (prompt/token watts per GPU, "
                     "time-weighted); not measured")
    elif power_from is None:
        power = np.full(len(med), np.nan)
    else:
        raise ValueError(f"power_from must be 'measured', 'constant' or None, got {power_from!r}")
    if p99_over_median is None:
        ttft99 = tbt99 = np.full(len(med), np.nan)
    else:
        if p99_over_median < 1:
            raise ValueError(f"p99_over_median must be >= 1, got {p99_over_median}")
        ttft99, tbt99 = pf_ms * p99_over_median, tok_ms * p99_over_median
        notes.append(f"ttft_p99_ms and tbt_p99_ms APPROXIMATED as {p99_over_median} x the median of replicates "
                     "(splitwise-sim reports one latency per batch, no tail)")
    cls = classes.classify(med["prompt_size"].to_numpy(), med["token_size"].to_numpy())
    rows = pd.DataFrame({
        "model": med["model"].astype(str), "hardware": med["hardware"].astype(str), "tp": tp,
        "freq_mhz": med["hardware"].map(lambda h: hw_types[h].max_clock_mhz).to_numpy(int),
        "request_class": cls, "load_rps": load, "power_w": power,
        "ttft_p99_ms": ttft99, "tbt_p99_ms": tbt99, "throughput_rps": load,
        "ttft_p50_ms": pf_ms, "tbt_p50_ms": tok_ms,
        "throughput_tok_s": load * med["token_size"].to_numpy(float),
    })
    return _finish(rows, notes)


# ---------------------------------------------------------------------------------- ML.ENERGY
def _mlenergy_version(df: pd.DataFrame) -> str:
    if set(_V3_COLUMNS) <= set(df.columns):
        return "v3"
    if set(_V2_COLUMNS) <= set(df.columns):
        return "v2"
    return "unknown"


def import_mlenergy(
    path_or_df,
    *,
    input_tokens: float | Mapping[str, float],
    tasks: tuple[str, ...] | None = None,
    model_ids: tuple[str, ...] | None = None,
    model_names: Mapping[str, str] | None = None,
    classes: ClassScheme = DEFAULT_CLASSES,
    request_class: str | None = None,
    hardware: Mapping[str, HardwareType] | None = None,
    hardware_names: Mapping[str, str] | None = None,
    unknown_hardware: Literal["raise", "drop"] = "raise",
    ttft_ms: float | None = None,
    p99_over_median: float | None = None,
) -> pd.DataFrame:
    """Partial profile from an ML.ENERGY configuration table (v3 or v2 layout, detected by columns).

    One row per configuration (a steady-state, saturated run with a max-batch cap):

    ===================  ============================================================
    load_rps             output tokens/s / mean output tokens (completed req/s; the run
                         is closed-loop, so throughput_rps = load_rps)
    power_w              v3 ``avg_power_watts``; v2 ``energy_per_output_token_j`` x
                         ``token_throughput_tok_s`` (both: total over the GPUs)
    tbt_p50_ms           v3 ``median_itl_ms``; v2 ``avg_tpot_s`` x 1000 (a MEAN, used as
                         the median)
    tbt_p99_ms           v3 ``p99_itl_ms`` (measured); v2: ``p99_over_median`` x the mean
                         if given, else NaN
    ttft_*               not in either table: ``ttft_ms`` if given (an explicit constant
                         assumption for both P50 and P99), else NaN
    request_class        ``request_class`` if given, else the class of (input tokens,
                         mean output tokens); the tables hold no prompt length, so
                         ``input_tokens`` (a number, or one per task) is required
    model                ``model_names[model_id]``, default the lower-cased last part of
                         the Hugging Face id
    ===================  ============================================================

    Runs with data or expert parallelism are divided per replica (``data_parallel``).
    """
    hw_types = dict(DEFAULT_HARDWARE if hardware is None else hardware)
    names = dict(MLENERGY_HARDWARE_NAMES if hardware_names is None else hardware_names)
    df, source = _read(path_or_df, "ML.ENERGY configuration")
    version = _mlenergy_version(df)
    if version == "unknown":
        raise ValidationError(f"{source}: neither an ML.ENERGY v3 table (columns {list(_V3_COLUMNS)}) nor a "
                              f"v2 table (columns {list(_V2_COLUMNS)})")
    notes: list[str] = [f"ML.ENERGY {version} table"]
    if tasks is not None:
        df = df[df["task"].isin(tasks)]
    if model_ids is not None:
        df = df[df["model_id"].isin(model_ids)]
    if df.empty:
        raise ValidationError(f"{source}: no rows for tasks={tasks} model_ids={model_ids}")
    df = df.reset_index(drop=True)
    gpu_col = "gpu_model" if version == "v3" else "gpu"
    hw, keep = _map_hardware(df[gpu_col].astype(str), names, hw_types, source, unknown_hardware, notes)
    df = df[keep].assign(_hw=hw[keep]).reset_index(drop=True)
    if df.empty:
        raise ValidationError(f"{source}: no rows left after dropping unknown hardware")

    dp = df["data_parallel"].to_numpy(float) if "data_parallel" in df.columns else np.ones(len(df))
    if version == "v3":
        n_out = df["avg_output_len"].to_numpy(float)
        tok_s = df["output_throughput_tokens_per_sec"].to_numpy(float)
        power = df["avg_power_watts"].to_numpy(float)
        tbt50 = df["median_itl_ms"].to_numpy(float)
        tbt99 = df["p99_itl_ms"].to_numpy(float)
        notes.append("tbt_p99_ms = measured p99_itl_ms; tbt_p50_ms = measured median_itl_ms")
    else:
        n_out = df["avg_output_tokens"].to_numpy(float)
        tok_s = df["token_throughput_tok_s"].to_numpy(float)
        power = df["energy_per_output_token_j"].to_numpy(float) * tok_s
        tbt50 = df["avg_tpot_s"].to_numpy(float) * 1000.0
        notes.append("power_w = energy_per_output_token_j x token_throughput_tok_s; tbt_p50_ms = MEAN time per "
                     "output token (v2 has no median)")
        if p99_over_median is None:
            tbt99 = np.full(len(df), np.nan)
        else:
            tbt99 = tbt50 * p99_over_median
            notes.append(f"tbt_p99_ms APPROXIMATED as {p99_over_median} x the mean time per output token")
    load = tok_s / n_out / dp
    power = power / dp
    if dp.max() > 1:
        notes.append("runs with data_parallel > 1 divided per replica (load and power)")
    if isinstance(input_tokens, Mapping):
        missing = sorted(set(df["task"]) - set(input_tokens))
        if missing:
            raise ValidationError(f"{source}: input_tokens has no entry for task(s) {missing}")
        n_in = df["task"].map(input_tokens).to_numpy(float)
    else:
        n_in = np.full(len(df), float(input_tokens))
    notes.append("input tokens ASSUMED (not in the source): "
                 + (str(dict(input_tokens)) if isinstance(input_tokens, Mapping) else str(float(input_tokens))))
    if request_class is not None:
        if request_class not in classes.names:
            raise ValidationError(f"request_class {request_class!r} is not one of {list(classes.names)}")
        cls = np.full(len(df), request_class, dtype=object)
        notes.append(f"every row assigned to class {request_class} by request")
    else:
        cls = classes.classify(n_in, n_out)
    if ttft_ms is None:
        ttft = np.full(len(df), np.nan)
    else:
        ttft = np.full(len(df), float(ttft_ms))
        notes.append(f"ttft_p50_ms and ttft_p99_ms set to the ASSUMED constant {ttft_ms} ms (not measured)")
    mnames = dict(model_names or {})
    model = df["model_id"].map(lambda m: mnames.get(m, str(m).split("/")[-1].lower()))
    rows = pd.DataFrame({
        "model": model, "hardware": df["_hw"].astype(str), "tp": df["tensor_parallel"].to_numpy(int),
        "freq_mhz": df["_hw"].map(lambda h: hw_types[h].max_clock_mhz).to_numpy(int),
        "request_class": cls, "load_rps": load, "power_w": power,
        "ttft_p99_ms": ttft, "tbt_p99_ms": tbt99, "throughput_rps": load,
        "ttft_p50_ms": ttft, "tbt_p50_ms": tbt50, "throughput_tok_s": tok_s / dp,
    })
    return _finish(rows, notes)
