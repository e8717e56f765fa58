"""The same model on three clouds: Claude on Anthropic's API, then Bedrock, then Vertex AI.

One chain step names the model once and the clouds that host it; each cloud's own id comes
from the catalog (``us.anthropic.claude-sonnet-4-5-20250929-v1:0`` on Bedrock,
``claude-sonnet-4-5@20250929`` on Vertex). Runs against the local simulator, which checks
Bedrock's SigV4 signatures and Vertex's bearer tokens, so it needs no cloud account:
Anthropic is overloaded, Bedrock throttles, and Vertex AI answers, with a tool call whose
result goes back to whichever cloud serves next.

    python examples/same_model_three_clouds.py

With real accounts, the profiles are (credentials from each cloud's usual chain)::

    AuthProfile("claude", "anthropic", os.environ["ANTHROPIC_API_KEY"])
    AuthProfile("aws", "bedrock", "", region="us-east-1")            # AWS env, SSO, roles
    AuthProfile("gcp", "vertex_anthropic", "", project="my-project", region="us-east5")
"""

from __future__ import annotations

import asyncio

from failover import AuthProfile, FailoverEvent, ResilientClient

try:
    from failover.testing import Behavior, Simulator
    from failover.testing.cloud_sim import SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY
except ImportError:
    raise SystemExit(
        "This example runs on the local simulator: pip install 'llm-failover[sim,bedrock]'"
    ) from None

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def main() -> None:
    async with Simulator() as sim:
        sim.script(Behavior("overloaded"), provider="anthropic")
        sim.script(Behavior("rate_limit", retry_after=30), provider="bedrock")
        sim.script(
            Behavior(tool_calls=[("get_weather", {"city": "Paris"})]), provider="vertex_anthropic"
        )
        profiles = [
            AuthProfile(
                "claude", "anthropic", "sk-ant-key-0000000001", base_url=sim.base_url("anthropic")
            ),
            AuthProfile(  # an access key pair; leave "" to use the AWS credential chain
                "aws",
                "bedrock",
                f"{SIM_ACCESS_KEY_ID}:{SIM_SECRET_ACCESS_KEY}",
                base_url=sim.base_url("bedrock"),
                region="us-east-1",
            ),
            AuthProfile(  # an access token; leave "" to use application default credentials
                "gcp",
                "vertex_anthropic",
                "ya29.simulator-access-token",
                base_url=sim.base_url("vertex_anthropic"),
            ),
        ]
        chain = [
            {"model": "claude-sonnet-4-5", "on": ["anthropic", "bedrock", "vertex_anthropic"]}
        ]
        async with ResilientClient(chain, profiles, deadline=30) as client:
            print("one step, three clouds:")
            for model in client.chain.steps[0]:
                print(f"  {model.key}  (${model.cost_input}/M input tokens)")

            @client.on_failover
            async def announce(event: FailoverEvent) -> None:
                print(f"  failover: {event.from_model} -> {event.to_model} ({event.reason})")

            messages = [{"role": "user", "content": "What's the weather in Paris?"}]
            first = await client.complete(messages, max_tokens=200, tools=[WEATHER_TOOL])
            call = first.tool_calls[0]
            print(f"tool call from {first.model}: {call.name}({call.arguments})")

            # Anthropic is back; the conversation continues there, tool result and all.
            sim.script(None, provider="anthropic")
            messages += [
                first.message,
                {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 21}'},
            ]
            second = await client.complete(messages, max_tokens=200, tools=[WEATHER_TOOL])
            print(f"answer from {second.model}: {second.text}")


if __name__ == "__main__":
    asyncio.run(main())
