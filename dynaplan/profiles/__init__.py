"""Energy and latency profiles: schema, validation, queries, importers and the default."""

from dynaplan.profiles.profile import Profile

__all__ = ["Profile"]
