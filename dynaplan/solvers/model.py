"""A backend-neutral mixed-integer linear model built from numpy blocks.

Formulations describe their variables and constraints here, by named blocks whose names match
the equations in ``formulations/*.md``; each backend (:mod:`.highs`, :mod:`.pyomo_backend`,
:mod:`.cpsat`) turns the same :class:`LinearModel` into its own representation. Building a model
is plain numpy/scipy work and never imports a solver.

Sense is always minimisation; constraints are ranges ``row_lo <= A x <= row_hi``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
import scipy.sparse as sp

INF = float("inf")


@dataclass(frozen=True)
class VarBlock:
    """A named block of variables, ``labels[i]`` naming column ``start + i``."""

    name: str
    start: int
    labels: tuple
    integer: bool

    @property
    def stop(self) -> int:
        return self.start + len(self.labels)

    @property
    def cols(self) -> np.ndarray:
        return np.arange(self.start, self.stop)


@dataclass(frozen=True)
class ConBlock:
    """A named block of constraints, ``labels[i]`` naming row ``start + i``."""

    name: str
    start: int
    labels: tuple

    @property
    def stop(self) -> int:
        return self.start + len(self.labels)


@dataclass
class LinearModel:
    """Minimise ``c @ x + offset`` s.t. ``row_lo <= A x <= row_hi``, ``lb <= x <= ub``."""

    name: str
    var_blocks: dict[str, VarBlock] = field(default_factory=dict)
    con_blocks: dict[str, ConBlock] = field(default_factory=dict)
    objective_offset: float = 0.0
    _cost: list = field(default_factory=list)
    _lb: list = field(default_factory=list)
    _ub: list = field(default_factory=list)
    _int: list = field(default_factory=list)
    _rows: list = field(default_factory=list)
    _cols: list = field(default_factory=list)
    _vals: list = field(default_factory=list)
    _row_lo: list = field(default_factory=list)
    _row_hi: list = field(default_factory=list)
    n_cols: int = 0
    n_rows: int = 0

    # ---------------------------------------------------------------- building
    def add_vars(self, name: str, labels, *, lb=0.0, ub=INF, cost=0.0, integer=False) -> VarBlock:
        """Add one variable per label; scalars broadcast. Returns the block."""
        if name in self.var_blocks:
            raise ValueError(f"variable block {name!r} already exists")
        labels = tuple(labels)
        n = len(labels)
        block = VarBlock(name, self.n_cols, labels, integer)
        for lst, v in ((self._lb, lb), (self._ub, ub), (self._cost, cost)):
            arr = np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()
            if np.isnan(arr).any():
                raise ValueError(f"variable block {name!r}: NaN in bounds or cost")
            lst.append(arr)
        self._int.append(np.full(n, bool(integer)))
        self.var_blocks[name] = block
        self.n_cols += n
        return block

    def add_constraints(self, name: str, labels, rows, cols, vals, *, lo=-INF, hi=INF) -> ConBlock:
        """Add constraints from coordinates: ``rows`` index the new block (0-based)."""
        if name in self.con_blocks:
            raise ValueError(f"constraint block {name!r} already exists")
        labels = tuple(labels)
        n = len(labels)
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        vals = np.asarray(vals, dtype=float)
        if not (rows.shape == cols.shape == vals.shape):
            raise ValueError(f"constraint block {name!r}: rows/cols/vals differ in shape")
        if np.isnan(vals).any():
            raise ValueError(f"constraint block {name!r}: NaN coefficient")
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"constraint block {name!r}: row index out of range")
        if cols.size and (cols.min() < 0 or cols.max() >= self.n_cols):
            raise ValueError(f"constraint block {name!r}: column index out of range")
        block = ConBlock(name, self.n_rows, labels)
        self._rows.append(rows + self.n_rows)
        self._cols.append(cols)
        self._vals.append(vals)
        lo_a = np.broadcast_to(np.asarray(lo, dtype=float), (n,)).copy()
        hi_a = np.broadcast_to(np.asarray(hi, dtype=float), (n,)).copy()
        if np.isnan(lo_a).any() or np.isnan(hi_a).any():
            raise ValueError(f"constraint block {name!r}: NaN bound")
        self._row_lo.append(lo_a)
        self._row_hi.append(hi_a)
        self.con_blocks[name] = block
        self.n_rows += n
        return block

    def set_cost(self, block: str, cost) -> None:
        """Replace the objective coefficients of one variable block (scalars broadcast); how an
        objective is defined apart from the blocks' construction."""
        i = list(self.var_blocks).index(block)
        n = len(self.var_blocks[block].labels)
        arr = np.broadcast_to(np.asarray(cost, dtype=float), (n,)).copy()
        if np.isnan(arr).any():
            raise ValueError(f"variable block {block!r}: NaN in cost")
        self._cost[i] = arr

    def copy(self) -> "LinearModel":
        """An independent copy: blocks added to it, or bounds changed on it, never reach ``self``.

        The coefficient arrays are shared (no method changes one in place); every list and dict
        that building appends to is the copy's own.
        """
        out = copy.copy(self)
        out.var_blocks = dict(self.var_blocks)
        out.con_blocks = dict(self.con_blocks)
        for name in ("_cost", "_lb", "_ub", "_int", "_rows", "_cols", "_vals", "_row_lo", "_row_hi"):
            setattr(out, name, list(getattr(self, name)))
        return out

    def with_row_bounds(self, block: str, lo=None, hi=None) -> "LinearModel":
        """A copy (:meth:`copy`) with new bounds on one constraint block.

        Repeated solves that only move a right-hand side (the planner's demand) reuse everything
        else.
        """
        i = list(self.con_blocks).index(block)
        n = len(self.con_blocks[block].labels)
        out = self.copy()
        if lo is not None:
            out._row_lo[i] = np.broadcast_to(np.asarray(lo, dtype=float), (n,)).copy()
        if hi is not None:
            out._row_hi[i] = np.broadcast_to(np.asarray(hi, dtype=float), (n,)).copy()
        return out

    def with_col_bounds(self, block: str, lb=None, ub=None) -> "LinearModel":
        """A copy (:meth:`copy`) with new bounds on one variable block."""
        i = list(self.var_blocks).index(block)
        n = len(self.var_blocks[block].labels)
        out = self.copy()
        if lb is not None:
            out._lb[i] = np.broadcast_to(np.asarray(lb, dtype=float), (n,)).copy()
        if ub is not None:
            out._ub[i] = np.broadcast_to(np.asarray(ub, dtype=float), (n,)).copy()
        return out

    # ---------------------------------------------------------------- reading
    def index(self) -> "ModelIndex":
        """The names of the model's blocks, as a read-only value the arrays carry along."""
        return ModelIndex(self.name, MappingProxyType(dict(self.var_blocks)),
                          MappingProxyType(dict(self.con_blocks)), self.n_cols, self.n_rows)

    def arrays(self) -> "ModelArrays":
        """Dense vectors and a CSC matrix, as every backend consumes them."""
        cat = lambda lst, dt=float: np.concatenate(lst).astype(dt) if lst else np.zeros(0, dt)  # noqa: E731
        A = sp.csc_matrix(
            (cat(self._vals), (cat(self._rows, np.int64), cat(self._cols, np.int64))),
            shape=(self.n_rows, self.n_cols),
        )
        A.sum_duplicates()
        return ModelArrays(
            cost=cat(self._cost), lb=cat(self._lb), ub=cat(self._ub), integer=cat(self._int, bool),
            A=A, row_lo=cat(self._row_lo), row_hi=cat(self._row_hi), offset=self.objective_offset,
            index=self.index(),
        )

    def column_names(self) -> list[str]:
        return self.index().column_names()

    def row_names(self) -> list[str]:
        return self.index().row_names()


def _fmt(label) -> str:
    return ",".join(map(str, label)) if isinstance(label, tuple) else str(label)


@dataclass(frozen=True)
class ModelIndex:
    """The named blocks of a :class:`LinearModel`: what a backend needs besides the arrays to
    name columns and rows (messages, Pyomo components)."""

    name: str
    var_blocks: Mapping[str, VarBlock]
    con_blocks: Mapping[str, ConBlock]
    n_cols: int
    n_rows: int

    def column_names(self) -> list[str]:
        return [f"{b.name}[{_fmt(lab)}]" for b in self.var_blocks.values() for lab in b.labels]

    def row_names(self) -> list[str]:
        return [f"{b.name}[{_fmt(lab)}]" for b in self.con_blocks.values() for lab in b.labels]

    @staticmethod
    def anonymous(n_cols: int, n_rows: int, name: str = "model") -> "ModelIndex":
        """One block ``x`` of all columns and one block ``row`` of all rows."""
        return ModelIndex(name, MappingProxyType({"x": VarBlock("x", 0, tuple(range(n_cols)), False)}),
                          MappingProxyType({"row": ConBlock("row", 0, tuple(range(n_rows)))}), n_cols, n_rows)


@dataclass(frozen=True)
class ModelArrays:
    """A :class:`LinearModel` as arrays: what every backend solves (see the module docstring)."""

    cost: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    A: sp.csc_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    offset: float
    index: ModelIndex | None = None

    @property
    def n_cols(self) -> int:
        return len(self.cost)

    @property
    def n_rows(self) -> int:
        return len(self.row_lo)

    def names(self) -> ModelIndex:
        """The model's block index, or an anonymous one (``x[j]``, ``row[i]``) for bare arrays."""
        if self.index is not None and self.index.n_cols == self.n_cols and self.index.n_rows == self.n_rows:
            return self.index
        return ModelIndex.anonymous(self.n_cols, self.n_rows)

    def column_names(self) -> list[str]:
        return self.names().column_names()

    def row_names(self) -> list[str]:
        return self.names().row_names()

    def relaxed(self) -> "ModelArrays":
        """The LP relaxation: the same arrays with no integer column."""
        return replace(self, integer=np.zeros_like(self.integer)) if self.integer.any() else self

    def with_bounds(self, *, lb=None, ub=None, row_lo=None, row_hi=None, offset: float | None = None
                    ) -> "ModelArrays":
        """The same model with new column bounds, row sides or objective offset (full vectors)."""
        return replace(
            self,
            lb=self.lb if lb is None else np.asarray(lb, dtype=float),
            ub=self.ub if ub is None else np.asarray(ub, dtype=float),
            row_lo=self.row_lo if row_lo is None else np.asarray(row_lo, dtype=float),
            row_hi=self.row_hi if row_hi is None else np.asarray(row_hi, dtype=float),
            offset=self.offset if offset is None else float(offset))

    def with_block_bounds(self, rows: Mapping[str, tuple] | None = None, cols: Mapping[str, tuple] | None = None,
                          offset: float | None = None) -> "ModelArrays":
        """New ``(lo, hi)`` sides of named constraint blocks and ``(lb, ub)`` bounds of named
        variable blocks (``None`` keeps a side; scalars broadcast), new arrays sharing the rest.

        This is how repeated solves of one built model move a right-hand side (the planner's
        demand) or fix a block (the pool's servers) without rebuilding it.
        """
        idx = self.names()
        vecs = {}
        for spec, blocks, names in ((rows or {}, idx.con_blocks, ("row_lo", "row_hi")),
                                    (cols or {}, idx.var_blocks, ("lb", "ub"))):
            for name, sides in spec.items():
                if name not in blocks:
                    raise KeyError(f"model {idx.name!r} has no block {name!r}")
                blk = blocks[name]
                for attr, v in zip(names, sides):
                    if v is None:
                        continue
                    if attr not in vecs:
                        vecs[attr] = getattr(self, attr).copy()
                    vecs[attr][blk.start:blk.stop] = np.broadcast_to(np.asarray(v, dtype=float),
                                                                     (blk.stop - blk.start,))
        return self.with_bounds(**vecs, offset=offset)

    def positions(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Where the entries ``(rows[i], cols[i])`` of ``A`` sit in ``A.data`` (each must be a
        stored entry; a ``ValueError`` otherwise): what :meth:`with_coefficients` takes."""
        A = self.A
        if not A.has_sorted_indices:
            raise ValueError("positions: A has unsorted indices")
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        pos = np.empty(rows.size, dtype=np.int64)
        for i, (r, c) in enumerate(zip(rows, cols)):
            lo, hi = A.indptr[c], A.indptr[c + 1]
            j = lo + int(np.searchsorted(A.indices[lo:hi], r))
            if j >= hi or A.indices[j] != r:
                raise ValueError(f"positions: A has no entry ({r}, {c})")
            pos[i] = j
        return pos

    def with_coefficients(self, positions: np.ndarray, values: np.ndarray) -> "ModelArrays":
        """The same model with the matrix entries at ``positions`` (:meth:`positions`) set to
        ``values`` (non-zero: the sparsity pattern stays as it is); new arrays sharing the rest.

        This is how repeated solves move a coefficient that depends on the demand (the cluster
        model's linking rows, ``formulations/cluster.md``) without rebuilding the model."""
        values = np.asarray(values, dtype=float)
        if np.any(values == 0):
            raise ValueError("with_coefficients: a zero would change the sparsity pattern")
        data = self.A.data.copy()
        data[positions] = values
        A = sp.csc_matrix((data, self.A.indices, self.A.indptr), shape=self.A.shape)
        A.has_sorted_indices = True
        return replace(self, A=A)

    def activity_scale(self, x: np.ndarray, abs_a: sp.csc_matrix | None = None) -> float:
        """``max(1, max_i sum_j |a_ij x_j|)``: the magnitude feasibility tolerances scale with
        (``abs_a``: ``|A|`` when the caller keeps it, for repeated checks of one matrix)."""
        if not self.n_rows:
            return 1.0
        return max(1.0, float(np.max((abs(self.A) if abs_a is None else abs_a) @ np.abs(x), initial=0.0)))

    def violation(self, x: np.ndarray) -> float:
        """Largest violation of bounds, rows or integrality by ``x`` (0 when feasible)."""
        ax = self.A @ x
        parts = [
            np.max(self.lb - x, initial=0.0), np.max(x - self.ub, initial=0.0),
            np.max(self.row_lo - ax, initial=0.0), np.max(ax - self.row_hi, initial=0.0),
        ]
        xi = x[self.integer]
        parts.append(np.max(np.abs(xi - np.round(xi)), initial=0.0) if xi.size else 0.0)
        return float(max(parts))
