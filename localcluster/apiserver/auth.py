"""Who is calling: the administrator's bearer token and pods' service account tokens.

Service account tokens are JWTs signed with a key of this cluster run (HMAC-SHA256), bound
to their pod like the real projected tokens: they stop working when they expire or when
the pod is gone. Authorisation is not enforced (every authenticated caller may do
everything); the audit log records who called what so that Roles can be checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from localcluster.apiserver import errors

ADMIN_USER = "admin"
AUDIENCE = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class Identity:
    username: str
    groups: tuple[str, ...]


ANONYMOUS = Identity("system:anonymous", ("system:unauthenticated",))
ADMIN = Identity(ADMIN_USER, ("system:masters", "system:authenticated"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """Issues and checks the tokens of one cluster run."""

    def __init__(self, *, pod_exists: Callable[[str, str, str], bool]) -> None:
        self.admin_token = secrets.token_urlsafe(32)
        self._key = secrets.token_bytes(32)
        self._pod_exists = pod_exists

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def service_account_token(
        self,
        *,
        namespace: str,
        service_account: str,
        pod_name: str,
        pod_uid: str,
        expiration_seconds: int = 3600,
    ) -> str:
        now = int(time.time())
        claims = {
            "aud": [AUDIENCE],
            "exp": now + expiration_seconds,
            "iat": now,
            "nbf": now,
            "iss": AUDIENCE,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": pod_name, "uid": pod_uid},
                "serviceaccount": {"name": service_account},
            },
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{header}.{body}.{self._sign(header + '.' + body)}"

    def authenticate(self, authorization: str | None) -> Identity:
        """The caller of a request with this Authorization header; raises 401 if it is bad."""
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise errors.unauthorized()
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return ADMIN
        return self._service_account(token)

    def _service_account(self, token: str) -> Identity:
        parts = token.split(".")
        if len(parts) != 3 or not hmac.compare_digest(
            self._sign(parts[0] + "." + parts[1]), parts[2]
        ):
            raise errors.unauthorized()
        claims = json.loads(_unb64(parts[1]))
        info = claims["kubernetes.io"]
        if claims["exp"] < time.time() or not self._pod_exists(
            info["namespace"], info["pod"]["name"], info["pod"]["uid"]
        ):
            raise errors.unauthorized()
        namespace = info["namespace"]
        return Identity(
            claims["sub"],
            (
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ),
        )
