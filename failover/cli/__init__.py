"""The ``failover`` command: chat, check a config, show key status, simulate, demo.

One module per job: :mod:`~failover.cli.chat`, :mod:`~failover.cli.keys` (``check`` and
``status``), :mod:`~failover.cli.simulate` (``simulate`` and ``demo``); the arguments they
share in :mod:`~failover.cli.options`, what each needs beyond a bare install in
:mod:`~failover.cli.extras`. Only the parser is built at import: each command imports its
own dependencies when it runs, so ``failover --help`` works in a bare install.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from failover import __version__
from failover.cli.chat import run_chat
from failover.cli.environment import (
    CHAT_MODELS,
    ENV_KEYS,
    keys_from_environment,
    profiles_from_environment,
)
from failover.cli.extras import advice, extra_for_module, missing_extras, needed_extras
from failover.cli.keys import run_check, run_status
from failover.cli.options import (
    DEFAULT_CONFIG,
    port,
    positive_float,
    positive_int,
    provider_key,
    workers,
)
from failover.cli.simulate import run_demo_command, run_simulate

__all__ = [
    "CHAT_MODELS",
    "ENV_KEYS",
    "build_parser",
    "keys_from_environment",
    "main",
    "profiles_from_environment",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``failover`` command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="failover",
        description="Keep LLM calls working when providers fail: try it, check your keys.",
    )
    parser.add_argument("--version", action="version", version=f"failover {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, run: Callable[[argparse.Namespace], Any]) -> Any:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    config_help = f"the config file (default: ./{DEFAULT_CONFIG})"
    chat = command("chat", "ask real providers, with failover", run_chat)
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
    chat.add_argument("--max-tokens", type=positive_int, metavar="N", help="cap the answer")
    chat.add_argument("--timeout", type=positive_float, metavar="S", help="seconds per attempt")
    chat.add_argument("--deadline", type=positive_float, metavar="S", help="seconds in all")
    chat.add_argument("--no-stream", action="store_true", help="print the answer when complete")

    check = command("check", "validate a config file; with --live, try every key", run_check)
    check.add_argument("--config", metavar="FILE", help=config_help)
    check.add_argument(
        "--live", action="store_true", help="send one tiny request per profile and show the result"
    )
    check.add_argument(
        "--timeout", type=positive_float, default=20.0, metavar="S", help="seconds per probe"
    )

    status = command(
        "status",
        "show every key's state, budgets, token windows and caps: shared in Redis, or from a file",
        run_status,
    )
    status.add_argument(
        "--redis", metavar="URL", help="the shared state of every key in this Redis store"
    )
    status.add_argument(
        "--prefix", default="failover", help="the store's key prefix (with --redis)"
    )
    status.add_argument("--watch", action="store_true", help="refresh every second (with --redis)")
    status.add_argument(
        "--config",
        metavar="FILE",
        help=config_help + "; with --redis, its budgets and limits read from the store",
    )
    status.add_argument(
        "--probe", action="store_true", help="check each key with one tiny request (else none is)"
    )
    status.add_argument(
        "--timeout", type=positive_float, default=20.0, metavar="S", help="seconds per probe"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")

    simulate = command("simulate", "run the local provider simulator", run_simulate)
    simulate.add_argument(
        "--port", type=port, default=8900, help="the port to listen on (0: any free one)"
    )
    simulate.add_argument(
        "--key",
        action="append",
        type=provider_key,
        default=[],
        metavar="PROVIDER=KEY",
        help="a key the simulator accepts (default: any)",
    )
    simulate.add_argument(
        "--script", metavar="FILE", help="script failures from a TOML (or .json) file"
    )

    demo = command("demo", "run the failover demo on the local simulator", run_demo_command)
    demo.add_argument(
        "--requests", type=positive_int, default=300, metavar="N", help="requests to send"
    )
    demo.add_argument(
        "--concurrency", type=positive_int, default=32, metavar="N", help="at most N at once"
    )
    demo.add_argument(
        "--seconds", type=positive_float, default=12.0, metavar="S", help="spread them over S"
    )
    demo.add_argument(
        "--workers",
        type=workers,
        default=0,
        metavar="N",
        help="N processes sharing the keys, store off and on (0: the single-process demo)",
    )
    demo.add_argument("--redis", metavar="URL", help="the Redis store for --workers")
    demo.add_argument(
        "--metrics-port",
        type=port,
        metavar="N",
        help="serve Prometheus metrics on this port while the demo runs",
    )
    return parser


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Warnings (e.g. a key written into the config file) as one plain line."""
    print(f"failover: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``failover`` command; return its exit status.

    0 on success, 1 when the command ran and something failed (a request, a probe), 2 for a
    usage or configuration mistake, or an extra the command needs that is not installed
    (named with its install line), 130 when interrupted.
    """
    from failover.errors import ConfigError

    args = build_parser().parse_args(argv)
    missing = missing_extras(needed_extras(args))
    if missing:
        print(advice(args.command, missing), file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            result: int = asyncio.run(args.run(args))
    except ConfigError as exc:
        print(f"failover {args.command}: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # one the checks above did not foresee
        extra = extra_for_module(exc.name)
        if extra is None:
            raise
        print(advice(args.command, [extra]), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
