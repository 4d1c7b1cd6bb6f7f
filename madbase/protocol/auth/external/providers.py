"""External OAuth/OIDC providers: the table of what each one is, its configuration, its user data.

GoTrue's `internal/api/provider/*.go`, reduced to data. A `ProviderSpec` says where a provider
lives (authorize, token and user-info endpoints, with a base URL that configuration can replace,
as GoTrue's `GOTRUE_EXTERNAL_<P>_URL` does for GitHub Enterprise, GitLab or Keycloak), its default
scopes, its OIDC issuer, and how to read the user from its answers. A `ProviderConfig` is one
project's credentials for one provider. `ExternalUser` is what every provider's answer becomes:
the subject, the e-mail addresses (verified or not, primary or not) and the profile claims that
end up in `identities.identity_data` and `users.raw_user_meta_data`, in GoTrue's `Claims` shape
(models: `provider.Claims`, mapped with its `structs` tags: empty values left out except
`email_verified` and `phone_verified`).

A base URL override applies to every endpoint of the provider (and makes it the OIDC issuer for
Google and Azure), which is how tests point a provider at a fake server on loopback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, final

import attrs

from madbase.protocol.http.messages import JsonValue

__all__ = [
    "PROVIDERS",
    "Endpoints",
    "ExternalSettings",
    "ExternalUser",
    "ProviderConfig",
    "ProviderEmail",
    "ProviderSpec",
    "endpoints",
    "read_id_token_user",
]

JsonObject = dict[str, JsonValue]


@final
@attrs.frozen(kw_only=True)
class ProviderEmail:
    """One e-mail address the provider reports for the user."""

    address: str
    verified: bool
    primary: bool


@final
@attrs.frozen(kw_only=True)
class ExternalUser:
    """The user as the provider describes it.

    `claims` are GoTrue's `Claims` without `email`/`email_verified`, which come from `emails`.
    """

    subject: str
    emails: tuple[ProviderEmail, ...] = ()
    claims: JsonObject = attrs.field(factory=dict)

    @property
    def email(self) -> ProviderEmail | None:
        """The address GoTrue copies into the metadata: the primary one, else the last one."""
        chosen: ProviderEmail | None = None
        for email in self.emails:
            chosen = email
            if email.primary:
                break
        return chosen

    def identity_data(self) -> JsonObject:
        """`identities.identity_data` of this user (GoTrue: `structs.Map(userData.Metadata)`)."""
        data = dict(self.claims)
        email = self.email
        if email is not None and email.address:
            data["email"] = email.address
        data["email_verified"] = email is not None and email.verified
        data.setdefault("phone_verified", False)
        return data


UserReader = Callable[[Sequence[JsonValue], str], ExternalUser]


@final
@attrs.frozen(kw_only=True)
class Endpoint:
    """A URL by default, and its path under a configured base URL."""

    default: str
    path: str

    def url(self, base: str) -> str:
        """The URL under `base` (empty: the default)."""
        return base.rstrip("/") + self.path if base else self.default


@final
@attrs.frozen(kw_only=True)
class ProviderSpec:
    """What GoTrue knows about one provider."""

    name: str
    authorize: Endpoint
    token: Endpoint
    # GETs with the access token, in order; their JSON answers go to `read_user` (with the
    # first one's URL). None: the user comes from the id_token of the token response.
    userinfo: tuple[Endpoint, ...] = ()
    read_user: UserReader | None = None
    scopes: tuple[str, ...] = ()
    # OIDC issuer of its id_tokens ("" none); `issuer_path` appended to a configured base URL.
    issuer: Endpoint | None = None
    # Keycloak has no default host: its URL setting is required.
    requires_url: bool = False
    # Accepted by the id_token grant (GoTrue: token_oidc.go).
    id_token_grant: bool = False
    # Extra authorize parameters the provider needs (Apple answers with a POSTed form).
    authorize_params: tuple[tuple[str, str], ...] = ()


@final
@attrs.frozen(kw_only=True)
class Endpoints:
    """A configured provider's URLs."""

    authorize: str
    token: str
    userinfo: tuple[str, ...]
    issuer: str


@final
@attrs.frozen(kw_only=True)
class ProviderConfig:
    """One project's credentials for one provider (GoTrue's `OAuthProviderConfiguration`).

    `client_ids`: the first is used for the OAuth flow; all are accepted as id_token audiences.
    """

    name: str
    client_ids: tuple[str, ...]
    secret: str = attrs.field(default="", repr=False)
    url: str = ""
    redirect_uri: str = ""
    enabled: bool = True

    @property
    def client_id(self) -> str:
        """The client id of the OAuth flow."""
        return self.client_ids[0] if self.client_ids else ""


@final
@attrs.frozen(kw_only=True)
class ExternalSettings:
    """External sign-in settings of one project."""

    providers: tuple[ProviderConfig, ...] = ()
    # Where providers send the user back: `<public URL>/auth/v1/callback` unless configured.
    redirect_uri: str = ""
    # GOTRUE_EXTERNAL_FLOW_STATE_EXPIRY_DURATION: 300 s, also its minimum (conf).
    flow_state_expiry_seconds: int = 300
    # GOTRUE_SECURITY_MANUAL_LINKING_ENABLED, default false.
    manual_linking_enabled: bool = False
    # How long a provider's discovery document and JWKS are reused.
    keys_cache_seconds: int = 600

    def provider(self, name: str) -> ProviderConfig | None:
        """The configuration of provider `name`, if any."""
        for config in self.providers:
            if config.name == name:
                return config
        return None

    def enabled(self, name: str) -> bool:
        """True when provider `name` is configured and enabled."""
        config = self.provider(name)
        return config is not None and config.enabled


def endpoints(spec: ProviderSpec, config: ProviderConfig) -> Endpoints:
    """The URLs of `spec` as `config` places it."""
    base = config.url
    return Endpoints(
        authorize=spec.authorize.url(base),
        token=spec.token.url(base),
        userinfo=tuple(e.url(base) for e in spec.userinfo),
        issuer=spec.issuer.url(base) if spec.issuer is not None else "",
    )


# --- reading the user -------------------------------------------------------------------------


def _text(obj: JsonValue, key: str) -> str:
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return ""


def _flag(obj: JsonValue, key: str) -> bool:
    value = obj.get(key) if isinstance(obj, dict) else None
    # Some providers (LinkedIn, Cognito) send "true" as a string.
    return value is True or value == "true"


def _claims(**values: JsonValue) -> JsonObject:
    """GoTrue's `structs` mapping: empty values are left out."""
    return {key: value for key, value in values.items() if value not in ("", None, {}, [])}


def _github(answers: Sequence[JsonValue], api: str) -> ExternalUser:
    user, emails = answers[0], answers[1] if len(answers) > 1 else []
    subject = _text(user, "id")
    name, login = _text(user, "name"), _text(user, "login")
    found = tuple(
        ProviderEmail(
            address=_text(e, "email"), verified=_flag(e, "verified"), primary=_flag(e, "primary")
        )
        for e in (emails if isinstance(emails, list) else [])
        if _text(e, "email")
    )
    # GoTrue's Issuer is the API host (api.github.com or <enterprise>/api/v3).
    issuer = api.rsplit("/user", 1)[0]
    claims = _claims(
        iss=issuer,
        sub=subject,
        name=name,
        preferred_username=login,
        avatar_url=_text(user, "avatar_url"),
        full_name=name,
        provider_id=subject,
        user_name=login,
    )
    return ExternalUser(subject=subject, emails=found, claims=claims)


def _gitlab(answers: Sequence[JsonValue], api: str) -> ExternalUser:
    user, emails = answers[0], answers[1] if len(answers) > 1 else []
    subject = _text(user, "id")
    found = [
        ProviderEmail(address=_text(e, "email"), verified=False, primary=False)
        for e in (emails if isinstance(emails, list) else [])
        if _text(e, "email")
    ]
    if _text(user, "email"):
        # GitLab confirms the account's own address (confirmed_at set).
        verified = _text(user, "confirmed_at") != ""
        found.append(ProviderEmail(address=_text(user, "email"), verified=verified, primary=True))
    name, avatar = _text(user, "name"), _text(user, "avatar_url")
    claims = _claims(
        iss=api.rsplit("/api/v4/", 1)[0],
        sub=subject,
        name=name,
        picture=avatar,
        avatar_url=avatar,
        full_name=name,
        provider_id=subject,
    )
    return ExternalUser(subject=subject, emails=tuple(found), claims=claims)


def _discord(answers: Sequence[JsonValue], api: str) -> ExternalUser:
    user = answers[0]
    subject, avatar = _text(user, "id"), _text(user, "avatar")
    if avatar:
        extension = "gif" if avatar.startswith("a_") else "png"
        picture = f"https://cdn.discordapp.com/avatars/{subject}/{avatar}.{extension}"
    else:
        discriminator = _text(user, "discriminator")
        index = int(discriminator) % 5 if discriminator.isdigit() else 0
        picture = f"https://cdn.discordapp.com/embed/avatars/{index}.png"
    emails: tuple[ProviderEmail, ...] = ()
    if _text(user, "email"):
        emails = (
            ProviderEmail(
                address=_text(user, "email"), verified=_flag(user, "verified"), primary=True
            ),
        )
    username = _text(user, "username")
    claims = _claims(
        iss=api.rsplit("/users/@me", 1)[0],
        sub=subject,
        name=f"{username}#{_text(user, 'discriminator')}",
        picture=picture,
        custom_claims=_claims(global_name=_text(user, "global_name")),
        avatar_url=picture,
        full_name=username,
        provider_id=subject,
    )
    return ExternalUser(subject=subject, emails=emails, claims=claims)


def _google(answers: Sequence[JsonValue], api: str) -> ExternalUser:
    # The legacy userinfo v2 answer (GoTrue falls back to it without an id_token).
    user = answers[0]
    subject = _text(user, "id")
    verified = _flag(user, "verified_email") or _flag(user, "email_verified")
    emails: tuple[ProviderEmail, ...] = ()
    if _text(user, "email"):
        emails = (ProviderEmail(address=_text(user, "email"), verified=verified, primary=True),)
    name, picture = _text(user, "name"), _text(user, "picture")
    claims = _claims(
        iss=api,
        sub=subject,
        name=name,
        picture=picture,
        avatar_url=picture,
        full_name=name,
        provider_id=subject,
    )
    return ExternalUser(subject=subject, emails=emails, claims=claims)


def _keycloak(answers: Sequence[JsonValue], api: str) -> ExternalUser:
    user = answers[0]
    subject = _text(user, "sub")
    emails: tuple[ProviderEmail, ...] = ()
    if _text(user, "email"):
        emails = (
            ProviderEmail(
                address=_text(user, "email"), verified=_flag(user, "email_verified"), primary=True
            ),
        )
    name = _text(user, "name")
    claims = _claims(
        iss=api.rsplit("/protocol/", 1)[0],
        sub=subject,
        name=name,
        full_name=name,
        provider_id=subject,
    )
    return ExternalUser(subject=subject, emails=emails, claims=claims)


# Profile claims of a standard OIDC id_token that GoTrue's `Claims` keeps (parseGenericIDToken).
_OIDC_PROFILE: Final = (
    "name",
    "family_name",
    "given_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone",
    "full_name",
    "avatar_url",
    "slug",
    "provider_id",
    "user_name",
)
# Claims of an Azure id_token that are not profile data (azure.go).
_AZURE_DROPPED: Final = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "email",
     "email_verified", "xms_edov", "name", "preferred_username", "aio", "rh", "uti", "ver", "tid",
     "oid", "idp", "sid", "auth_time", "acr", "amr"}
)  # fmt: skip


def read_id_token_user(provider: str, claims: JsonObject) -> ExternalUser:
    """The user described by a verified id_token's claims (oidc.go ParseIDToken)."""
    issuer, subject = _text(claims, "iss"), _text(claims, "sub")
    email = _text(claims, "email")
    if provider == "google":
        verified = _flag(claims, "email_verified") or _flag(claims, "verified_email")
        name, picture = _text(claims, "name"), _text(claims, "picture")
        profile = _claims(
            iss=issuer,
            sub=subject,
            name=name,
            picture=picture,
            custom_claims=_claims(hd=_text(claims, "hd")),
            avatar_url=picture,
            full_name=name,
            provider_id=subject,
        )
    elif provider == "azure":
        # xms_edov: the tenant verified the domain of the address.
        verified = _flag(claims, "email_verified") or _flag(claims, "xms_edov")
        custom = {k: v for k, v in claims.items() if k not in _AZURE_DROPPED}
        profile = _claims(
            iss=issuer,
            sub=subject,
            preferred_username=_text(claims, "preferred_username"),
            custom_claims=custom,
            full_name=_text(claims, "name"),
            provider_id=subject,
        )
    elif provider == "apple":
        # Apple only ever reports addresses it verified.
        verified = True
        profile = _claims(iss=issuer, sub=subject, provider_id=subject)
    else:
        verified = _flag(claims, "email_verified")
        profile = _claims(
            iss=issuer, sub=subject, **{key: _text(claims, key) for key in _OIDC_PROFILE}
        )
        if _flag(claims, "phone_verified"):
            profile["phone_verified"] = True
    emails: tuple[ProviderEmail, ...] = ()
    if email or provider == "apple":
        emails = (ProviderEmail(address=email, verified=verified, primary=True),)
    return ExternalUser(subject=subject, emails=emails, claims=profile)


def _e(default: str, path: str) -> Endpoint:
    return Endpoint(default=default, path=path)


PROVIDERS: Final = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            name="apple",
            authorize=_e("https://appleid.apple.com/auth/authorize", "/auth/authorize"),
            token=_e("https://appleid.apple.com/auth/token", "/auth/token"),
            scopes=("email", "name"),
            issuer=_e("https://appleid.apple.com", ""),
            id_token_grant=True,
            authorize_params=(("response_mode", "form_post"),),
        ),
        ProviderSpec(
            name="azure",
            authorize=_e(
                "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
                "/oauth2/v2.0/authorize",
            ),
            token=_e(
                "https://login.microsoftonline.com/common/oauth2/v2.0/token", "/oauth2/v2.0/token"
            ),
            scopes=("openid",),
            # Tenant-specific by default (detected from the token); a configured URL fixes it.
            issuer=_e("", "/v2.0"),
            id_token_grant=True,
        ),
        ProviderSpec(
            name="discord",
            authorize=_e("https://discord.com/api/oauth2/authorize", "/api/oauth2/authorize"),
            token=_e("https://discord.com/api/oauth2/token", "/api/oauth2/token"),
            userinfo=(_e("https://discord.com/api/users/@me", "/api/users/@me"),),
            read_user=_discord,
            scopes=("email", "identify"),
        ),
        ProviderSpec(
            name="github",
            authorize=_e("https://github.com/login/oauth/authorize", "/login/oauth/authorize"),
            token=_e("https://github.com/login/oauth/access_token", "/login/oauth/access_token"),
            # GitHub Enterprise serves its API under /api/v3 of the configured URL.
            userinfo=(
                _e("https://api.github.com/user", "/api/v3/user"),
                _e("https://api.github.com/user/emails", "/api/v3/user/emails"),
            ),
            read_user=_github,
            scopes=("user:email",),
        ),
        ProviderSpec(
            name="gitlab",
            authorize=_e("https://gitlab.com/oauth/authorize", "/oauth/authorize"),
            token=_e("https://gitlab.com/oauth/token", "/oauth/token"),
            userinfo=(
                _e("https://gitlab.com/api/v4/user", "/api/v4/user"),
                _e("https://gitlab.com/api/v4/user/emails", "/api/v4/user/emails"),
            ),
            read_user=_gitlab,
            scopes=("read_user",),
        ),
        ProviderSpec(
            name="google",
            authorize=_e("https://accounts.google.com/o/oauth2/v2/auth", "/o/oauth2/v2/auth"),
            token=_e("https://oauth2.googleapis.com/token", "/token"),
            userinfo=(_e("https://www.googleapis.com/userinfo/v2/me", "/userinfo/v2/me"),),
            read_user=_google,
            scopes=("email", "profile"),
            issuer=_e("https://accounts.google.com", ""),
            id_token_grant=True,
        ),
        ProviderSpec(
            name="keycloak",
            authorize=_e("", "/protocol/openid-connect/auth"),
            token=_e("", "/protocol/openid-connect/token"),
            userinfo=(_e("", "/protocol/openid-connect/userinfo"),),
            read_user=_keycloak,
            scopes=("profile", "email"),
            issuer=_e("", ""),
            requires_url=True,
            id_token_grant=True,
        ),
    )
}
