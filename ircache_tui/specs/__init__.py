"""Spec files on disk: finding them, keying them, and what in the cache they make stale."""

from .discovery import SpecFile, discover_specs, is_ignored, read_spec
from .history import older_entry, read_any_tier
from .stale import StaleReport, find_stale, prune

__all__ = ["SpecFile", "StaleReport", "discover_specs", "find_stale", "is_ignored", "older_entry", "prune",
           "read_any_tier", "read_spec"]
