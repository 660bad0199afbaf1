"""Identity-Aware Proxy in front of the console: the verified user e-mail for the record.

IAP adds ``X-Goog-IAP-JWT-Assertion`` (an ES256 JWT, issuer https://cloud.google.com/iap) and
``X-Goog-Authenticated-User-Email``. The header alone is only as trustworthy as the network path,
so the e-mail is taken from the JWT once google-auth has verified its signature (against IAP's
public keys, cached like the OIDC certificates), its audience and its expiry. When
EXEC_CONSOLE_IAP_AUDIENCE is set, a request without such a JWT did not come through IAP and is
refused, whatever key it may know.
"""

from __future__ import annotations

import google.auth.exceptions
import google.auth.transport
from google.oauth2 import id_token

from backend.services.execution_service.auth import CachingRequest, Unauthorized

IAP_ISSUER = "https://cloud.google.com/iap"
ASSERTION_HEADER = "X-Goog-IAP-JWT-Assertion"


class IapVerifier:
    def __init__(
        self, audience: str, certs_url: str, *, request: google.auth.transport.Request | None = None
    ) -> None:
        self._audience = audience
        self._certs_url = certs_url
        self._request = request or CachingRequest()

    def email(self, assertion: str | None) -> str:
        """The verified user's e-mail; raises Unauthorized (never echoing the token)."""
        if not assertion:
            raise Unauthorized(f"missing {ASSERTION_HEADER}: open the console through IAP")
        try:
            claims = id_token.verify_token(
                assertion, self._request, audience=self._audience, certs_url=self._certs_url
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise Unauthorized(f"invalid IAP assertion: {type(exc).__name__}") from None
        if claims.get("iss") != IAP_ISSUER:
            raise Unauthorized("the assertion was not issued by IAP")
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise Unauthorized("the IAP assertion names no user")
        return email
