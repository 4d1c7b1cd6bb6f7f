"""A fake OAuth 2.0 / OIDC provider on loopback, for the runtime and end-to-end tests.

One HTTP server (a thread; stdlib `http.server`) speaks the endpoints MadBase's `github` and
`google` providers use when their base URL points here:

| path | as |
|---|---|
| GET /login/oauth/authorize, GET /o/oauth2/v2/auth | consent: 302 to `redirect_uri?code=&state=`; `login_hint` picks the user (`deny`: `?error=access_denied`) |
| POST /login/oauth/access_token | GitHub's token endpoint (`access_token`) |
| POST /token | Google's token endpoint (`access_token`, `refresh_token`, a signed `id_token`) |
| GET /api/v3/user, /api/v3/user/emails | GitHub Enterprise's user API |
| GET /userinfo/v2/me | Google's legacy user info |
| GET /.well-known/openid-configuration, /jwks | OIDC discovery and keys (RS256 and ES256 test keys) |
| GET /huge | 2 MiB of blanks (answers too large to read) |

`id_token(...)` signs tokens for the id_token grant with the same keys. Every request is
recorded in `requests` (path, method, form) so tests can check what MadBase sent.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import attrs
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret"


@attrs.define
class Profile:
    id: int
    login: str
    name: str
    email: str
    verified: bool = True
    primary: bool = True


PROFILES = {
    "alice": Profile(id=1001, login="alice", name="Alice Liddell", email="alice@example.com"),
    "bob": Profile(id=1002, login="bob", name="Bob", email="bob@example.com", verified=False),
    "carol": Profile(id=1003, login="carol", name="Carol", email="carol@example.com"),
}


@attrs.define
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    authorization: str | None


class FakeProvider:
    """The provider's state: issued codes and tokens, keys, recorded requests."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.codes: dict[str, tuple[Profile, str]] = {}
        self.tokens: dict[str, Profile] = {}
        self.requests: list[Recorded] = []
        self.url = ""
        self._counter = 0
        self._lock = threading.Lock()

    # --- keys and tokens -------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        rsa_jwk.update(kid="rsa-1", use="sig", alg="RS256")
        ec_jwk.update(kid="ec-1", use="sig", alg="ES256")
        return {"keys": [rsa_jwk, ec_jwk]}

    def id_token(
        self,
        profile: Profile | None = None,
        *,
        aud: str | list[str] = CLIENT_ID,
        iss: str | None = None,
        nonce: str | None = None,
        alg: str = "RS256",
        expires_in: int = 600,
        now: float | None = None,
        access_token: str | None = None,
        **extra: Any,
    ) -> str:
        """A signed OIDC id_token for `profile` (alice by default); `nonce` is the RAW nonce."""
        profile = profile or PROFILES["alice"]
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": iss if iss is not None else self.url,
            "sub": f"g-{profile.id}",
            "aud": aud,
            "iat": issued,
            "exp": issued + expires_in,
            "email": profile.email,
            "email_verified": profile.verified,
            "name": profile.name,
            "picture": f"https://pics.test/{profile.login}.png",
        }
        if nonce is not None:
            claims["nonce"] = hashlib.sha256(nonce.encode()).hexdigest()
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode()).digest()
            claims["at_hash"] = jwt.utils.base64url_encode(digest[:16]).decode()
        claims.update(extra)
        key = self.rsa if alg.startswith("RS") else self.ec
        kid = "rsa-1" if alg.startswith("RS") else "ec-1"
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})

    def _next(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}{self._counter:06d}"

    # --- the endpoints -----------------------------------------------------------------------

    def handle(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(request)
        path = request.path
        if request.method == "GET" and path in ("/login/oauth/authorize", "/o/oauth2/v2/auth"):
            return self._authorize(request)
        if request.method == "POST" and path in ("/login/oauth/access_token", "/token"):
            return self._token(request, google=path == "/token")
        if request.method == "GET" and path in ("/api/v3/user", "/api/v3/user/emails"):
            profile = self._bearer(request)
            if profile is None:
                return _json(401, {"message": "Bad credentials"})
            if path.endswith("/emails"):
                emails = [
                    {
                        "email": f"{profile.login}@old.example.com",
                        "primary": False,
                        "verified": False,
                    },
                    {
                        "email": profile.email,
                        "primary": profile.primary,
                        "verified": profile.verified,
                    },
                ]
                return _json(200, emails)
            return _json(
                200,
                {
                    "id": profile.id,
                    "login": profile.login,
                    "name": profile.name,
                    "avatar_url": f"https://avatars.test/{profile.id}",
                    "email": profile.email,
                },
            )
        if request.method == "GET" and path == "/userinfo/v2/me":
            profile = self._bearer(request)
            if profile is None:
                return _json(401, {"error": "invalid_token"})
            return _json(
                200,
                {
                    "id": f"g-{profile.id}",
                    "email": profile.email,
                    "verified_email": profile.verified,
                    "name": profile.name,
                    "picture": f"https://pics.test/{profile.login}.png",
                },
            )
        if request.method == "GET" and path == "/.well-known/openid-configuration":
            return _json(
                200,
                {
                    "issuer": self.url,
                    "authorization_endpoint": self.url + "/o/oauth2/v2/auth",
                    "token_endpoint": self.url + "/token",
                    "jwks_uri": self.url + "/jwks",
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                },
            )
        if request.method == "GET" and path == "/jwks":
            return _json(200, self.jwks())
        if request.method == "GET" and path == "/huge":
            return 200, {"content-type": "application/json"}, b" " * (2 * 1024 * 1024)
        return _json(404, {"error": "not_found"})

    def _authorize(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        query = request.query
        redirect_uri, state = query.get("redirect_uri", ""), query.get("state", "")
        if query.get("client_id") != CLIENT_ID or not redirect_uri:
            return _json(400, {"error": "invalid_client"})
        hint = query.get("login_hint", "alice")
        if hint == "deny":
            params = {
                "error": "access_denied",
                "error_description": "The user said no",
                "state": state,
            }
        else:
            code = self._next("code")
            self.codes[code] = (PROFILES[hint], redirect_uri)
            params = {"code": code, "state": state}
        return 302, {"location": f"{redirect_uri}?{urlencode(params)}"}, b""

    def _token(self, request: Recorded, *, google: bool) -> tuple[int, dict[str, str], bytes]:
        form = request.form
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return _json(401, {"error": "invalid_client"})
        issued = self.codes.pop(form.get("code", ""), None)
        if (
            issued is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != issued[1]
        ):
            return _json(400, {"error": "bad_verification_code"})
        profile = issued[0]
        access = self._next("gho_")
        self.tokens[access] = profile
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "scope": "user:email",
        }
        if google:
            body["refresh_token"] = self._next("refresh-")
            body["id_token"] = self.id_token(profile, access_token=access)
        return _json(200, body)

    def _bearer(self, request: Recorded) -> Profile | None:
        auth = request.authorization or ""
        return self.tokens.get(auth.removeprefix("Bearer ").strip())


def _json(status: int, value: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(value).encode()


def _handler(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            recorded = Recorded(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query)),
                form=dict(parse_qsl(body)),
                authorization=self.headers.get("authorization"),
            )
            status, headers, payload = provider.handle(recorded)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve  # noqa: N815
        do_POST = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def running_provider() -> Iterator[FakeProvider]:
    """A fake provider listening on 127.0.0.1 (a free port) until the block ends."""
    provider = FakeProvider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    server.daemon_threads = True
    provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
