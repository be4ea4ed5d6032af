"""The checks every entry point that plans or replays runs on its profile, inventory and SLOs.

:class:`dynaplan.planning.Planner` and :func:`dynaplan.replay.prepare` take the same three
inputs — a profile, an inventory of servers and an SLO table — and must refuse the same bad ones
with the same one-line errors.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError as PydanticValidationError

from dynaplan.domain.slo import SLOTable
from dynaplan.errors import ValidationError
from dynaplan.planning.problem import Inventory
from dynaplan.profiles.profile import Profile
from dynaplan.validation import excerpt


def check_inputs(profile: Profile, inventory: Inventory | Mapping[str, int], slos: SLOTable,
                 model: str | None = None) -> tuple[Inventory, str]:
    """The inventory (validated: counts >= 0 of hardware the profile knows) and the model to plan
    (``model``, or the profile's only one); raises :class:`ValidationError` naming what is wrong,
    including an SLO table that misses a class of the profile."""
    if not isinstance(inventory, Inventory):
        if not isinstance(inventory, Mapping):
            raise ValidationError(f"inventory: expected servers by hardware type, e.g. {{'h100-80gb': 40}}, "
                                  f"got {type(inventory).__name__}")
        try:
            inventory = Inventory(servers=dict(inventory))
        except PydanticValidationError as exc:
            raise ValidationError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    unknown = sorted(set(inventory.servers) - set(profile.hardware))
    if unknown:
        raise ValidationError(f"inventory: unknown hardware {unknown}; the profile knows {sorted(profile.hardware)}")
    try:
        slos.covers(profile.classes)
    except ValueError as exc:
        raise ValidationError(f"SLO table: {exc}") from None
    if model is None:
        if len(profile.models) != 1:
            raise ValidationError(f"profile holds models {profile.models}; pass model=")
        model = profile.models[0]
    elif model not in profile.models:
        raise ValidationError(f"model {excerpt(model)}: not in the profile {profile.source}; it holds {list(profile.models)}")
    return inventory, model
