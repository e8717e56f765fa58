"""``failover.toml``: the fallback chain, the keys and every setting in one file.

Example:
    .. code-block:: toml

        chain = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]

        [settings]            # every FailoverConfig field and the client's options
        max_retries = 2
        timeout = 30
        deadline = 90

        [settings.max_in_flight]   # provider/model -> requests it may run at once
        "openai/gpt-4o-mini" = 16

        [[profiles]]
        name = "openai-main"
        provider = "openai"
        api_key = "env:OPENAI_API_KEY"
        rate_limit_tpm = 200000

        [[budgets]]           # spend budgets: usd per hour, day, month or seconds
        usd = 50
        per = "day"
        scope = "client"      # or profile:<name>, model:<provider/model>, group:<name>, tag:<tag>

        [telemetry]
        capture_content = false
        prometheus_port = 9464

Read with the standard library's ``tomllib`` (``tomli`` on Python 3.10). Every error names
the table and the key; a missing environment variable is named, and no value read from
the environment is ever shown.

This is the one place that builds objects from a file, and it sits above what it builds
(the manager, the client): ``load_config(path).client()``, ``.sync_client()`` and
``.manager()``. Nothing below it imports it, so the state layer never reaches the client
through a file.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.auth_profile import AuthProfile
from failover.budgets import Budget
from failover.config import FailoverConfig
from failover.config_values import (
    SIMPLE_TYPES,
    as_table,
    describe,
    literal_values,
    no_unknown_keys,
    toml_type,
    type_parts,
    typed,
)
from failover.errors import ConfigError, FallbackChainError, ProviderError
from failover.profiles import FailoverManager

if TYPE_CHECKING:
    from failover.catalog import ModelCatalog
    from failover.client import ResilientClient
    from failover.sync_client import SyncResilientClient
    from failover.telemetry import PrometheusExposition, Telemetry

__all__ = [
    "ConfigWarning",
    "LoadedConfig",
    "ProfileSpec",
    "TelemetrySettings",
    "client_options",
    "load_config",
    "parse_config",
]

_ENV_REFERENCE = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")
_PROFILE_KEYS: dict[str, str] = {
    "name": "str",
    "provider": "str",
    "api_key": "str",
    "base_url": "str",
    "models": "list[str]",
    "priority": "int",
    "rate_limit_rpm": "int",
    "rate_limit_tpm": "int",
    "weight": "float",
    "max_in_flight": "int",
    "metadata": "as_table",
    "region": "str",  # bedrock, vertex_*: the cloud region
    "project": "str",  # vertex_*: the Google Cloud project
    "credentials": "str",  # bedrock: an AWS profile name; vertex_*: a service-account file
}
_TELEMETRY_KEYS = {
    "enabled": "bool",
    "capture_content": "bool",
    "prometheus_port": "int",
    "prometheus_addr": "str",
}
_BUDGET_KEYS = ("usd", "per", "scope")
_TOP_LEVEL = ("budgets", "chain", "profiles", "settings", "telemetry")
_OWN_TABLES = ("telemetry",)  # client options set from a table of their own
_IN_CODE = ("session",)  # client options naming one conversation: given in code, not a file
_ERROR_CLASS_OPTIONS = ("policy_overrides", "fallback_on")  # client options naming error classes
_MANAGER_OPTIONS = ("max_in_flight",)  # [settings] keys that go to the manager
_expositions: dict[tuple[str, int | None], PrometheusExposition] = {}


class ConfigWarning(UserWarning):
    """Something in a config file works but is unwise (e.g. a key written into the file)."""


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """One ``[[profiles]]`` table, resolved: keys from the environment already read.

    Attributes:
        values: The AuthProfile arguments.
        key_source: ``env:NAME``, ``literal`` (written in the file) or ``none``.
    """

    values: Mapping[str, Any] = field(repr=False)
    key_source: str

    @property
    def name(self) -> str:
        """The profile's name."""
        return str(self.values["name"])

    def build(self) -> AuthProfile:
        """A fresh AuthProfile (with a clean health record)."""
        return AuthProfile(**self.values)


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """The ``[telemetry]`` table.

    Attributes:
        enabled: ``None`` (default): on when opentelemetry-api is installed; else on or off.
        capture_content: Record prompts and completions (off by default).
        prometheus_port: Serve metrics for Prometheus on this port (``None``: do not).
        prometheus_addr: The address to serve them on.
    """

    enabled: bool | None = None
    capture_content: bool = False
    prometheus_port: int | None = None
    prometheus_addr: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """What a ``failover.toml`` says, checked and with environment references resolved.

    Attributes:
        source: Where it came from (a path, or ``<string>``).
        chain: The ``provider/model`` ids in priority order; an item may be a group of
            equivalent deployments (a list of ids, or ``{name, deployments}``).
        profiles: The key profiles (build fresh AuthProfiles with :meth:`build_profiles`).
        config: The FailoverConfig from ``[settings]``.
        options: The client's options from ``[settings]`` (``timeout``, ``deadline``, ...).
        telemetry: The ``[telemetry]`` table.
        budgets: The ``[[budgets]]`` tables (the manager's spend budgets).
        max_in_flight: ``[settings] max_in_flight``: ``provider/model`` -> requests that
            deployment may run at once (the manager's).
        groups: The chain's named groups: name -> its deployments' ids.
    """

    source: str
    chain: tuple[str | tuple[str, ...], ...]
    profiles: tuple[ProfileSpec, ...]
    config: FailoverConfig
    options: Mapping[str, Any]
    telemetry: TelemetrySettings
    budgets: tuple[Budget, ...] = ()
    max_in_flight: Mapping[str, int] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def build_profiles(self) -> list[AuthProfile]:
        """Fresh AuthProfiles, one per ``[[profiles]]`` table."""
        return [spec.build() for spec in self.profiles]

    def manager(self, **kwargs: Any) -> FailoverManager:
        """A FailoverManager with the file's profiles, settings, budgets and in-flight caps
        (``kwargs``: e.g. ``clock``, ``store``, or ``profiles`` instead of fresh ones)."""
        admission: dict[str, Any] = {"budgets": self.budgets}
        if self.max_in_flight:
            admission["max_in_flight"] = dict(self.max_in_flight)
        if self.options.get("session_ttl") is not None:
            admission["session_ttl"] = self.options["session_ttl"]
        profiles = kwargs.pop("profiles", None)
        if profiles is None:
            profiles = self.build_profiles()
        return FailoverManager(self.config, profiles=profiles, **{**admission, **kwargs})

    def build_telemetry(self) -> Telemetry | bool | None:
        """The client's ``telemetry=`` argument the ``[telemetry]`` table asks for.

        With ``prometheus_port`` this starts serving metrics (see
        ``failover.telemetry.serve_prometheus``).
        """
        settings = self.telemetry
        if settings.enabled is False:
            return False
        if settings.prometheus_port is not None:
            return self.serve_prometheus().telemetry
        if settings.capture_content:
            from failover.telemetry import Telemetry

            return Telemetry(capture_content=True)
        return settings.enabled

    def serve_prometheus(self) -> PrometheusExposition:
        """Serve metrics on the ``[telemetry]`` table's ``prometheus_port``.

        Clients built from files that name the same address and port share one server.
        """
        from failover.telemetry import serve_prometheus

        settings = self.telemetry
        where = (settings.prometheus_addr, settings.prometheus_port)
        exposition = _expositions.get(where)
        if exposition is None or exposition.url is None:
            exposition = serve_prometheus(
                settings.prometheus_port,
                addr=settings.prometheus_addr,
                capture_content=settings.capture_content,
            )
            if settings.prometheus_port:  # port 0 picks a new port each time
                _expositions[where] = exposition
        return exposition

    @property
    def model_ids(self) -> tuple[str, ...]:
        """Every ``provider/model`` id of the chain, a group's deployments one by one."""
        return tuple(
            model_id
            for step in self.chain
            for model_id in ((step,) if isinstance(step, str) else step)
        )

    def client(self, **overrides: Any) -> ResilientClient:
        """A ResilientClient for the file's chain, keys and settings.

        Args:
            overrides: Client arguments that win over the file's (e.g. ``http_client``).

        Raises:
            ConfigError: The file has no ``chain``.
        """
        from failover.client import ResilientClient

        chain, profiles, arguments = self._client_arguments(overrides)
        return ResilientClient(chain, profiles, **arguments)

    def sync_client(self, **overrides: Any) -> SyncResilientClient:
        """A SyncResilientClient for the file's chain, keys and settings (see :meth:`client`).

        Raises:
            ConfigError: The file has no ``chain``.
        """
        from failover.sync_client import SyncResilientClient

        chain, profiles, arguments = self._client_arguments(overrides)
        return SyncResilientClient(chain, profiles, **arguments)

    def _client_arguments(
        self, overrides: Mapping[str, Any]
    ) -> tuple[list[str | tuple[str, ...]], Any, dict[str, Any]]:
        """A client's chain, profiles (a fresh manager unless given) and keyword arguments."""
        if not self.chain:
            raise ConfigError(f"{self.source}: chain is missing; a client needs at least one model")
        arguments: dict[str, Any] = {**self.options, **overrides}
        if "telemetry" not in arguments:
            arguments["telemetry"] = self.build_telemetry()
        arguments.pop("session_ttl", None)  # the manager's (see manager())
        profiles = arguments.pop("profiles") if "profiles" in arguments else self.manager()
        names = {deployments: name for name, deployments in self.groups.items()}
        chain: list[Any] = [
            {"name": names[step], "deployments": list(step)} if step in names else step
            for step in self.chain
        ]
        return chain, profiles, arguments


def client_options() -> dict[str, str]:
    """The ResilientClient keyword options a config file may set, with their types.

    Every keyword argument of ``ResilientClient`` that TOML can write: its type includes
    ``bool``, ``int``, ``float``, ``str`` or a ``Literal`` (so ``timeout``, ``deadline``,
    ``hedge_after``, ``strategy``, ...); ``telemetry`` has a table of its own.
    """
    found = {}
    for parameter in _client_parameters().values():
        annotation = parameter.annotation
        if (
            parameter.kind is not inspect.Parameter.KEYWORD_ONLY
            or not isinstance(annotation, str)
            or parameter.name in _OWN_TABLES
            or parameter.name in _IN_CODE
        ):
            continue
        parts = type_parts(annotation)
        if any(part in SIMPLE_TYPES or literal_values(part) for part in parts):
            found[parameter.name] = annotation
    return found


def load_config(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    catalog: ModelCatalog | None = None,
) -> LoadedConfig:
    """Read and check a ``failover.toml``.

    Args:
        path: The file.
        env: Where ``env:NAME`` references are looked up (default: ``os.environ``).
        catalog: Where the chain's ids are looked up (default: the default catalog).

    Raises:
        ConfigError: The file is missing, is not TOML, or a value is wrong (the message names
            the table and the key).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it ({exc.strerror})") from None
    return parse_config(text, source=str(file), env=env, catalog=catalog)


def parse_config(
    text: str,
    *,
    source: str = "<string>",
    env: Mapping[str, str] | None = None,
    catalog: ModelCatalog | None = None,
) -> LoadedConfig:
    """Check the text of a ``failover.toml``; see :func:`load_config`."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    environment = os.environ if env is None else env
    no_unknown_keys(document, _TOP_LEVEL, f"{source}: top level")
    settings = dict(as_table(document.get("settings", {}), f"{source}: [settings]"))
    raw_caps = settings.pop("max_in_flight", None)
    config, options = _settings(settings, f"{source}: [settings]")
    chain, groups = _chain(
        document.get("chain"), source, catalog, options.get("strict_models", False)
    )
    raw_profiles = document.get("profiles", [])
    if not isinstance(raw_profiles, list) or not all(isinstance(p, dict) for p in raw_profiles):
        raise ConfigError(f"{source}: profiles must be [[profiles]] tables")
    profiles = tuple(
        _profile(raw, f"{source}: [[profiles]] #{number}", environment)
        for number, raw in enumerate(raw_profiles, start=1)
    )
    seen: set[str] = set()
    for spec in profiles:
        if spec.name in seen:
            raise ConfigError(f"{source}: [[profiles]]: two profiles are named {spec.name!r}")
        seen.add(spec.name)
    telemetry = _telemetry(document.get("telemetry", {}), f"{source}: [telemetry]")
    known = _Known(source, chain, groups, tuple(spec.name for spec in profiles), catalog)
    caps = {} if raw_caps is None else _caps(raw_caps, f"{source}: [settings] max_in_flight", known)
    budgets = _budgets(document.get("budgets", []), source, known)
    return LoadedConfig(source, chain, profiles, config, options, telemetry, budgets, caps, groups)


# -- the parts ----------------------------------------------------------------------------


def _chain(
    value: Any, source: str, catalog: ModelCatalog | None, strict: bool
) -> tuple[tuple[str | tuple[str, ...], ...], dict[str, tuple[str, ...]]]:
    """The chain's steps: ids, and groups written as a list of ids or ``{name, deployments}``;
    and the named groups (name -> deployments).

    Ids the catalog does not know are refused when ``[settings] strict_models = true``;
    otherwise the client built from the file warns about them (not the parse as well).
    """
    from failover.chain import FallbackChain
    from failover.errors import UnknownModelWarning

    if value is None:
        return (), {}
    shape = (
        f'{source}: top level: chain must be a list of "provider/model" strings or groups '
        '(a list of them, or {name = "...", deployments = [...]})'
    )
    if not isinstance(value, list):
        raise ConfigError(f"{shape}, got {describe(value)}")
    steps: list[str | tuple[str, ...]] = []
    groups: dict[str, tuple[str, ...]] = {}
    for item in value:
        name = item.get("name") if isinstance(item, dict) else None
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError(f"{shape}; a group's name must be a non-empty string, got {name!r}")
        if name in groups:
            raise ConfigError(f"{source}: top level: chain: two groups are named {name!r}")
        if isinstance(item, dict) and "on" in item:  # the same model on several clouds
            from failover.clouds import same_model_ids

            try:
                item = list(same_model_ids(item))
            except ConfigError as exc:
                raise ConfigError(f"{source}: top level: chain: {exc}") from None
        elif isinstance(item, dict):
            unknown = sorted(set(item) - {"name", "deployments"})
            if unknown:
                raise ConfigError(f"{shape}; a group has no key {', '.join(unknown)}")
            item = item.get("deployments")
        if isinstance(item, str):
            steps.append(item)
        elif isinstance(item, list) and item and all(isinstance(i, str) for i in item):
            steps.append(tuple(item))
        else:
            raise ConfigError(f"{shape}, got {describe(item)} in it")
        if name is not None:
            step = steps[-1]
            groups[name] = (step,) if isinstance(step, str) else step
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnknownModelWarning)
            FallbackChain.from_ids(steps, catalog=catalog, strict=strict)
    except FallbackChainError as exc:
        raise ConfigError(f"{source}: top level: chain: {exc}") from None
    return tuple(steps), groups


def _settings(values: dict[str, Any], where: str) -> tuple[FailoverConfig, dict[str, Any]]:
    config_types = {f.name: str(f.type) for f in dataclasses.fields(FailoverConfig) if f.init}
    option_types = client_options()
    by_error_class = [name for name in _ERROR_CLASS_OPTIONS if name in _client_parameters()]
    no_unknown_keys(values, [*config_types, *option_types, *by_error_class], where)
    config_values: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in values.items():
        if key in config_types:
            config_values[key] = typed(value, config_types[key], where, key)
        elif key in option_types:
            options[key] = typed(value, option_types[key], where, key)
    try:
        config = FailoverConfig(**config_values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    options.update(_policy_options(values, f"{where}: "))
    return config, options


def _client_parameters() -> Mapping[str, inspect.Parameter]:
    from failover.client import ResilientClient

    return inspect.signature(ResilientClient.__init__).parameters


def _policy_options(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``policy_overrides`` (error class name -> action) and ``fallback_on`` (class names)."""
    import failover.errors

    def error_class(name: Any, key: str) -> type[ProviderError]:
        found = getattr(failover.errors, name, None) if isinstance(name, str) else None
        if not (isinstance(found, type) and issubclass(found, ProviderError)):
            known = sorted(
                n
                for n, v in vars(failover.errors).items()
                if isinstance(v, type) and issubclass(v, ProviderError)
            )
            raise ConfigError(
                f"{where}{key}: {name!r} is not an error class; one of: {', '.join(known)}"
            )
        return found

    options: dict[str, Any] = {}
    if "policy_overrides" in values:
        table = as_table(values["policy_overrides"], f"{where}policy_overrides")
        options["policy_overrides"] = {
            error_class(name, "policy_overrides"): action for name, action in table.items()
        }
    if "fallback_on" in values:
        names = values["fallback_on"]
        if not isinstance(names, list):
            raise ConfigError(
                f"{where}fallback_on must be a list of error class names, got {describe(names)}"
            )
        options["fallback_on"] = tuple(error_class(name, "fallback_on") for name in names)
    if options:
        from failover.policy import Policy

        try:
            Policy(
                overrides=options.get("policy_overrides"), fallback_on=options.get("fallback_on")
            )
        except ConfigError as exc:  # the classes are checked above: an unknown action
            raise ConfigError(f"{where}policy_overrides: {exc}") from None
    return options


def _profile(raw: dict[str, Any], where: str, env: Mapping[str, str]) -> ProfileSpec:
    if isinstance(raw.get("name"), str) and raw["name"].strip():
        where = f"{where} ({raw['name']!r})"
    no_unknown_keys(raw, _PROFILE_KEYS, where)
    for required in ("name", "provider"):
        if required not in raw:
            raise ConfigError(f"{where}: {required} is missing")
    values: dict[str, Any] = {}
    key_source = "none"
    for key, value in raw.items():
        kind = _PROFILE_KEYS[key]
        if key == "api_key":
            if not isinstance(value, str):  # never show what was written there
                raise ConfigError(f"{where}: api_key must be a string, got a {toml_type(value)}")
            value, key_source = _api_key(value, where, env)
        elif key == "base_url" and isinstance(value, str):
            value = _resolve_env(value, where, key, env)
        elif kind == "list[str]":
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ConfigError(
                    f"{where}: {key} must be a list of strings, got {describe(value)}"
                )
        elif kind == "table":
            value = as_table(value, f"{where}: {key}")
        else:
            value = typed(value, kind, where, key)
        values[key] = value
    values.setdefault("api_key", "")
    spec = ProfileSpec(values, key_source)
    try:
        from failover import providers

        spec.build()
        providers.get_adapter(str(values["provider"]))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return spec


def _api_key(value: str, where: str, env: Mapping[str, str]) -> tuple[str, str]:
    match = _ENV_REFERENCE.fullmatch(value.strip())
    if match is not None:
        return _from_env(match.group(1), where, "api_key", env), f"env:{match.group(1)}"
    if value.startswith("env:"):
        raise ConfigError(
            f'{where}: api_key must be "env:NAME" with NAME a valid environment variable name'
        )
    if value:
        warnings.warn(
            f"{where}: api_key is written in the file itself; keep keys out of files with "
            'api_key = "env:VARIABLE"',
            ConfigWarning,
            stacklevel=5,
        )
        return value, "literal"
    return value, "none"


def _resolve_env(value: str, where: str, key: str, env: Mapping[str, str]) -> str:
    match = _ENV_REFERENCE.fullmatch(value.strip())
    return _from_env(match.group(1), where, key, env) if match else value


def _from_env(name: str, where: str, key: str, env: Mapping[str, str]) -> str:
    found = env.get(name)
    if not found:
        raise ConfigError(
            f"{where}: {key} refers to the environment variable {name}, which is "
            + ("empty" if found == "" else "not set")
        )
    return found


def _telemetry(raw: Any, where: str) -> TelemetrySettings:
    values = as_table(raw, where)
    no_unknown_keys(values, _TELEMETRY_KEYS, where)
    checked = {key: typed(value, _TELEMETRY_KEYS[key], where, key) for key, value in values.items()}
    port = checked.get("prometheus_port")
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError(f"{where}: prometheus_port must be within 0..65535, got {port}")
    return TelemetrySettings(**checked)


@dataclass(frozen=True, slots=True)
class _Known:
    """What the file names, for checking what budgets and caps refer to."""

    source: str
    chain: tuple[str | tuple[str, ...], ...]
    groups: Mapping[str, tuple[str, ...]]
    profiles: tuple[str, ...]
    catalog: ModelCatalog | None

    def models(self) -> dict[str, str]:
        """Every chain id and the catalog's key for it -> the key budgets and caps match."""
        from failover.chain import FallbackChain
        from failover.errors import UnknownModelWarning

        written = [i for step in self.chain for i in ((step,) if isinstance(step, str) else step)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnknownModelWarning)
            models = FallbackChain.from_ids(written, catalog=self.catalog).models
        found = {}
        for model_id, model in zip(written, models, strict=True):
            found[model_id] = found[model.key] = model.key
        return found

    def model(self, model_id: str, where: str) -> str:
        """The key of ``model_id``, which must be in the chain (when the file has one)."""
        if not self.chain:
            return model_id
        models = self.models()
        if model_id not in models:
            raise ConfigError(
                f"{where}: {model_id!r} is not in the chain; the chain's models: "
                + ", ".join(sorted(set(models.values())))
            )
        return models[model_id]


def _caps(raw: Any, where: str, known: _Known) -> dict[str, int]:
    """``[settings] max_in_flight``: ``provider/model`` -> a whole number of 1 or more."""
    table = as_table(raw, where)
    caps: dict[str, int] = {}
    for deployment, cap in table.items():
        if "/" not in deployment:
            raise ConfigError(f'{where}: keys are "provider/model" ids, got {deployment!r}')
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ConfigError(
                f'{where}: "{deployment}" must be a whole number of 1 or more, got {describe(cap)}'
            )
        caps[known.model(deployment, where)] = cap
    return caps


def _budgets(raw: Any, source: str, known: _Known) -> tuple[Budget, ...]:
    """The ``[[budgets]]`` tables: ``usd``, ``per`` (``hour``, ``day``, ``month`` or seconds)
    and ``scope``, each checked against what the file names."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError(f"{source}: budgets must be [[budgets]] tables, got {describe(raw)}")
    budgets = []
    for number, values in enumerate(raw, start=1):
        where = f"{source}: [[budgets]] #{number}"
        no_unknown_keys(values, _BUDGET_KEYS, where)
        if "usd" not in values:
            raise ConfigError(f"{where}: usd is missing (the dollars it may spend per window)")
        usd = typed(values["usd"], "float", where, "usd")
        per = typed(values.get("per", "day"), "str | float", where, "per")
        scope = typed(values.get("scope", "client"), "str", where, "scope")
        try:
            budget = Budget(usd=usd, per=per, scope=scope)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        kind, target = budget.kind, budget.target or ""
        if kind == "profile" and known.profiles and target not in known.profiles:
            raise ConfigError(
                f"{where}: scope {scope!r} names no profile of this file; its profiles: "
                + ", ".join(known.profiles)
            )
        if kind == "group" and known.chain and target not in known.groups:
            named = ", ".join(known.groups) or 'none: write {name = "...", deployments = [...]}'
            raise ConfigError(
                f"{where}: scope {scope!r} names no group of the chain; its named groups: {named}"
            )
        if kind == "model":
            key = known.model(target, f"{where}: scope")
            if key != target:
                budget = Budget(usd=budget.usd, per=budget.per, scope=f"model:{key}")
        budgets.append(budget)
    return tuple(budgets)
