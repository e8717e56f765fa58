"""Google Cloud access tokens for the Vertex AI adapters, through google-auth.

google-auth (the ``vertex`` extra) is imported on first use. Its refresh is synchronous
I/O; it runs in a worker thread (see :mod:`failover.providers._refresh`), over a small
``google.auth.transport.Request`` made of httpx (a core dependency), so no other HTTP
library is needed.
"""

from __future__ import annotations

import datetime
import weakref
from typing import TYPE_CHECKING, Any

from failover._secrets import remember_secret
from failover.errors import AuthenticationError, ConfigError
from failover.providers._refresh import ProfileLocks, in_thread, refresh_failure

if TYPE_CHECKING:
    from failover.profiles import AuthProfile

__all__ = ["REFRESH_MARGIN", "SCOPES", "GoogleTokens", "require_google_auth"]

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
REFRESH_MARGIN = datetime.timedelta(minutes=5)
"""A token that expires sooner than this is refreshed before it is used."""


def require_google_auth() -> Any:
    """Import google-auth, or say which extra brings it.

    Raises:
        ConfigError: google-auth is not installed.
    """
    try:
        import google.auth
        import google.auth.transport
        import google.oauth2.service_account
    except ImportError:
        raise ConfigError(
            "the vertex_* providers need google-auth: pip install 'llm-failover[vertex]'"
        ) from None
    return google


def _http_request() -> Any:
    """A ``google.auth.transport.Request`` over a sync httpx client (refreshes only)."""
    google = require_google_auth()
    import httpx

    transport: Any = google.auth.transport

    class _Response(transport.Response):  # type: ignore[misc]
        def __init__(self, response: httpx.Response) -> None:
            self._response = response

        @property
        def status(self) -> int:
            return self._response.status_code

        @property
        def headers(self) -> Any:
            return dict(self._response.headers)

        @property
        def data(self) -> bytes:
            return self._response.content

    class _Request(transport.Request):  # type: ignore[misc]
        def __call__(
            self,
            url: str,
            method: str = "GET",
            body: Any = None,
            headers: Any = None,
            timeout: float | None = None,
            **kwargs: Any,
        ) -> Any:
            try:
                with httpx.Client(timeout=timeout or 30.0) as client:
                    reply = client.request(method, url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise google.auth.exceptions.TransportError(type(exc).__name__) from None
            return _Response(reply)

    return _Request()


def _expiring(credentials: Any) -> bool:
    """Whether ``credentials`` has no token, or one that expires within the margin."""
    if not getattr(credentials, "token", None):
        return True
    expiry = getattr(credentials, "expiry", None)
    if expiry is None:
        return not getattr(credentials, "valid", True)
    if expiry.tzinfo is not None:  # google-auth keeps naive UTC times
        expiry = expiry.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return bool(expiry - now < REFRESH_MARGIN)


class GoogleTokens:
    """Finds each Vertex profile's access token and refreshes it before it expires.

    In order: the profile's ``api_key`` (an access token, used as given), its
    ``credentials`` (a google-auth ``Credentials``, or the path of a service-account
    file), then application default credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
    gcloud's, the metadata server).
    """

    def __init__(self) -> None:
        self._credentials: weakref.WeakKeyDictionary[AuthProfile, Any] = weakref.WeakKeyDictionary()
        self._locks = ProfileLocks()

    async def token_for(self, profile: AuthProfile) -> str:
        """``profile``'s access token, refreshed first when it expires within
        :data:`REFRESH_MARGIN`.

        The lookup and the refresh run in a worker thread under the profile's
        ``threading.Lock`` (one refresh at a time, whichever event loop asks); a cancelled
        caller returns at once and the refresh's token is kept for the next one.

        Raises:
            AuthenticationError: No credentials are found, or they were refused.
            ProviderConnectionError: The token endpoint or metadata server could not be
                reached (the profile is tried again later).
        """
        given = profile.api_key.get_secret_value()
        if given:
            return given
        credentials = self._credentials.get(profile)
        if credentials is not None and not _expiring(credentials):
            token = credentials.token
            remember_secret(token)  # known: marks it recently used
            return str(token)
        return await in_thread(self._fresh_token, profile)

    def _fresh_token(self, profile: AuthProfile) -> str:
        """(In a worker thread.) Load the profile's credentials once, refresh them when
        they expire soon, and return the token."""
        with self._locks(profile):  # one refresh per profile; the others wait, then reuse it
            credentials: Any = self._credentials.get(profile)
            if credentials is None:
                credentials = self._credentials[profile] = _load(profile)
            if _expiring(credentials):
                try:
                    credentials.refresh(_http_request())
                except Exception as exc:  # google-auth's RefreshError, TransportError, ...
                    raise refresh_failure(
                        exc,
                        f"Google credentials of profile {profile.name!r} could not be refreshed",
                    ) from None
            token = credentials.token
        if not isinstance(token, str) or not token:
            raise AuthenticationError(
                f"Google credentials of profile {profile.name!r} gave no token"
            )
        remember_secret(token)  # here, off the event loop: a new token's pieces are work
        return token


def _load(profile: AuthProfile) -> Any:
    """(In a worker thread.) The profile's google-auth credentials."""
    google = require_google_auth()
    given = profile.credentials
    if given is not None and hasattr(given, "refresh"):
        return given
    try:
        if isinstance(given, str):
            return google.oauth2.service_account.Credentials.from_service_account_file(
                given, scopes=SCOPES
            )
        if given is not None:
            raise ConfigError(
                f"profile {profile.name!r}: credentials for Vertex AI must be google-auth "
                f"Credentials or a service-account file's path; got {type(given).__name__}"
            )
        credentials, _ = google.auth.default(scopes=SCOPES)
    except ConfigError:
        raise
    except Exception as exc:  # DefaultCredentialsError, a missing or broken file, ...
        failure = refresh_failure(exc, f"no Google credentials for profile {profile.name!r}")
        if isinstance(failure, AuthenticationError):
            failure = AuthenticationError(
                f"no Google credentials for profile {profile.name!r} ({type(exc).__name__}); "
                "set GOOGLE_APPLICATION_CREDENTIALS, run gcloud auth application-default "
                "login, or give credentials="
            )
        raise failure from None
    return credentials
