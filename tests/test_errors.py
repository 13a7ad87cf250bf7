"""Every error the package raises on purpose derives from one root, IRCacheError (issue 19): a
caller that catches it has every failure the package reports in one line, and nothing else."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import ircache_tui
from ircache_tui import IRCacheError
from ircache_tui.cache.errors import IRCacheError as CacheRoot

#: not errors but control flow: how a signal unwinds a command (a KeyboardInterrupt's kin), and a
#: decode its caller stopped (a cancellation, as CancelledError is)
CONTROL_FLOW = {"ircache_tui.cli.common.Interrupted", "ircache_tui.cache.decoded.DecodeAbandoned"}


def package_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(ircache_tui.__path__, "ircache_tui."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            # (a private one never leaves its module: caught where it is raised)
            if issubclass(obj, BaseException) and obj.__module__.startswith("ircache_tui") \
                    and not obj.__name__.startswith("_"):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_error_of_the_package_is_an_ircache_error():
    errors = package_exceptions()
    assert len(errors) > 15, sorted(errors)  # (the walk found them: settings, keys, generation, Redis...)
    strays = sorted(name for name, cls in errors.items()
                    if name not in CONTROL_FLOW and not issubclass(cls, IRCacheError))
    assert not strays, f"errors outside the root: {strays}"


def test_the_root_is_one_class_wherever_it_is_imported_from():
    assert IRCacheError is CacheRoot
    from ircache_tui.cache.keys import InvalidSpecName
    from ircache_tui.ir.envelope import CorruptEntry
    from ircache_tui.ir.generators.base import GenerationError
    from ircache_tui.settings import SettingsError

    for cls in (InvalidSpecName, CorruptEntry, GenerationError, SettingsError):
        assert issubclass(cls, IRCacheError), cls
    assert issubclass(SettingsError, ValueError) and issubclass(InvalidSpecName, ValueError)  # (as they were)


def test_the_root_exports_the_public_api_and_every_error_it_names():
    exported = {name: getattr(ircache_tui, name) for name in ircache_tui.__all__}
    errors = {n for n, v in exported.items() if isinstance(v, type) and issubclass(v, BaseException)}
    assert errors >= {"IRCacheError", "RedisUnavailable", "RedisBusy", "FlushIncomplete", "SettingsError",
                      "GenerationError", "CorruptEntry", "InvalidSpecName"}
    assert all(issubclass(exported[n], IRCacheError) for n in errors)
    # the tiers are reached through IRCache, the one door: not part of the public API
    assert not {"RedisTier", "FilesystemTier", "EmbeddedRedis"} & set(exported)
