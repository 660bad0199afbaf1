"""Verifies Google-signed OIDC tokens: the one Pub/Sub push and Cloud Scheduler send, and the
one callers of /execute send.

Only when an audience is configured (PUBSUB_PUSH_AUDIENCE, EXECUTE_AUDIENCE). The audience is
always passed (without it the library would not check it), the issuer must be Google, and the
``email`` claim must be one of the allowed service accounts, and verified. Google's signing certificates are cached for as long as
their Cache-Control allows, so a burst of pushes costs no certificate fetch.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import google.auth.exceptions
import google.auth.transport
import google.auth.transport.requests
from google.oauth2 import id_token

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
_MAX_AGE = re.compile(r"max-age=(\d+)")


class Unauthorized(Exception):
    """The request does not carry a token we accept; the message never includes the token."""


class CachingRequest(google.auth.transport.Request):
    """A google-auth transport that serves repeated GETs of one URL from memory until expiry."""

    def __init__(
        self,
        inner: google.auth.transport.Request | None = None,
        *,
        default_ttl_s: float = 3600,
        timeout_s: float = 5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner or google.auth.transport.requests.Request()
        self._default_ttl = default_ttl_s
        self._timeout = timeout_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        if method != "GET":
            return self._inner(url, method, body, headers, timeout or self._timeout, **kwargs)
        with self._lock:
            hit = self._cache.get(url)
            if hit is not None and hit[0] > self._monotonic():
                return hit[1]
        response = self._inner(url, method, body, headers, timeout or self._timeout, **kwargs)
        if response.status == 200:
            match = _MAX_AGE.search(str(response.headers.get("cache-control", "")))
            ttl = float(match.group(1)) if match else self._default_ttl
            with self._lock:
                self._cache[url] = (self._monotonic() + ttl, response)
        return response


class OidcVerifier:
    """``allowed_emails`` None accepts any Google-signed token for the audience (the push
    endpoints without PUBSUB_PUSH_SERVICE_ACCOUNT); otherwise the token's verified email must
    be one of them. Share one ``request`` between verifiers to share the certificate cache."""

    def __init__(
        self,
        audience: str,
        allowed_emails: Collection[str] | None,
        *,
        certs_url: str = GOOGLE_CERTS_URL,
        request: google.auth.transport.Request | None = None,
    ) -> None:
        self._audience = audience
        self._allowed = frozenset(allowed_emails) if allowed_emails is not None else None
        self._certs_url = certs_url
        self._request = request or CachingRequest()

    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("missing bearer token")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            claims = id_token.verify_token(
                token, self._request, audience=self._audience, certs_url=self._certs_url
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise Unauthorized(f"invalid token: {type(exc).__name__}") from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthorized("token not issued by Google")
        if self._allowed is not None:
            if claims.get("email") not in self._allowed:
                raise Unauthorized("token is for another service account")
            if claims.get("email_verified") is not True:
                raise Unauthorized("token email is not verified")
        return claims
