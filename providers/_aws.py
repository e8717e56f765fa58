"""AWS for the Bedrock adapter: credentials from the usual chain, SigV4 signing, and the
``application/vnd.amazon.eventstream`` frames of ConverseStream, all through botocore.

botocore (the ``bedrock`` extra) is imported on first use, so ``import failover`` stays
fast and the library works without it for every other provider.
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from failover._secrets import remember_secret
from failover.errors import AuthenticationError, ConfigError
from failover.providers._refresh import ProfileLocks, in_thread, refresh_failure

if TYPE_CHECKING:
    from failover.profiles import AuthProfile

__all__ = [
    "AwsCredentials",
    "BedrockCredentials",
    "EventStreamReader",
    "region_of_host",
    "require_botocore",
    "sign_v4",
]

SERVICE = "bedrock"
"""The SigV4 service name of the Bedrock runtime."""

_HOST = re.compile(
    r"^(?:[a-z0-9-]+\.)?bedrock-runtime(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d+)"
    r"(?:\.vpce)?\.amazonaws\.com(?:\.cn)?$"
)


def require_botocore() -> Any:
    """Import botocore, or say which extra brings it.

    Raises:
        ConfigError: botocore is not installed.
    """
    try:
        import botocore.auth  # type: ignore[import-untyped]
        import botocore.awsrequest  # type: ignore[import-untyped]
        import botocore.credentials  # type: ignore[import-untyped]
        import botocore.eventstream  # type: ignore[import-untyped]
        import botocore.session  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "the bedrock provider needs botocore: pip install 'llm-failover[bedrock]'"
        ) from None
    _quiet_signing_logs()
    return botocore


class _NoSignatures(logging.Filter):
    """Drops botocore's DEBUG records of canonical requests, strings to sign and signatures
    (a signature replays its request for minutes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not message.startswith(("CanonicalRequest", "StringToSign", "Signature"))


_FILTER = _NoSignatures()


def _quiet_signing_logs() -> None:
    signing = logging.getLogger("botocore.auth")
    if _FILTER not in signing.filters:
        signing.addFilter(_FILTER)


def region_of_host(host: str) -> str | None:
    """The AWS region a Bedrock runtime host serves (``bedrock-runtime.eu-west-1...``), or
    ``None`` for a host that is not AWS's (a proxy, the simulator)."""
    found = _HOST.match(host.lower())
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """One set of AWS credentials, frozen for one request. ``repr`` shows the key id only."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        return f"AwsCredentials(access_key={self.access_key!r}, secret_key='***')"


def sign_v4(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: AwsCredentials,
    region: str,
    *,
    service: str = SERVICE,
    now: datetime | None = None,
) -> dict[str, str]:
    """Sign a request with AWS Signature Version 4 through botocore's ``SigV4Auth``.

    Returns the headers to send: ``headers`` plus ``X-Amz-Date``, ``X-Amz-Security-Token``
    (with a session token) and ``Authorization``. The steps are ``SigV4Auth.add_auth``'s,
    made through its public methods so that no signature reaches botocore's debug log.
    """
    botocore = require_botocore()
    request = botocore.awsrequest.AWSRequest(
        method=method, url=url, data=body, headers=dict(headers)
    )
    frozen = botocore.credentials.Credentials(
        credentials.access_key, credentials.secret_key, credentials.token
    )
    auth = botocore.auth.SigV4Auth(frozen, service, region)
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    request.context["timestamp"] = stamp
    request.headers["X-Amz-Date"] = stamp
    if credentials.token:
        request.headers["X-Amz-Security-Token"] = credentials.token
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    signed = auth.signed_headers(auth.headers_to_sign(request))
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={auth.scope(request)}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return dict(request.headers.items())


def _env_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def default_region(region: str | None) -> str:
    """``region``, else ``AWS_REGION``/``AWS_DEFAULT_REGION``.

    Raises:
        ConfigError: No region is given anywhere.
    """
    found = region or _env_region()
    if not found:
        raise ConfigError(
            "a bedrock profile needs a region: AuthProfile(..., region='us-east-1'), "
            "or AWS_REGION in the environment"
        )
    if not re.fullmatch(r"[a-z]{2}(?:-[a-z]+)+-\d+", found):
        raise ConfigError(f"not an AWS region: {found!r}")
    return found


class BedrockCredentials:
    """Finds each Bedrock profile's credentials and keeps them fresh.

    In order: the profile's ``api_key`` (``ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]`` for
    SigV4, anything else a Bedrock API key sent as a bearer token), the profile's
    ``credentials`` (a botocore ``Credentials`` or ``Session``, or the name of a profile
    in the shared AWS config), ``AWS_BEARER_TOKEN_BEDROCK``, then botocore's own chain
    (environment, shared config and credentials files, SSO, container and instance
    roles). Resolution and refreshes that may do I/O run in a worker thread; refreshable
    credentials are refreshed before they expire.
    """

    def __init__(self) -> None:
        self._sources: weakref.WeakKeyDictionary[AuthProfile, Any] = weakref.WeakKeyDictionary()
        self._locks = ProfileLocks()

    async def key_for(self, profile: AuthProfile, base_url: str) -> str:
        """The credential string :meth:`BedrockAdapter.build_request` takes for ``profile``:
        ``sigv4 REGION ACCESS_KEY SECRET [TOKEN]`` or ``bearer TOKEN``.

        The chain is searched once per profile and refreshes run in a worker thread under
        the profile's ``threading.Lock`` (whichever event loop asks); a cancelled caller
        returns at once and the refreshed credentials are kept for the next one.

        Raises:
            AuthenticationError: No credentials are found, or they were refused.
            ProviderConnectionError: The credentials endpoint (STS, SSO, the instance
                metadata service) could not be reached (the profile is tried again later).
        """
        given = profile.api_key.get_secret_value()
        region = _region_for(profile, base_url)
        if given:
            if _is_key_pair(given):
                return f"sigv4 {region} " + " ".join(given.split(":"))
            return f"bearer {given}"
        source = self._sources.get(profile)
        if source is None or _refresh_needed(source):
            frozen = await in_thread(self._fresh, profile)
        elif isinstance(source, str):
            frozen = source
        else:
            frozen = source.get_frozen_credentials()
        if isinstance(frozen, str):
            remember_secret(frozen)  # known: marks it recently used
            return f"bearer {frozen}"
        if not frozen.access_key or not frozen.secret_key:
            raise AuthenticationError(f"AWS credentials of profile {profile.name!r} are empty")
        parts = [frozen.access_key, frozen.secret_key] + ([frozen.token] if frozen.token else [])
        for secret in parts[1:]:
            remember_secret(secret)  # known (remembered in the thread): marks recently used
        return f"sigv4 {region} " + " ".join(parts)

    def _fresh(self, profile: AuthProfile) -> Any:
        """(In a worker thread.) Search the chain once, refresh when needed, and return
        frozen credentials (or a bearer token)."""
        with self._locks(profile):  # one search or refresh per profile; the others reuse it
            source = self._sources.get(profile)
            if source is None:
                source = self._sources[profile] = _resolve(profile)
            if isinstance(source, str):
                return source
            try:
                frozen = source.get_frozen_credentials()
            except Exception as exc:  # botocore's refresh errors are many
                what = f"AWS credentials of profile {profile.name!r} could not be refreshed"
                raise refresh_failure(exc, what) from None
        if frozen.secret_key:
            remember_secret(frozen.secret_key)  # here, off the event loop: new ones are work
        if frozen.token:
            remember_secret(frozen.token)
        return frozen


def _is_key_pair(value: str) -> bool:
    parts = value.split(":")
    return (
        len(parts) in (2, 3) and re.fullmatch(r"(?:AKIA|ASIA|AKID)[A-Z0-9]+", parts[0]) is not None
    )


def _region_for(profile: AuthProfile, base_url: str) -> str:
    from urllib.parse import urlsplit

    host_region = region_of_host(urlsplit(base_url).hostname or "")
    region = profile.region or host_region or _env_region() or "us-east-1"
    if host_region is not None and host_region != region:
        raise ConfigError(
            f"profile {profile.name!r} is for region {region} but its base_url is "
            f"{host_region}'s host: a signed request goes only to its own region"
        )
    return region


def _refresh_needed(source: Any) -> bool:
    needed = getattr(source, "refresh_needed", None)
    return bool(needed()) if callable(needed) else False


def _resolve(profile: AuthProfile) -> Any:
    """(In a worker thread.) The profile's credentials object, or a bearer token."""
    botocore = require_botocore()
    given = profile.credentials
    if isinstance(given, botocore.credentials.Credentials):
        return given
    if given is None and (token := os.environ.get("AWS_BEARER_TOKEN_BEDROCK")):
        remember_secret(token)
        return token
    if isinstance(given, str):
        session = botocore.session.Session(profile=given)
    elif given is None:
        session = botocore.session.Session()
    elif hasattr(given, "get_credentials"):
        session = given
    else:
        raise ConfigError(
            f"profile {profile.name!r}: credentials for bedrock must be a botocore Credentials "
            f"or Session, or an AWS profile name; got {type(given).__name__}"
        )
    try:
        found = session.get_credentials()
    except Exception as exc:
        what = f"AWS credentials of profile {profile.name!r} could not be loaded"
        raise refresh_failure(exc, what) from None
    if found is None:
        raise AuthenticationError(
            f"no AWS credentials found for profile {profile.name!r} (environment, shared "
            "config, SSO, instance role); set them or give api_key"
        )
    return found


class EventStreamReader:
    """Splits ``application/vnd.amazon.eventstream`` bytes into ``(message type, event or
    exception type, payload)`` with botocore's ``EventStreamBuffer`` (CRCs checked)."""

    def __init__(self) -> None:
        self._buffer = require_botocore().eventstream.EventStreamBuffer()

    def feed(self, data: bytes) -> Iterator[tuple[str, str, bytes]]:
        """Take bytes; yield every whole frame they complete."""
        self._buffer.add_data(data)
        for message in self._buffer:
            headers = message.headers
            kind = str(headers.get(":message-type", "event"))
            name = headers.get(":event-type") or headers.get(":exception-type")
            if kind == "error":
                name = headers.get(":error-code")
            yield kind, str(name or ""), bytes(message.payload)
