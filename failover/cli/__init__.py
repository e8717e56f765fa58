"""The ``failover`` command: chat, check a config, show key status, simulate, demo."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.config_file import LoadedConfig, ProfileSpec
    from failover.profiles import AuthProfile, FailoverManager, FailoverStatus
    from failover.testing import Simulator

__all__ = ["build_parser", "keys_from_environment", "main", "profiles_from_environment"]

ENV_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
}
CHAT_MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.5-flash-lite",
    "groq": "groq/llama-3.1-8b-instant",
    "mistral": "mistral/mistral-small-latest",
    "openrouter": "openrouter/openai/gpt-4o-mini",
    "deepseek": "deepseek/deepseek-chat",
}
OLLAMA_MODEL = "llama3.2"
PROBE = [{"role": "user", "content": "Reply with the word OK."}]
NOT_PROBED = "not probed: run with --probe to check keys"
DEFAULT_CONFIG = "failover.toml"


# -- numbers on the command line ---------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number, got {text}")
    return value


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 64:
        raise argparse.ArgumentTypeError(f"must be within 0..64, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is within 0..65535, got {value}")
    return value


def _provider_key(text: str) -> tuple[str, str]:
    provider, equals, key = text.partition("=")
    if not equals or not provider or not key:
        raise argparse.ArgumentTypeError(f"expected PROVIDER=KEY, got {provider!r}=…")
    return provider, key


# -- profiles from the environment -------------------------------------------------------------


def keys_from_environment(env: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """Return (profile name, provider, key) for ``OPENAI_API_KEY``, ``OPENAI_API_KEY_2``, ..."""
    env = dict(os.environ if env is None else env)
    found = []
    for provider, variable in ENV_KEYS.items():
        names = [variable] + [f"{variable}_{n}" for n in range(2, 10)]
        if provider == "gemini":
            names.append("GOOGLE_API_KEY")
        for name in names:
            if env.get(name):
                found.append((name.lower(), provider, env[name]))
    return found


def profiles_from_environment(
    env: Mapping[str, str] | None = None,
) -> tuple[list[AuthProfile], list[str]]:
    """Profiles and a default chain from the standard environment variables.

    ``OPENAI_API_KEY`` (and ``OPENAI_API_KEY_2``..``_9``), ``ANTHROPIC_API_KEY``,
    ``GEMINI_API_KEY``/``GOOGLE_API_KEY``, ``GROQ_API_KEY``, ``MISTRAL_API_KEY``,
    ``OPENROUTER_API_KEY``, ``DEEPSEEK_API_KEY``, each with an optional ``*_BASE_URL``
    (``OPENAI_BASE_URL``, ...); Ollama (no key) when ``OLLAMA_HOST``, ``OLLAMA_BASE_URL`` or
    ``OLLAMA_MODEL`` is set; vLLM when ``VLLM_BASE_URL`` and ``VLLM_MODEL`` are set
    (``VLLM_API_KEY`` optional).
    """
    from failover.profiles import AuthProfile

    env = dict(os.environ if env is None else env)
    profiles: list[AuthProfile] = []
    chain: list[str] = []
    for name, provider, key in keys_from_environment(env):
        base_url = env.get(f"{provider.upper()}_BASE_URL") or None
        profiles.append(AuthProfile(name, provider, key, base_url=base_url))
        if CHAT_MODELS[provider] not in chain:
            chain.append(CHAT_MODELS[provider])
    ollama = env.get("OLLAMA_BASE_URL") or env.get("OLLAMA_HOST")
    if ollama or env.get("OLLAMA_MODEL"):
        profiles.append(AuthProfile("ollama", "ollama", "", base_url=_ollama_url(ollama)))
        chain.append(f"ollama/{env.get('OLLAMA_MODEL') or OLLAMA_MODEL}")
    if env.get("VLLM_BASE_URL") and env.get("VLLM_MODEL"):
        profiles.append(
            AuthProfile("vllm", "vllm", env.get("VLLM_API_KEY", ""), base_url=env["VLLM_BASE_URL"])
        )
        chain.append(f"vllm/{env['VLLM_MODEL']}")
    return profiles, chain


def _ollama_url(value: str | None) -> str | None:
    """``OLLAMA_HOST`` as Ollama writes it (``host:port``) -> its OpenAI-compatible base URL."""
    if not value:
        return None
    url = value if "://" in value else f"http://{value}"
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


# -- chat ------------------------------------------------------------------------------------


async def _chat(args: argparse.Namespace) -> int:
    from failover import ConfigError, FailoverError, ResilientClient

    options: dict[str, Any] = {
        name: value
        for name, value in (("timeout", args.timeout), ("deadline", args.deadline))
        if value is not None
    }
    if args.config:
        loaded = _load(args.config)
        chain = args.chain or list(loaded.chain)
        if not chain:
            raise ConfigError(f"{loaded.source}: chain is missing; give one with --chain")
        client = dataclasses.replace(loaded, chain=tuple(chain)).client(**options)
        names = ", ".join(spec.name for spec in loaded.profiles)
        print(f"profiles: {names} (from {loaded.source})", file=sys.stderr)
    else:
        profiles, chain = profiles_from_environment()
        if not profiles:
            names = ", ".join(ENV_KEYS.values())
            print(
                f"failover chat: no API keys found. Set one of {names} "
                "(more keys as OPENAI_API_KEY_2, ...), OLLAMA_HOST for Ollama, "
                "or use --config failover.toml.",
                file=sys.stderr,
            )
            return 2
        print(
            "profiles found: " + ", ".join(f"{p.name} ({p.provider})" for p in profiles),
            file=sys.stderr,
        )
        options.setdefault("deadline", 120.0)
        client = ResilientClient(args.chain or chain, profiles, **options)
    messages = [{"role": "user", "content": args.prompt}]
    model: str | None
    profile: str | None
    async with client:
        try:
            if args.no_stream:
                result = await client.complete(messages, max_tokens=args.max_tokens)
                print(result.text)
                model, profile, attempts = result.model, result.profile, result.attempts
            else:
                async with client.stream(messages, max_tokens=args.max_tokens) as stream:
                    async for chunk in stream:
                        print(chunk.text, end="", flush=True)
                print()
                model, profile, attempts = stream.model, stream.profile, stream.attempts
        except FailoverError as exc:
            print(f"failover chat: {exc}", file=sys.stderr)
            return 1
    print(f"[{model} via {profile}, {len(attempts)} attempt(s)]", file=sys.stderr)
    if len(attempts) > 1:  # why it took more than one
        from failover.logs import trail

        print(trail(attempts), file=sys.stderr)
    return 0


# -- probing each key --------------------------------------------------------------------------


@dataclass(slots=True)
class Probe:
    """What one tiny request through one profile showed."""

    profile: AuthProfile
    model: str | None
    outcome: str
    status: int | None
    latency: float
    message: str


def _probe_model(spec: ProfileSpec, chain: Sequence[str]) -> str | None:
    """The model to probe a profile with: the chain's first it may serve, else a default."""
    from failover.catalog import canonical_provider

    provider = spec.build().provider
    models = spec.values.get("models")
    for key in chain:
        model_provider, _, model = key.partition("/")
        if canonical_provider(model_provider) == provider and (not models or model in models):
            return key
    if models:
        return f"{provider}/{next(iter(models))}"
    if provider in CHAT_MODELS:
        return CHAT_MODELS[provider]
    return f"{provider}/{OLLAMA_MODEL}" if provider.startswith("ollama") else None


async def _probe(spec: ProfileSpec, model: str | None, timeout: float) -> Probe:
    from failover import FailoverConfig, FailoverError, ResilientClient

    profile = spec.build()
    if model is None:
        return Probe(profile, None, "skipped", None, 0.0, "no model to try; list its models")
    began = time.monotonic()
    config = FailoverConfig(max_retries=0, failure_threshold=1)
    try:
        async with ResilientClient(
            [model], [profile], config=config, timeout=timeout, telemetry=False
        ) as client:
            await client.complete(PROBE, max_tokens=16)
    except FailoverError as exc:
        attempts = getattr(exc, "attempts", ()) or ()
        last = attempts[-1] if attempts else None
        outcome = last.outcome if last else getattr(exc, "kind", type(exc).__name__)
        status = last.status if last else getattr(exc, "status", None)
        message = (last.error.message if last and last.error else str(exc)).partition("\n")[0]
        return Probe(profile, model, outcome, status, time.monotonic() - began, message[:120])
    return Probe(profile, model, "ok", 200, time.monotonic() - began, "")


async def _probe_all(loaded: LoadedConfig, timeout: float) -> list[Probe]:
    return list(
        await asyncio.gather(
            *(
                _probe(spec, _probe_model(spec, loaded.model_ids), timeout)
                for spec in loaded.profiles
            )
        )
    )


# -- check -----------------------------------------------------------------------------------


async def _check(args: argparse.Namespace) -> int:
    from rich.table import Table

    from failover.catalog import default_catalog

    console = _console()
    loaded = _load(args.config)
    if loaded.chain:  # the client's own checks: options, a profile per chain provider, ...
        await loaded.client(telemetry=False).aclose()
    console.print(
        f"[green]{loaded.source}: valid[/] - {len(loaded.profiles)} profile(s), "
        f"chain of {len(loaded.chain)} model(s)",
        soft_wrap=True,
    )
    profiles = Table(title="profiles")
    for column in ("profile", "provider", "key", "base_url", "models", "priority"):
        profiles.add_column(column)
    for spec in loaded.profiles:
        profile = spec.build()
        key = f"{spec.key_source} ({profile.masked_key})" if profile.api_key else spec.key_source
        profiles.add_row(
            profile.name,
            profile.provider,
            key,
            profile.base_url or "(public)",
            ", ".join(sorted(profile.models)) if profile.models else "any",
            str(profile.priority),
        )
    console.print(profiles)
    if loaded.chain:
        chain = Table(title="chain")
        for column in ("#", "model", "context", "$/Mtok in/out", "profiles"):
            chain.add_column(column)
        built = loaded.build_profiles()
        for position, key in enumerate(loaded.model_ids, start=1):
            entry = default_catalog.resolve(key)
            assert entry is not None  # the loader checked the chain
            serving = [p.name for p in built if p.provider == entry.provider and p.allows(entry.id)]
            prices = (
                f"{entry.cost_input:g} / {entry.cost_output:g}"
                if entry.cost_input is not None and entry.cost_output is not None
                else "unknown"
            )
            chain.add_row(
                str(position),
                key,
                f"{entry.context_window:,}" if entry.context_window else "?",
                prices,
                ", ".join(serving) or "[red]none[/]",
            )
        console.print(chain)
    if not args.live:
        return 0
    probes = await _probe_all(loaded, args.timeout)
    live = Table(title="live: one tiny request per profile")
    for column in ("profile", "model", "result", "HTTP", "latency", "requests left", "tokens left"):
        live.add_column(column)
    live.add_column("detail", overflow="fold")
    for probe in probes:
        good = probe.outcome == "ok"
        live.add_row(
            probe.profile.name,
            probe.model or "-",
            "[green]ok[/]" if good else f"[red]{probe.outcome}[/]",
            str(probe.status or "-"),
            f"{probe.latency * 1000:.0f} ms",
            _count(probe.profile.requests_remaining),
            _count(probe.profile.tokens_remaining),
            probe.message,
        )
    console.print(live)
    failed = [probe for probe in probes if probe.outcome != "ok"]
    if failed:
        console.print(f"[red]{len(failed)} of {len(probes)} profile(s) failed[/]")
    return 1 if failed else 0


def _console() -> Any:
    """A rich console; wide when the output is a file or a pipe, so tables stay whole."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


# -- status ------------------------------------------------------------------------------------


async def _status_manager(args: argparse.Namespace) -> FailoverManager:
    """The manager whose keys ``failover status`` shows, without ``--redis``.

    A config file gives a local view: fresh profiles, whose state nothing has checked
    unless ``--probe`` sends one tiny request through each first.
    """
    from failover import FailoverManager

    loaded = _load(args.config)
    if not args.probe:
        return loaded.manager()
    probes = await _probe_all(loaded, args.timeout)
    return FailoverManager(loaded.config, profiles=[probe.profile for probe in probes])


async def _status(args: argparse.Namespace) -> int:
    from failover import ConfigError

    if args.redis:  # the state the clients share, live from the store
        if args.config or args.probe or args.json:
            raise ConfigError("--redis shows the shared store; --config, --probe, --json are local")
        from failover.status_view import run_status

        return await run_status(args.redis, prefix=args.prefix, watch=args.watch)
    if args.watch:
        raise ConfigError("--watch refreshes the shared state: give --redis URL")
    status = (await _status_manager(args)).status()
    if args.json:
        print(json.dumps(_status_dict(status, probed=args.probe), indent=2))
        return 0
    console = _console()
    if args.probe:
        console.print(_status_table(status))
    else:
        console.print(f"{status.total_profiles} key(s), {NOT_PROBED}", soft_wrap=True)
        console.print(_unprobed_table(status))
    return 0


def _status_dict(status: FailoverStatus, *, probed: bool) -> dict[str, Any]:
    """``status`` as JSON. Unprobed, no key is claimed available: nothing was checked."""
    data = {"probed": probed, **status.to_dict()}
    if not probed:
        data["available_profiles"] = None
        for profile in data["profiles"]:
            if profile["status"] == "available":
                profile["status"] = "not_probed"
    return data


def _unprobed_table(status: FailoverStatus) -> Any:
    """The keys as a rich table, none claimed available: nothing was checked."""
    from rich.table import Table

    table = Table(title="keys")
    for column in ("profile", "provider", "key", "status"):
        table.add_column(column)
    for snapshot in status.profiles:
        state = snapshot.status.value
        shown = "[dim]not probed[/]" if state == "available" else f"[red]{state}[/]"
        table.add_row(snapshot.name, snapshot.provider, snapshot.key, shown)
    return table


def _status_table(status: FailoverStatus) -> Any:
    """The keys' state after a probe, as a rich table."""
    from rich.table import Table

    colours = {"available": "green", "rate_limited": "yellow", "cooling_down": "yellow"}
    table = Table(
        title=f"key status: {status.available_profiles} of {status.total_profiles} available"
    )
    columns = ("profile", "provider", "key", "status", "back in", "failures", "successes")
    for column in (*columns, "requests left", "tokens left"):
        table.add_column(column)
    table.add_column("last error", overflow="fold")
    for snapshot in status.profiles:
        state = snapshot.status.value
        remaining = snapshot.cooldown_remaining
        back_in = (
            "-" if remaining <= 0 else "never" if remaining == float("inf") else f"{remaining:.0f}s"
        )
        table.add_row(
            snapshot.name,
            snapshot.provider,
            snapshot.key,
            f"[{colours.get(state, 'red')}]{state}[/]",
            back_in,
            f"{snapshot.consecutive_failures} in a row / {snapshot.failure_count}",
            str(snapshot.success_count),
            _count(snapshot.requests_remaining),
            _count(snapshot.tokens_remaining),
            (snapshot.last_error or "").partition("\n")[0][:120],
        )
    return table


# -- simulate --------------------------------------------------------------------------------


def _read_script(path: str) -> dict[str, Any]:
    """A simulator script file: TOML, or JSON when it ends in ``.json``."""
    from failover import ConfigError

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the script ({exc.strerror})") from None
    try:
        if file.suffix == ".json":
            document = json.loads(text)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            document = tomllib.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"{file}: cannot parse the script: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{file}: a script is a table (keys, default, script, outage, chaos)")
    return document


SCRIPT_KEYS = ("keys", "default", "script", "outage", "chaos")


def _apply_script(sim: Simulator, document: Mapping[str, Any], source: str) -> None:
    """Script ``sim`` from a script file's tables; every mistake names its table and key.

    ``[[script]]``: ``behavior`` (a kind, or a table of Behavior fields) with ``key``,
    ``model`` or ``provider``; ``[[outage]]``: ``provider``, ``start``, ``end``, ``kind``;
    ``[chaos]``: ``rates`` and ``seed``; ``[default]``: Behavior fields.
    """
    from failover import ConfigError
    from failover.testing import Behavior

    def behavior(value: Any, where: str) -> Behavior:
        try:
            return Behavior(value) if isinstance(value, str) else Behavior(**dict(value))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {where}: {exc}") from None

    def tables(name: str) -> list[dict[str, Any]]:
        items = document.get(name, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ConfigError(f"{source}: {name} must be [[{name}]] tables")
        return items

    for key in document:
        if key not in SCRIPT_KEYS:
            raise ConfigError(f"{source}: unknown key {key!r}; known: {', '.join(SCRIPT_KEYS)}")
    for provider, keys in dict(document.get("keys", {})).items():
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ConfigError(f"{source}: [keys] {provider} must be a list of keys")
        for key in keys:
            sim.add_key(provider, key)
    if "default" in document:
        sim.default = behavior(document["default"], "[default]")
    for number, item in enumerate(tables("script"), start=1):
        where = f"[[script]] #{number}"
        unknown = set(item) - {"behavior", "key", "model", "provider"}
        if unknown or "behavior" not in item:
            raise ConfigError(
                f"{source}: {where}: needs behavior (and key, model or provider)"
                + (f"; unknown key(s): {', '.join(sorted(unknown))}" if unknown else "")
            )
        sim.script(
            behavior(item["behavior"], where),
            key=item.get("key"),
            model=item.get("model"),
            provider=item.get("provider"),
        )
    for number, item in enumerate(tables("outage"), start=1):
        where = f"[[outage]] #{number}"
        try:
            sim.outage(
                item["provider"],
                start=float(item["start"]),
                end=float(item["end"]),
                kind=item.get("kind", "overloaded"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {where}: needs provider, start and end ({exc})") from None
    if "chaos" in document:
        chaos = dict(document["chaos"])
        try:
            sim.chaos(dict(chaos.get("rates", {})), seed=int(chaos.get("seed", 0)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: [chaos]: {exc}") from None


async def _simulate(args: argparse.Namespace) -> int:
    from failover.testing import Simulator

    accepted: dict[str, list[str]] = {}
    for provider, key in args.key:
        accepted.setdefault(provider, []).append(key)
    document = _read_script(args.script) if args.script else None
    async with Simulator(keys=accepted, port=args.port) as sim:
        if document is not None:
            _apply_script(sim, document, args.script)
        print(f"simulator listening on {sim.root_url}", flush=True)
        for provider in ("openai", "anthropic", "gemini", "ollama-native", "groq"):
            print(f"  {provider:14} base_url={sim.base_url(provider)}")
        print(
            f"  script it: POST {sim.root_url}/_sim/script "
            '{"behavior": {"kind": "rate_limit", "retry_after": 5}, "key": "..."}'
        )
        print(f"  recorded calls: GET {sim.root_url}/_sim/calls")
        if args.script:
            print(f"  scripted from {args.script}", flush=True)
        await asyncio.Event().wait()
    return 0


# -- demo ------------------------------------------------------------------------------------


async def _demo(args: argparse.Namespace) -> int:
    if args.workers:
        from failover.demo_workers import run_workers_demo

        return await run_workers_demo(args.workers, args.requests, args.redis)
    from failover.demo import run_demo

    await run_demo(args.requests, args.concurrency, args.seconds, metrics_port=args.metrics_port)
    return 0


# -- the parser ------------------------------------------------------------------------------


def _load(path: str | None) -> LoadedConfig:
    from failover.config_file import load_config

    return load_config(path or DEFAULT_CONFIG)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-failover")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The ``failover`` command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="failover",
        description="Keep LLM calls working when providers fail: try it, check your keys.",
    )
    parser.add_argument("--version", action="version", version=f"failover {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, run: Callable[[argparse.Namespace], Any]) -> Any:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    config_help = f"the config file (default: ./{DEFAULT_CONFIG})"
    chat = command("chat", "ask real providers, with failover", _chat)
    chat.add_argument("prompt", help="what to ask")
    chat.add_argument(
        "--config",
        metavar="FILE",
        help="profiles and settings from this file (default: from the environment: "
        "OPENAI_API_KEY, ..., *_BASE_URL, OLLAMA_HOST)",
    )
    chat.add_argument(
        "--chain", nargs="+", metavar="PROVIDER/MODEL", help="models to try, in order"
    )
    chat.add_argument("--max-tokens", type=_positive_int, metavar="N", help="cap the answer")
    chat.add_argument("--timeout", type=_positive_float, metavar="S", help="seconds per attempt")
    chat.add_argument("--deadline", type=_positive_float, metavar="S", help="seconds in all")
    chat.add_argument("--no-stream", action="store_true", help="print the answer when complete")

    check = command("check", "validate a config file; with --live, try every key", _check)
    check.add_argument("--config", metavar="FILE", help=config_help)
    check.add_argument(
        "--live", action="store_true", help="send one tiny request per profile and show the result"
    )
    check.add_argument(
        "--timeout", type=_positive_float, default=20.0, metavar="S", help="seconds per probe"
    )

    status = command("status", "show every key's state: shared in Redis, or from a file", _status)
    status.add_argument(
        "--redis", metavar="URL", help="the shared state of every key in this Redis store"
    )
    status.add_argument(
        "--prefix", default="failover", help="the store's key prefix (with --redis)"
    )
    status.add_argument("--watch", action="store_true", help="refresh every second (with --redis)")
    status.add_argument("--config", metavar="FILE", help=config_help)
    status.add_argument(
        "--probe", action="store_true", help="check each key with one tiny request (else none is)"
    )
    status.add_argument(
        "--timeout", type=_positive_float, default=20.0, metavar="S", help="seconds per probe"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")

    simulate = command("simulate", "run the local provider simulator", _simulate)
    simulate.add_argument(
        "--port", type=_port, default=8900, help="the port to listen on (0: any free one)"
    )
    simulate.add_argument(
        "--key",
        action="append",
        type=_provider_key,
        default=[],
        metavar="PROVIDER=KEY",
        help="a key the simulator accepts (default: any)",
    )
    simulate.add_argument(
        "--script", metavar="FILE", help="script failures from a TOML (or .json) file"
    )

    demo = command("demo", "run the failover demo on the local simulator", _demo)
    demo.add_argument(
        "--requests", type=_positive_int, default=300, metavar="N", help="requests to send"
    )
    demo.add_argument(
        "--concurrency", type=_positive_int, default=32, metavar="N", help="at most N at once"
    )
    demo.add_argument(
        "--seconds", type=_positive_float, default=12.0, metavar="S", help="spread them over S"
    )
    demo.add_argument(
        "--workers",
        type=_workers,
        default=0,
        metavar="N",
        help="N processes sharing the keys, store off and on (0: the single-process demo)",
    )
    demo.add_argument("--redis", metavar="URL", help="the Redis store for --workers")
    demo.add_argument(
        "--metrics-port",
        type=_port,
        metavar="N",
        help="serve Prometheus metrics on this port while the demo runs",
    )
    return parser


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Warnings (e.g. a key written into the config file) as one plain line."""
    print(f"failover: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``failover`` command."""
    from failover.errors import ConfigError

    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            result: int = asyncio.run(args.run(args))
    except ConfigError as exc:
        print(f"failover {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
