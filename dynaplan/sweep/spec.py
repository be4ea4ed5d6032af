"""The sweep spec: a base scenario, the axes to vary, how to combine them, the metrics to keep.

    kind = "capacity"                 # a scenario kind (dynaplan.sweep.kinds)
    mode = "product"                  # or "zip": the i-th value of every axis together
    metrics = ["cost_usd", "energy_kwh"]   # optional; default every metric of the kind

    [base]                            # options every scenario shares
    trace = "azure-conv-2023"

    [axes]                            # options that vary: a list, or a range
    growth = [1.0, 1.5, 2.0]
    slo_scale = { start = 1.0, stop = 2.0, num = 3 }     # 1.0, 1.5, 2.0 (stop included)
    hardware = [["h100-80gb"], ["a100-80gb", "h100-80gb"]]

:func:`read_spec` reads TOML or YAML; :class:`SweepSpec` is an
:class:`~dynaplan.validation.InputModel`, so every mistake is one line naming the field
(``SweepSpec.axes: unknown option 'growht' of a capacity scenario; known: ...``). Every
scenario's options are validated by its kind's model when the sweep is expanded
(:func:`dynaplan.sweep.expand.expand`), before anything runs.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from dynaplan.errors import ValidationError
from dynaplan.limits import Limit
from dynaplan.sweep.kinds import KINDS, get_kind
from dynaplan.validation import InputModel, excerpt

SWEEP_SCENARIOS = Limit("MAX_SWEEP_SCENARIOS", 100_000, "scenarios", "split the sweep or use fewer axis values")
"""Scenarios one sweep may expand to (each writes one file)."""

AXIS_DIGITS = 12
"""Significant digits kept of a range's values, so that 0.1 + 0.2 is 0.3 in every scenario id."""


class Range(InputModel):
    """Evenly spaced values of one axis: ``start`` to ``stop`` (included when on the grid), by
    ``step`` or in ``num`` values."""

    start: float
    stop: float
    step: float | None = Field(None, description="Distance between values; exclusive with num.")
    num: int | None = Field(None, ge=1, description="Number of values, start and stop included; exclusive with step.")

    @model_validator(mode="after")
    def _one_of(self) -> "Range":
        if (self.step is None) == (self.num is None):
            raise ValueError("give one of step or num")
        if self.step is not None and (self.step == 0 or (self.stop - self.start) / self.step < 0):
            raise ValueError(f"step {self.step:g} does not go from {self.start:g} to {self.stop:g}")
        return self

    def values(self) -> list[float]:
        if self.num is not None:
            raw = np.linspace(self.start, self.stop, self.num)
        else:
            n = int(math.floor((self.stop - self.start) / self.step + 1e-9)) + 1
            SWEEP_SCENARIOS.check(n, "range", f"from {self.start:g} to {self.stop:g} by {self.step:g} is")
            raw = self.start + self.step * np.arange(n)
        return [float(f"{v:.{AXIS_DIGITS}g}") for v in raw]


class SweepSpec(InputModel):
    """A sweep: scenarios of one kind, the ``base`` options with ``axes`` varied over it."""

    name: str = Field("sweep", min_length=1, description="Name of the sweep (titles of tables and figures).")
    kind: str = Field(description="Scenario kind: replay or capacity (dynaplan.sweep.kinds).")
    base: dict[str, Any] = Field(default_factory=dict, description="Options every scenario shares.")
    axes: dict[str, list[Any] | Range] = Field(default_factory=dict, description="Options that vary: values or a range.")
    mode: Literal["product", "zip"] = Field("product", description="product: every combination; zip: the i-th "
                                            "value of every axis together.")
    metrics: list[str] | None = Field(None, description="Metrics to keep; None: every metric of the kind.")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown scenario kind {value!r}; expected one of {', '.join(KINDS)}")
        return value

    @field_validator("axes", mode="before")
    @classmethod
    def _values_or_range(cls, axes):
        if not isinstance(axes, dict):
            return axes  # pydantic names the type expected
        out = {}
        for name, vals in axes.items():
            if isinstance(vals, dict):
                try:
                    vals = Range.model_validate(vals)
                except ValidationError as exc:
                    raise ValueError(f"axis {name!r}: {exc}") from None
            elif isinstance(vals, tuple):
                vals = list(vals)
            elif not isinstance(vals, (list, Range)):
                raise ValueError(f"axis {name!r}: expected a list of values or a range {{start, stop, step or num}}; "
                                 f"got {excerpt(vals)}")
            if isinstance(vals, list) and not vals:
                raise ValueError(f"axis {name!r} has no values")
            out[name] = vals
        return out

    @model_validator(mode="after")
    def _known_names(self) -> "SweepSpec":
        kind = get_kind(self.kind)
        known = kind.options.model_fields
        for where, names in (("base", self.base), ("axes", self.axes)):
            bad = [n for n in names if n not in known]
            if bad:
                raise ValueError(f"{where}: unknown option {bad[0]!r} of a {self.kind} scenario; known: "
                                 f"{', '.join(known)}")
        both = sorted(set(self.base) & set(self.axes))
        if both:
            raise ValueError(f"option {both[0]!r} is both in base and on an axis; give it in one place")
        if self.metrics is not None:
            bad = [m for m in self.metrics if m not in kind.metrics]
            if bad:
                raise ValueError(f"metrics: unknown metric {bad[0]!r} of a {self.kind} scenario; known: "
                                 f"{', '.join(kind.metrics)}")
        if self.mode == "zip":
            lengths = {n: len(self.axis_values(n)) for n in self.axes}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"mode zip needs axes of one length; got {lengths}")
        SWEEP_SCENARIOS.check(self.size(), "SweepSpec.axes", f"{' x '.join(self.axes) or 'no axes'} make")
        return self

    def axis_values(self, name: str) -> list:
        vals = self.axes[name]
        return vals.values() if isinstance(vals, Range) else list(vals)

    def size(self) -> int:
        """Scenarios the axes make (before identical ones are merged)."""
        lengths = [len(self.axis_values(n)) for n in self.axes]
        if not lengths:
            return 1
        return lengths[0] if self.mode == "zip" else math.prod(lengths)

    def kept_metrics(self) -> tuple[str, ...]:
        kind = get_kind(self.kind)
        return tuple(self.metrics) if self.metrics is not None else tuple(kind.metrics)


def read_spec(path: str | Path) -> SweepSpec:
    """Read a sweep spec from a ``.toml``, ``.yaml`` or ``.yml`` file; options naming files
    (profile, trace, carbon, ...) that exist relative to the spec's folder are made absolute."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"sweep spec {path}: no such file")
    suffix = path.suffix.lower()
    try:
        text = path.read_text()
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ValidationError(f"sweep spec {path}: expected a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ValidationError(f"sweep spec {path}: cannot read ({' '.join(str(exc).split())})") from None
    except Exception as exc:  # yaml.YAMLError (yaml is imported lazily)
        if type(exc).__module__.startswith("yaml"):
            raise ValidationError(f"sweep spec {path}: cannot read ({' '.join(str(exc).split())})") from None
        raise
    if not isinstance(data, dict):
        raise ValidationError(f"sweep spec {path}: expected a table of kind, base, axes, mode and metrics")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return _with_paths(spec, path.parent)


def _with_paths(spec: SweepSpec, folder: Path) -> SweepSpec:
    kind = get_kind(spec.kind)

    def fix(name: str, value):
        if name in kind.path_options and isinstance(value, str) and not Path(value).is_absolute() \
                and (folder / value).exists():
            return str((folder / value).resolve())
        return value

    base = {k: fix(k, v) for k, v in spec.base.items()}
    axes = {k: ([fix(k, v) for v in vals] if isinstance(vals, list) else vals) for k, vals in spec.axes.items()}
    return spec.model_copy(update={"base": base, "axes": axes})


def as_spec(spec: SweepSpec | dict | str | Path) -> SweepSpec:
    """A :class:`SweepSpec` from a spec, a dict of one, or a spec file."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        return SweepSpec.model_validate(spec)
    if isinstance(spec, (str, Path)):
        return read_spec(spec)
    raise ValidationError(f"spec: {type(spec).__name__}; expected a SweepSpec, a dict or a spec file")


__all__ = ["AXIS_DIGITS", "Range", "SWEEP_SCENARIOS", "SweepSpec", "as_spec", "read_spec"]
