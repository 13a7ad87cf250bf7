"""The IR layer: the ApplicationIR model, its stored envelope, and generators."""

from .envelope import SCHEMA_VERSION, CorruptEntry, StoredEntry, decode_entry, entry_from_dict
from .model import ApplicationIR

__all__ = [
    "SCHEMA_VERSION",
    "ApplicationIR",
    "CorruptEntry",
    "StoredEntry",
    "decode_entry",
    "entry_from_dict",
]
