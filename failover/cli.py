"""The ``failover`` command: ``demo``, ``simulate`` and ``chat``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

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


def keys_from_environment(env: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
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


async def _chat(prompt: str, chain: list[str] | None) -> int:
    from failover import AllAttemptsFailed, AuthProfile, ResilientClient

    found = keys_from_environment()
    if not found:
        names = ", ".join(ENV_KEYS.values())
        print(
            f"failover chat: no API keys found. Set one of {names} "
            "(more keys as OPENAI_API_KEY_2, ...).",
            file=sys.stderr,
        )
        return 2
    print(
        "keys found: " + ", ".join(f"{name.upper()} ({provider})" for name, provider, _ in found),
        file=sys.stderr,
    )
    providers_found = {provider for _, provider, _ in found}
    chain = chain or [CHAT_MODELS[p] for p in CHAT_MODELS if p in providers_found]
    profiles = [AuthProfile(name, provider, key) for name, provider, key in found]
    async with ResilientClient(chain, profiles, deadline=120) as client:
        try:
            stream = client.stream([{"role": "user", "content": prompt}])
            async for chunk in stream:
                print(chunk.text, end="", flush=True)
        except AllAttemptsFailed as exc:
            print(f"\nfailover chat: {exc}", file=sys.stderr)
            return 1
    print(
        f"\n[{stream.model} via {stream.profile}, {len(stream.attempts)} attempt(s)]",
        file=sys.stderr,
    )
    return 0


async def _simulate(port: int, keys: list[str]) -> int:
    from failover.testing import Simulator

    accepted: dict[str, list[str]] = {}
    for item in keys:
        provider, _, key = item.partition("=")
        accepted.setdefault(provider, []).append(key)
    async with Simulator(keys=accepted, port=port) as sim:
        print(f"simulator listening on {sim.root_url}")
        for provider in ("openai", "anthropic", "gemini", "ollama-native", "groq"):
            print(f"  {provider:14} base_url={sim.base_url(provider)}")
        print(
            f"  script it: POST {sim.root_url}/_sim/script "
            '{"behavior": {"kind": "rate_limit", "retry_after": 5}, "key": "..."}'
        )
        await asyncio.Event().wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``failover`` command."""
    parser = argparse.ArgumentParser(prog="failover", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the failover demo on the local simulator")
    demo.add_argument("--requests", type=int, default=300)
    demo.add_argument("--concurrency", type=int, default=32)
    demo.add_argument("--seconds", type=float, default=12.0)
    demo.add_argument("--workers", type=int, default=0, help="N processes, store off and on")
    demo.add_argument("--redis", metavar="URL", help="Redis for --workers")
    status = commands.add_parser("status", help="the shared state of every key in Redis")
    status.add_argument("--redis", metavar="URL", required=True)
    status.add_argument("--prefix", default="failover")
    status.add_argument("--watch", action="store_true", help="refresh every second")
    simulate = commands.add_parser("simulate", help="run the provider simulator")
    simulate.add_argument("--port", type=int, default=8900)
    simulate.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PROVIDER=KEY",
        help="a key the simulator accepts (default: any)",
    )
    chat = commands.add_parser("chat", help="ask real providers, keys from the environment")
    chat.add_argument("prompt")
    chat.add_argument("--chain", nargs="+", metavar="PROVIDER/MODEL")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo" and args.workers:
            from failover.demo_workers import run_workers_demo

            return asyncio.run(run_workers_demo(args.workers, args.requests, args.redis))
        if args.command == "status":
            from failover.status_view import run_status

            return asyncio.run(run_status(args.redis, prefix=args.prefix, watch=args.watch))
        if args.command == "demo":
            from failover.demo import run_demo

            asyncio.run(run_demo(args.requests, args.concurrency, args.seconds))
            return 0
        if args.command == "simulate":
            return asyncio.run(_simulate(args.port, args.key))
        return asyncio.run(_chat(args.prompt, args.chain))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
