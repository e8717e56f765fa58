"""``failover chat``: ask real providers, with failover, and say why it took N attempts."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from failover.cli.environment import ENV_KEYS, profiles_from_environment
from failover.cli.options import load

__all__ = ["run_chat"]


async def run_chat(args: argparse.Namespace) -> int:
    """Send the prompt (streamed unless ``--no-stream``); the answer to stdout, the rest to stderr.

    After the answer, stderr names the model and key that served it and, when it took more
    than one attempt, what each attempt met (``rate_limit 429 -> rotated; ...``).
    """
    from failover import ConfigError, FailoverError, ResilientClient

    options: dict[str, Any] = {
        name: value
        for name, value in (("timeout", args.timeout), ("deadline", args.deadline))
        if value is not None
    }
    if args.config:
        loaded = load(args.config)
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
