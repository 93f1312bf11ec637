"""The engine's one typed configuration object.

Every setting has a documented default and can be given, from weakest to strongest, in a
TOML file, in an environment variable, or as a command-line flag::

    # logstrate.toml
    data_dir = "/var/lib/logstrate"
    [kafka]
    bootstrap_servers = "broker-1:9092,broker-2:9092"
    partitions = 16
    [kafka.properties]          # any librdkafka client property, e.g. security settings
    "security.protocol" = "SASL_SSL"
    "sasl.password" = "..."     # kept as a Secret: never printed or logged

Environment variables are ``LOGSTRATE_`` plus the setting's path in upper case with dots
as underscores: ``LOGSTRATE_DATA_DIR``, ``LOGSTRATE_KAFKA_BOOTSTRAP_SERVERS``,
``LOGSTRATE_KAFKA_PARTITIONS``. ``LOGSTRATE_CONFIG`` names the TOML file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.errors import ConfigError
from engine.metadata.address_policy import DEFAULT_DENY_NETWORKS, parse_networks
from engine.metadata.kafka_properties import is_secret_property
from engine.metadata.durations import DurationParseError, parse_duration
from engine.metadata.model import EffectiveRetryPolicy, OnMaxAttempts

ENV_PREFIX = "LOGSTRATE_"



class Secret:
    """A credential: usable through :meth:`get_secret_value`, masked everywhere else."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class KafkaConfig:
    """How the engine reaches Kafka and lays out its topics."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated ``host:port`` list of the Kafka cluster holding the WAL."""
    topic_prefix: str = "logstrate"
    """Names the topics: ``<prefix>.wal`` and ``<prefix>.metadata``."""
    partitions: int = 4
    """WAL partitions, fixed when the topic is created (the key-to-partition map depends on it)."""
    replication_factor: int = -1
    """Replication factor of the engine's topics; -1 takes the broker's default."""
    connect_timeout_s: float = 15.0
    """How long start-up waits for Kafka before giving up with an error."""
    wal_delivery_timeout_ms: int = 30_000
    """How long the WAL producer retries a record before the append fails (librdkafka's
    ``delivery.timeout.ms``); an invocation attempt whose records fail is retried."""
    properties: Mapping[str, str | Secret] = field(default_factory=dict)
    """Extra librdkafka client properties (security, TLS, SASL) applied to every client."""

    @property
    def wal_topic(self) -> str:
        return f"{self.topic_prefix}.wal"

    @property
    def metadata_topic(self) -> str:
        return f"{self.topic_prefix}.metadata"

    @property
    def responses_topic(self) -> str:
        return f"{self.topic_prefix}.responses"

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """The librdkafka configuration for a client, secrets revealed."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        for key, value in self.properties.items():
            conf[key] = value.get_secret_value() if isinstance(value, Secret) else value
        conf.update(overrides)
        return conf


@dataclass(frozen=True)
class RetryPolicyConfig:
    """``[default_retry_policy]``: how invocations are retried when neither their service
    nor their handler sets a retry policy (restate-server's ``[default-retry-policy]``,
    same defaults)::

        [default_retry_policy]
        initial_interval = "500ms"   # durations as the admin API spells them: 500ms, 1m, PT1M
        exponentiation_factor = 2.0
        max_interval = "1m"
        max_attempts = 70            # attempts in total, the first included; 0: unlimited
        on_max_attempts = "pause"    # or "kill"

    (``LOGSTRATE_DEFAULT_RETRY_POLICY_ON_MAX_ATTEMPTS=kill`` and so on in the environment.)
    ``pause`` parks an invocation that used up its attempts in the Paused status until
    ``PATCH /invocations/{id}/resume``; ``kill`` fails it with its last error. A service or
    handler policy from the discovery manifest overrides each setting it names."""

    initial_interval: str = "500ms"
    """Delay before the first retry."""
    exponentiation_factor: float = 2.0
    """Each further delay is the previous one times this (>= 1)."""
    max_interval: str = "1m"
    """Upper bound of a delay."""
    max_attempts: int = 70
    """Attempts allowed in total, the first one included; 0 retries without limit."""
    on_max_attempts: Literal["pause", "kill"] = "pause"
    """What happens once the attempts are used up."""

    def effective(self) -> EffectiveRetryPolicy:
        """The policy as the engine applies it (the settings are validated at load)."""
        return EffectiveRetryPolicy(
            initial_interval=parse_duration(self.initial_interval),
            exponentiation_factor=self.exponentiation_factor,
            max_attempts=self.max_attempts or None,
            max_interval=parse_duration(self.max_interval),
            on_max_attempts=OnMaxAttempts.KILL if self.on_max_attempts == "kill" else OnMaxAttempts.PAUSE,
        )


@dataclass(frozen=True)
class EngineConfig:
    """Everything ``logstrate serve`` needs; see the module docstring for the sources."""

    node_name: str = field(default_factory=socket.gethostname)
    """This process's name in logs and Kafka client ids; each run adds a random suffix to name
    itself in leadership records and ingress response sinks (several processes may share it)."""
    data_dir: Path = Path("data")
    """Where the LMDB environment lives; one engine process per data dir."""
    ingress_bind: str = "0.0.0.0:8080"
    """``host:port`` of the Restate-compatible ingress HTTP API."""
    admin_bind: str = "127.0.0.1:9070"
    """``host:port`` of the Restate-compatible admin HTTP API (and ``/metrics``, ``/ui``).
    Loopback by default: a non-loopback address needs ``admin_token`` or
    ``admin_allow_unauthenticated`` (protected mode, :mod:`engine.auth`)."""
    admin_token: Secret | None = None
    """A bearer token every admin request must carry (``Authorization: Bearer <token>``;
    the restate CLI sends ``RESTATE_AUTH_TOKEN``), except ``/health`` and the web UI's
    static files. Env ``LOGSTRATE_ADMIN_TOKEN`` (preferred: flags show in ``ps``), TOML
    ``admin_token``, flag ``--admin-token``. Compared in constant time; never logged."""
    admin_allow_unauthenticated: bool = False
    """Serve the admin API without a token on a non-loopback ``admin_bind`` (protected mode
    off): only behind a firewall or an authenticating proxy. Env
    ``LOGSTRATE_ADMIN_ALLOW_UNAUTHENTICATED=true``, TOML, flag ``--admin-allow-unauthenticated``."""
    ingress_token: Secret | None = None
    """A bearer token every ingress request must carry, except ``/restate/health``; separate
    from the admin token (callers of handlers need not manage the engine). Env
    ``LOGSTRATE_INGRESS_TOKEN``, TOML ``ingress_token``, flag ``--ingress-token``. The
    ``Authorization`` header is then the engine's credential: it is not handed to
    handlers nor kept in the WAL (callers put their own credentials in other headers)."""
    ingress_sensitive_headers: tuple[str, ...] = ()
    """Ingress headers, besides ``authorization``, ``cookie`` and ``proxy-authorization``,
    whose values are credentials: handed to the handler and kept in the WAL (a retry after
    a crash needs them), but shown as ``<redacted>`` in every admin answer, ``/query``
    table, the UI and logs. TOML list, or comma-separated in
    ``LOGSTRATE_INGRESS_SENSITIVE_HEADERS``; case-insensitive."""
    secrets_key: Secret | None = None
    """The 256-bit key (base64, or 64 hex digits; ``openssl rand -base64 32``) that seals
    credentials of Kafka clusters and subscriptions created through the admin API
    (passwords, SASL/OAuth secrets, ``ssl.key.pem``) with AES-256-GCM before they go into
    the metadata topic. Without it, such properties are refused (400). Every engine process
    of a cluster needs the same key. Env ``LOGSTRATE_SECRETS_KEY``, TOML ``secrets_key``."""
    secrets_key_file: Path | None = None
    """A file holding ``secrets_key`` (kept out of the config and the environment); read at
    start-up. Env ``LOGSTRATE_SECRETS_KEY_FILE``, flag ``--secrets-key-file``."""
    lmdb_map_size_mb: int = 4096
    """The LMDB map size to start with; it doubles when a write needs more (space is
    allocated lazily, so large is cheap)."""
    lmdb_max_map_size_mb: int = 0
    """How large the LMDB map may grow; 0: until the disk is full. Reaching it halts
    the partitions that write (``logstrate_partition_halted{reason="storage_full"}``)."""
    log_format: Literal["auto", "console", "json"] = "auto"
    """``auto`` renders for humans on a terminal and JSON otherwise."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    ingress_max_body_bytes: int = 10 * 1024 * 1024
    """Largest accepted ingress request body; bigger ones get 413. The WAL's own record
    limit (the producer's ``message.max.bytes``, 1,000,000 bytes unless
    ``[kafka.properties]`` raises it) also bounds it: a call whose ``Invoke`` record would
    be larger gets 413 naming that limit."""
    ingress_kafka_timeout_s: float = 5.0
    """How long an ingress request waits for Kafka to acknowledge its record before it is
    answered 503 with ``Retry-After`` (the WAL producer itself retries for its 30 s
    delivery timeout). While the brokers are known to be down, or the producer's queue is
    full, the answer is 503 at once. Env ``LOGSTRATE_INGRESS_KAFKA_TIMEOUT_S``."""
    invoke_hold_ms: int = 100
    """How long a call's ``Invoke`` waits for its first attempt's records so that both
    leave in one WAL record (``engine/partition/leader/deferred_invokes.py``); a handler
    slower than this gets its ``Invoke`` appended alone, and an object handler's
    speculative first attempt is stopped and run anew. 0 turns both off. Env
    ``LOGSTRATE_INVOKE_HOLD_MS``."""
    shutdown_timeout_s: float = 10.0
    """How long a SIGTERM waits for in-flight work before closing anyway."""
    subscription_pause_at_queued: int = 20_000
    """Kafka subscriptions stop fetching (pause their partitions) while this many WAL
    records are waiting in the engine's producer for Kafka's acknowledgement, so a
    backlog on a source topic cannot flood the WAL producer (backpressure)."""
    subscription_resume_at_queued: int = 5_000
    """...and fetch again once that queue is down to this many; below
    ``subscription_pause_at_queued``, so consumers do not flap around one threshold."""
    request_identity_private_key_pem_file: Path | None = None
    """A PKCS#8 PEM file with an ed25519 private key (``openssl genpkey -algorithm ed25519``):
    every request to a deployment (invocations and discovery) is then signed with it, as
    restate-server's setting of the same name does, for SDK endpoints configured with
    ``identity_keys``. The public key to give them (``publickeyv1_...``) is logged at
    start-up. Read once at start-up; the key itself is never logged."""
    invoker_tls_ca_file: Path | None = None
    """A PEM file of CA certificates trusted, in addition to the system's, when calling
    ``https://`` deployments (discovery and invocations, HTTP/1.1 and HTTP/2): for a
    private CA or a self-signed endpoint certificate. Certificates are always verified.
    Env ``LOGSTRATE_INVOKER_TLS_CA_FILE``, TOML ``invoker_tls_ca_file = "/etc/ca.pem"``,
    flag ``--invoker-tls-ca-file``."""
    invoker_http2: bool = True
    """Call deployments over HTTP/2 where they speak it, as restate-server does: discovery
    goes over HTTP/2 (h2c with prior knowledge for ``http://``, TLS with ALPN ``h2`` for
    ``https://``) unless the deployment is registered with ``use_http_11: true``, falling
    back to HTTP/1.1 when the endpoint does not speak HTTP/2; the manifest's
    ``protocolMode`` then decides: ``BIDI_STREAM`` deployments run each attempt as one
    bidirectional HTTP/2 stream (commands acknowledged in the open stream once applied,
    notifications pushed), ``REQUEST_RESPONSE`` ones are called over HTTP/1.1. Off
    (``false``): everything over HTTP/1.1 in request/response mode, discovery included
    (``BIDI_STREAM`` manifests refused; deployments registered in bidi mode earlier are
    called request/response over HTTP/1.1). Env ``LOGSTRATE_INVOKER_HTTP2``, TOML
    ``invoker_http2 = false``, flag ``--no-invoker-http2``."""
    tracing_endpoint: str | None = None
    """An OpenTelemetry collector's OTLP/HTTP endpoint (``http://collector:4318``, or the
    full traces URL ``.../v1/traces``): spans of every invocation and attempt are exported
    to it, continuing the ``traceparent`` of the ingress request or Kafka record, and the
    engine passes ``traceparent`` on to service endpoints. Off (no span is created) when
    unset, the default. Env ``LOGSTRATE_TRACING_ENDPOINT``, TOML ``tracing_endpoint``,
    flag ``--tracing-endpoint``. See docs/OBSERVABILITY.md."""
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    default_retry_policy: RetryPolicyConfig = field(default_factory=RetryPolicyConfig)
    """The retry policy of invocations whose service and handler set none (see
    :class:`RetryPolicyConfig`)."""
    kafka_clusters: Mapping[str, Mapping[str, str | Secret]] = field(default_factory=dict)
    """Kafka clusters subscriptions may read from, by name, as librdkafka properties::

        [kafka_clusters.my-cluster]
        "bootstrap.servers" = "broker-1:9092"

    (``LOGSTRATE_KAFKA_CLUSTERS`` takes the same as a JSON object.) Clusters can also be
    created at runtime with ``POST /kafka-clusters``; those declared here are read-only."""
    deployment_deny_networks: tuple[str, ...] = DEFAULT_DENY_NETWORKS
    """IP networks the engine never calls as service endpoints (discovery and invocations),
    by default link-local IPv4/IPv6 and cloud metadata addresses: ``POST /deployments``
    would otherwise make the engine fetch from them for whoever reaches the admin API.
    TOML list, or comma-separated in ``LOGSTRATE_DEPLOYMENT_DENY_NETWORKS``."""
    deployment_allow_networks: tuple[str, ...] = ()
    """IP networks endpoints may be in even when ``deployment_deny_networks`` covers them."""
    subscription_key_mappers: Mapping[str, str] = field(default_factory=dict)
    """Custom key mappers subscriptions may pick with the option ``key.mapper = "<name>"``::

        [subscription_key_mappers]
        tenant = "mypackage.keys:tenant_key"   # a callable from key bytes to str

    (``LOGSTRATE_SUBSCRIPTION_KEY_MAPPERS`` takes the same as a JSON object.) Imported at
    start-up; entry points of the group ``logstrate.key_mappers`` are added too. Only the
    operator names code here: the admin API picks among these names and never imports."""

    @property
    def ingress_address(self) -> tuple[str, int]:
        return parse_bind(self.ingress_bind, "ingress_bind")

    @property
    def admin_address(self) -> tuple[str, int]:
        return parse_bind(self.admin_bind, "admin_bind")


def parse_bind(value: str, name: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:8080`` for IPv6; ``:8080`` means all interfaces)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name} must be host:port, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def load_config(
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> EngineConfig:
    """Build the config from defaults, then the TOML file, then env, then ``overrides``.

    ``overrides`` are the command-line flags, keyed by dotted path (``"kafka.partitions"``);
    ``None`` values mean "not given" and are skipped.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if config_file is None and env.get(f"{ENV_PREFIX}CONFIG"):
        config_file = Path(env[f"{ENV_PREFIX}CONFIG"])
    if config_file is not None:
        values.update(_flatten(_read_toml(config_file)))
    paths = _field_paths(EngineConfig)
    for path in paths:
        env_name = ENV_PREFIX + path.replace(".", "_").upper()
        if env_name in env:
            values[path] = env[env_name]
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    unknown = sorted(k for k in values if k not in paths and not k.startswith("kafka.properties."))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; valid settings: {', '.join(sorted(paths))}")
    return typing.cast(EngineConfig, _build(EngineConfig, values, ""))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        # kafka.properties keys contain dots themselves, so they stay one level deep;
        # kafka_clusters is a table of such tables and is kept whole.
        if path in ("kafka_clusters", "subscription_key_mappers"):
            flat[path] = value
        elif isinstance(value, Mapping) and path != "kafka.properties":
            flat.update(_flatten(value, f"{path}."))
        elif path == "kafka.properties" and isinstance(value, Mapping):
            for prop, prop_value in value.items():
                flat[f"kafka.properties.{prop}"] = prop_value
        else:
            flat[path] = value
    return flat


def _field_paths(cls: type[Any], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            paths |= _field_paths(typing.cast(type[Any], hint), f"{prefix}{f.name}.")
        elif f.name != "properties":
            paths.add(f"{prefix}{f.name}")
    return paths


def _build(cls: type[Any], values: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            kwargs[f.name] = _build(typing.cast(type[Any], hint), values, f"{path}.")
        elif f.name == "properties":
            props = {k[len(path) + 1 :]: v for k, v in values.items() if k.startswith(f"{path}.")}
            kwargs[f.name] = {
                name: Secret(str(v)) if is_secret_property(name) else str(v) for name, v in props.items()
            }
        elif f.name == "kafka_clusters":
            if path in values:
                kwargs[f.name] = _kafka_clusters(values[path])
        elif f.name == "subscription_key_mappers":
            if path in values:
                kwargs[f.name] = _string_table(values[path], path, 'tenant = "mypackage.keys:tenant_key"')
        elif path in values:
            kwargs[f.name] = _coerce(values[path], hint, path)
    config = cls(**kwargs)
    _validate(config)
    return config


def _kafka_clusters(value: Any) -> dict[str, dict[str, str | Secret]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"kafka_clusters must be a JSON object of clusters: {exc}") from None
    if not isinstance(value, Mapping):
        raise ConfigError("kafka_clusters must be a table of clusters: [kafka_clusters.<name>] with librdkafka properties")
    clusters: dict[str, dict[str, str | Secret]] = {}
    for name, props in value.items():
        if not isinstance(props, Mapping) or not (props.get("bootstrap.servers") or props.get("metadata.broker.list")):
            raise ConfigError(f"kafka_clusters.{name} must set \"bootstrap.servers\" (e.g. \"localhost:9092\")")
        clusters[str(name)] = {
            str(k): Secret(str(v)) if is_secret_property(str(k)) else str(v) for k, v in props.items()
        }
    return clusters


def _string_table(value: Any, path: str, example: str) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} must be a JSON object of strings: {exc}") from None
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{path} must be a table of strings, e.g. [{path}] {example}")
    return {str(k): v for k, v in value.items()}


def _coerce(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        text = str(value).lower()
        if text not in allowed:
            raise ConfigError(f"{path} must be one of {', '.join(allowed)}, got {value!r}")
        return text
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{path} must be a list of strings (comma-separated in the environment), got {value!r}")
        return tuple(i.strip() for i in items if i.strip())
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is Path:
            return Path(str(value)).expanduser()
        if hint is Secret:
            return value if isinstance(value, Secret) else Secret(str(value))
        if hint is str:
            if isinstance(value, (dict, list)):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        name = getattr(hint, "__name__", str(hint))
        raise ConfigError(f"{path} must be a {name}, got {value!r}") from None
    raise ConfigError(f"{path}: unsupported setting type {hint!r}")


def _validate(config: Any) -> None:
    if isinstance(config, KafkaConfig):
        if not config.bootstrap_servers.strip():
            raise ConfigError("kafka.bootstrap_servers must not be empty")
        if config.partitions < 1:
            raise ConfigError(f"kafka.partitions must be at least 1, got {config.partitions}")
        if config.replication_factor == 0 or config.replication_factor < -1:
            raise ConfigError("kafka.replication_factor must be -1 (broker default) or at least 1")
        if not config.topic_prefix or any(c not in _TOPIC_CHARS for c in config.topic_prefix):
            raise ConfigError(
                f"kafka.topic_prefix may use only letters, digits, '.', '_' and '-', got {config.topic_prefix!r}"
            )
        if config.connect_timeout_s <= 0:
            raise ConfigError("kafka.connect_timeout_s must be positive")
        if config.wal_delivery_timeout_ms < 1000:
            raise ConfigError(f"kafka.wal_delivery_timeout_ms must be at least 1000, got {config.wal_delivery_timeout_ms}")
    elif isinstance(config, RetryPolicyConfig):
        _validate_retry_policy(config)
    elif isinstance(config, EngineConfig):
        config.ingress_address
        config.admin_address
        if not 0 < config.ingress_kafka_timeout_s * 1000 <= config.kafka.wal_delivery_timeout_ms:
            raise ConfigError(
                "ingress_kafka_timeout_s must be above 0 and at most the WAL delivery timeout "
                f"(kafka.wal_delivery_timeout_ms = {config.kafka.wal_delivery_timeout_ms}), "
                f"got {config.ingress_kafka_timeout_s}"
            )
        if not 0 <= config.invoke_hold_ms <= 10_000:
            raise ConfigError(f"invoke_hold_ms must be between 0 and 10000 (milliseconds), got {config.invoke_hold_ms}")
        if config.secrets_key is not None and config.secrets_key_file is not None:
            raise ConfigError("set secrets_key or secrets_key_file, not both")
        for name in ("admin_token", "ingress_token"):
            token = getattr(config, name)
            if token is not None and (not token.get_secret_value().strip() or any(
                    c.isspace() for c in token.get_secret_value())):
                raise ConfigError(f"{name} must be a non-empty token without spaces (e.g. `openssl rand -hex 32`)")
        if config.lmdb_map_size_mb < 16:
            raise ConfigError("lmdb_map_size_mb must be at least 16")
        if config.lmdb_max_map_size_mb and config.lmdb_max_map_size_mb < config.lmdb_map_size_mb:
            raise ConfigError("lmdb_max_map_size_mb must be 0 (no limit) or at least lmdb_map_size_mb")
        if not config.node_name:
            raise ConfigError("node_name must not be empty")
        for networks in ("deployment_deny_networks", "deployment_allow_networks"):
            try:
                parse_networks(getattr(config, networks), networks)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if config.tracing_endpoint is not None and not config.tracing_endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"tracing_endpoint must be an http(s) URL of an OTLP/HTTP collector, e.g. "
                f"http://localhost:4318, got {config.tracing_endpoint!r}"
            )
        if config.subscription_pause_at_queued < 1 or config.subscription_resume_at_queued < 1:
            raise ConfigError(
                "subscription_pause_at_queued and subscription_resume_at_queued must be at least 1, got "
                f"{config.subscription_pause_at_queued} and {config.subscription_resume_at_queued}"
            )
        if config.subscription_resume_at_queued >= config.subscription_pause_at_queued:
            raise ConfigError(
                f"subscription_resume_at_queued ({config.subscription_resume_at_queued}) must be below "
                f"subscription_pause_at_queued ({config.subscription_pause_at_queued}): consumption resumes "
                "once the WAL producer queue has drained below the level that paused it"
            )


def _validate_retry_policy(config: RetryPolicyConfig) -> None:
    intervals = {}
    for name in ("initial_interval", "max_interval"):
        try:
            intervals[name] = parse_duration(getattr(config, name))
        except DurationParseError as exc:
            raise ConfigError(f"default_retry_policy.{name}: {exc}") from None
        if intervals[name].total_seconds() <= 0:
            raise ConfigError(f"default_retry_policy.{name} must be positive, got {getattr(config, name)!r}")
    if intervals["max_interval"] < intervals["initial_interval"]:
        raise ConfigError(
            f"default_retry_policy.max_interval ({config.max_interval}) must not be below "
            f"initial_interval ({config.initial_interval})"
        )
    if not 1.0 <= config.exponentiation_factor < float("inf"):
        raise ConfigError(
            f"default_retry_policy.exponentiation_factor must be a number >= 1, got {config.exponentiation_factor}"
        )
    if config.max_attempts < 0:
        raise ConfigError(
            f"default_retry_policy.max_attempts must be 0 (unlimited) or more, got {config.max_attempts}"
        )


_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
