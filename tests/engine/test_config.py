"""Config precedence (flags > env > TOML > defaults), coercion and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from datetime import timedelta

from engine.config import EngineConfig, Secret, load_config
from engine.errors import ConfigError
from engine.metadata.model import DEFAULT_RETRY_POLICY, EffectiveRetryPolicy, OnMaxAttempts


def test_defaults() -> None:
    cfg = load_config(env={})
    assert cfg.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert cfg.ingress_address == ("0.0.0.0", 8080)
    assert cfg.admin_address == ("127.0.0.1", 9070)  # loopback: protected mode (engine.auth)
    assert cfg.kafka.wal_topic == "logstrate.wal"
    assert cfg.kafka.metadata_topic == "logstrate.metadata"
    assert cfg.data_dir == Path("data")
    assert cfg == EngineConfig(node_name=cfg.node_name)


def test_precedence_flags_over_env_over_toml(tmp_path: Path) -> None:
    toml = tmp_path / "engine.toml"
    toml.write_text(
        'data_dir = "/from/toml"\nadmin_bind = "127.0.0.1:7000"\n'
        '[kafka]\nbootstrap_servers = "toml:9092"\npartitions = 8\ntopic_prefix = "toml"\n'
    )
    env = {"LOGSTRATE_KAFKA_BOOTSTRAP_SERVERS": "env:9092", "LOGSTRATE_KAFKA_PARTITIONS": "12"}
    cfg = load_config(config_file=toml, env=env, overrides={"kafka.partitions": 16, "data_dir": None})
    assert cfg.kafka.partitions == 16  # flag beats env
    assert cfg.kafka.bootstrap_servers == "env:9092"  # env beats TOML
    assert cfg.kafka.topic_prefix == "toml"  # TOML beats default
    assert cfg.admin_address == ("127.0.0.1", 7000)
    assert cfg.data_dir == Path("/from/toml")  # a None flag means "not given"


def test_config_file_from_env(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('node_name = "n7"\n')
    assert load_config(env={"LOGSTRATE_CONFIG": str(toml)}).node_name == "n7"


def test_kafka_properties_keep_secrets_secret(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[kafka.properties]\n"security.protocol" = "SASL_SSL"\n"sasl.password" = "hunter2"\n'
    )
    cfg = load_config(config_file=toml, env={})
    assert cfg.kafka.properties["security.protocol"] == "SASL_SSL"
    secret = cfg.kafka.properties["sasl.password"]
    assert isinstance(secret, Secret)
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg)
    assert cfg.kafka.client_config()["sasl.password"] == "hunter2"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kafka.partitions": "many"}, "kafka.partitions must be a int"),
        ({"kafka.partitions": 0}, "kafka.partitions must be at least 1"),
        ({"ingress_bind": "8080"}, "ingress_bind must be host:port"),
        ({"log_format": "xml"}, "log_format must be one of auto, console, json"),
        ({"kafka.topic_prefix": "bad prefix!"}, "kafka.topic_prefix may use only"),
        ({"kafka.bootstrap_server": "x"}, "unknown setting(s) kafka.bootstrap_server"),
        ({"default_retry_policy.on_max_attempts": "retry"}, "default_retry_policy.on_max_attempts must be one of pause, kill"),
        ({"default_retry_policy.initial_interval": "soon"}, "default_retry_policy.initial_interval: "),
        ({"default_retry_policy.max_interval": "0s"}, "default_retry_policy.max_interval must be positive"),
        ({"default_retry_policy.max_interval": "100ms"}, "must not be below initial_interval (500ms)"),
        ({"default_retry_policy.exponentiation_factor": 0.5}, "exponentiation_factor must be a number >= 1"),
        ({"default_retry_policy.max_attempts": -1}, "max_attempts must be 0 (unlimited) or more"),
    ],
)
def test_bad_values_are_clear_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(env={}, overrides=overrides)


def test_bad_toml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(config_file=tmp_path / "missing.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("data_dir = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(config_file=broken, env={})


def test_env_booleans_and_paths() -> None:
    cfg = load_config(env={"LOGSTRATE_DATA_DIR": "~/x", "LOGSTRATE_KAFKA_CONNECT_TIMEOUT_S": "2.5"})
    assert cfg.data_dir == Path("~/x").expanduser()
    assert cfg.kafka.connect_timeout_s == 2.5


def test_subscription_key_mappers_from_toml_and_env(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[subscription_key_mappers]\ntenant = "mypackage.keys:tenant_key"\n')
    assert load_config(config_file=toml, env={}).subscription_key_mappers == {"tenant": "mypackage.keys:tenant_key"}
    env = {"LOGSTRATE_SUBSCRIPTION_KEY_MAPPERS": '{"t2": "m:f"}'}
    assert load_config(config_file=toml, env=env).subscription_key_mappers == {"t2": "m:f"}
    with pytest.raises(ConfigError, match=r"subscription_key_mappers must be a table of strings"):
        load_config(env={"LOGSTRATE_SUBSCRIPTION_KEY_MAPPERS": '{"t": 1}'})


def test_default_retry_policy_is_restates_and_configurable(tmp_path: Path) -> None:
    # restate-server 1.7's [default-retry-policy]: 500ms, x2, 1m, 70 attempts, then pause.
    assert load_config(env={}).default_retry_policy.effective() == DEFAULT_RETRY_POLICY
    assert DEFAULT_RETRY_POLICY.on_max_attempts is OnMaxAttempts.PAUSE
    toml = tmp_path / "c.toml"
    toml.write_text('[default_retry_policy]\ninitial_interval = "100ms"\nmax_attempts = 0\nmax_interval = "PT5S"\n')
    env = {"LOGSTRATE_DEFAULT_RETRY_POLICY_ON_MAX_ATTEMPTS": "KILL", "LOGSTRATE_DEFAULT_RETRY_POLICY_EXPONENTIATION_FACTOR": "3"}
    policy = load_config(config_file=toml, env=env).default_retry_policy.effective()
    assert policy == EffectiveRetryPolicy(
        initial_interval=timedelta(milliseconds=100),
        exponentiation_factor=3.0,
        max_attempts=None,  # 0: unlimited
        max_interval=timedelta(seconds=5),
        on_max_attempts=OnMaxAttempts.KILL,
    )
