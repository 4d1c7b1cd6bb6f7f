"""GoTrue's errors: one class per `error_code`, and the three body shapes the clients read.

Exception tree::

    ProtocolError                      madbase.protocol.http: the peer sent something we refuse
      AuthError                        an `/auth/v1` error; `error_code` and default `status` on the class
        ValidationFailed ... Conflict  one class per GoTrue error code (apierrors/errorcode.go)
        WeakPassword                   422, carries `reasons` (`length`, `characters`, `pwned`)
        OAuthRequestError              400, rendered `{"error", "error_description"}` (token params)
        UnexpectedFailure              500, also what a bug in the runtime is rendered as

GoTrue raises one code with different statuses at different call sites (`validation_failed` is 422
for a bad email on `/verify`, `user_banned` is 403 on JWT routes): the class holds the usual status,
an instance may carry another (`http_status`). Codes retired by GoTrue are never reused here.

Rendering (spec/auth.md §6, GoTrue `internal/api/errors.go`): a request whose
`X-Supabase-Api-Version` is a date on or after 2024-01-01 gets `{"code": <error_code>, "message"}`
and the header echoed; any other request gets the legacy `{"code": <status>, "error_code", "msg"}`
(+ `error_id` on 5xx). `x-sb-error-code` names the code in both. An error without a code is
`unexpected_failure` on 500 and `unknown` otherwise.
"""

from __future__ import annotations

from typing import ClassVar, Final

from madbase.protocol.http.errors import ProtocolError

__all__ = [
    "AnonymousProviderDisabled",
    "AuthError",
    "BadCodeVerifier",
    "BadJson",
    "BadJwt",
    "BadOAuthCallback",
    "BadOAuthState",
    "CaptchaFailed",
    "Conflict",
    "CurrentPasswordInvalid",
    "CurrentPasswordRequired",
    "EmailAddressInvalid",
    "EmailAddressNotAuthorized",
    "EmailConflictIdentityNotDeletable",
    "EmailExists",
    "EmailNotConfirmed",
    "EmailProviderDisabled",
    "FlowStateAlreadyUsed",
    "FlowStateExpired",
    "FlowStateNotFound",
    "IdentityAlreadyExists",
    "IdentityNotFound",
    "InsufficientAal",
    "InvalidCredentials",
    "ManualLinkingDisabled",
    "MfaChallengeExpired",
    "MfaFactorNameConflict",
    "MfaFactorNotFound",
    "MfaIpAddressMismatch",
    "MfaPhoneEnrollNotEnabled",
    "MfaPhoneVerifyNotEnabled",
    "MfaTotpEnrollNotEnabled",
    "MfaTotpVerifyNotEnabled",
    "MfaVerificationFailed",
    "MfaVerificationRejected",
    "MfaVerifiedFactorExists",
    "MfaWebauthnEnrollNotEnabled",
    "MfaWebauthnVerifyNotEnabled",
    "NoAuthorization",
    "NotAdmin",
    "OAuthProviderNotSupported",
    "OAuthRequestError",
    "OtpDisabled",
    "OtpExpired",
    "OverEmailSendRateLimit",
    "OverRequestRateLimit",
    "OverSmsSendRateLimit",
    "PhoneExists",
    "PhoneNotConfirmed",
    "PhoneProviderDisabled",
    "ProviderDisabled",
    "ProviderEmailNeedsVerification",
    "ReauthenticationNeeded",
    "ReauthenticationNotValid",
    "RefreshTokenAlreadyUsed",
    "RefreshTokenNotFound",
    "RequestEntityTooLarge",
    "RequestTimeout",
    "SamePassword",
    "SamlProviderDisabled",
    "SessionExpired",
    "SessionNotFound",
    "SignupDisabled",
    "SingleIdentityNotDeletable",
    "SmsSendFailed",
    "SsoProviderDisabled",
    "SsoProviderNotFound",
    "TooManyEnrolledMfaFactors",
    "UnexpectedFailure",
    "UserAlreadyExists",
    "UserBanned",
    "UserNotFound",
    "UserSsoManaged",
    "ValidationFailed",
    "WeakPassword",
    "Web3ProviderDisabled",
]

_UNEXPECTED_MESSAGE: Final = "Unexpected failure, please check server logs for more information"


class AuthError(ProtocolError):
    """An error answered by `/auth/v1`.

    `error_code` and `status` are the class's GoTrue code and usual status; `message` and
    `http_status` are this instance's (a call site may pick another status, as GoTrue does).
    """

    error_code: ClassVar[str] = ""
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = _UNEXPECTED_MESSAGE

    def __init__(self, message: str | None = None, *, status: int | None = None) -> None:
        self.message = self.default_message if message is None else message
        self.http_status = self.status if status is None else status
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.http_status})"


# --- request shape ---------------------------------------------------------------------------


class ValidationFailed(AuthError):
    """Missing or invalid parameters (400; 422 for a bad email on `/verify`)."""

    error_code = "validation_failed"
    status = 400
    default_message = "Invalid request"


class BadJson(AuthError):
    """The body is not the JSON object the endpoint expects."""

    error_code = "bad_json"
    status = 400
    default_message = "Could not parse request body as JSON"


class RequestEntityTooLarge(AuthError):
    """The body is larger than the configured maximum."""

    error_code = "request_entity_too_large"
    status = 413
    default_message = "Request body too large"


class RequestTimeout(AuthError):
    """The request took longer than the server allows."""

    error_code = "request_timeout"
    status = 504
    default_message = "Processing this request timed out, please retry after a moment."


class CaptchaFailed(AuthError):
    """Captcha protection refused the request."""

    error_code = "captcha_failed"
    status = 400
    default_message = "captcha protection: request disallowed (no captcha_token found)"


# --- credentials and users -------------------------------------------------------------------


class InvalidCredentials(AuthError):
    """Wrong email/phone or password; also an unknown `grant_type` (`unsupported_grant_type`)."""

    error_code = "invalid_credentials"
    status = 400
    default_message = "Invalid login credentials"


class EmailNotConfirmed(AuthError):
    """Password grant with an email address not confirmed yet."""

    error_code = "email_not_confirmed"
    status = 400
    default_message = "Email not confirmed"


class PhoneNotConfirmed(AuthError):
    """Password grant with a phone number not confirmed yet."""

    error_code = "phone_not_confirmed"
    status = 400
    default_message = "Phone not confirmed"


class UserAlreadyExists(AuthError):
    """Sign-up with an address that already belongs to a confirmed user."""

    error_code = "user_already_exists"
    status = 422
    default_message = "User already registered"


class EmailExists(AuthError):
    """The email address belongs to another user."""

    error_code = "email_exists"
    status = 422
    default_message = "A user with this email address has already been registered"


class PhoneExists(AuthError):
    """The phone number belongs to another user."""

    error_code = "phone_exists"
    status = 422
    default_message = "A user with this phone number has already been registered"


class WeakPassword(AuthError):
    """The password fails the policy; `reasons` lists `length`, `characters` and/or `pwned`."""

    error_code = "weak_password"
    status = 422
    default_message = "Password is too weak"

    def __init__(
        self,
        message: str | None = None,
        *,
        reasons: tuple[str, ...] = (),
        status: int | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.reasons = reasons


class SamePassword(AuthError):
    """The new password equals the old one."""

    error_code = "same_password"
    status = 422
    default_message = "New password should be different from the old password."


class CurrentPasswordRequired(AuthError):
    """A password change needs the current password."""

    error_code = "current_password_required"
    status = 400
    default_message = "Current password required when setting new password."


class CurrentPasswordInvalid(AuthError):
    """The current password given with a password change is wrong."""

    error_code = "current_password_invalid"
    status = 400
    default_message = "Current password required when setting new password."


class ReauthenticationNeeded(AuthError):
    """A password change needs a reauthentication nonce."""

    error_code = "reauthentication_needed"
    status = 400
    default_message = "Password update requires reauthentication"


class ReauthenticationNotValid(AuthError):
    """The reauthentication nonce is wrong or expired."""

    error_code = "reauthentication_not_valid"
    status = 422
    default_message = "Requires reauthentication"


class UserNotFound(AuthError):
    """No such user (403 on `/user` when the JWT's `sub` is unknown, 404 on admin routes)."""

    error_code = "user_not_found"
    status = 404
    default_message = "User not found"


class UserBanned(AuthError):
    """The user is banned (400 on `/token`, 403 on JWT routes)."""

    error_code = "user_banned"
    status = 400
    default_message = "User is banned"


class UserSsoManaged(AuthError):
    """Email, phone and password of an SSO user change only through SSO."""

    error_code = "user_sso_managed"
    status = 422
    default_message = "Updating email, phone, password of a SSO account only possible via SSO"


# --- sign-up and providers -------------------------------------------------------------------


class SignupDisabled(AuthError):
    """Sign-ups are turned off."""

    error_code = "signup_disabled"
    status = 422
    default_message = "Signups not allowed for this instance"


class EmailProviderDisabled(AuthError):
    """Email sign-in is turned off (400 on sign-up)."""

    error_code = "email_provider_disabled"
    status = 422
    default_message = "Email logins are disabled"


class PhoneProviderDisabled(AuthError):
    """Phone sign-in is turned off (400 on sign-up)."""

    error_code = "phone_provider_disabled"
    status = 422
    default_message = "Phone logins are disabled"


class AnonymousProviderDisabled(AuthError):
    """Anonymous sign-ins are turned off."""

    error_code = "anonymous_provider_disabled"
    status = 422
    default_message = "Anonymous sign-ins are disabled"


class Web3ProviderDisabled(AuthError):
    """Web3 sign-in is turned off (MadBase has none)."""

    error_code = "web3_provider_disabled"
    status = 422
    default_message = "Web3 provider is disabled"


class ProviderDisabled(AuthError):
    """The OAuth/OIDC provider is not enabled."""

    error_code = "provider_disabled"
    status = 400
    default_message = "Unsupported provider: provider is not enabled"


class OAuthProviderNotSupported(AuthError):
    """The OAuth provider is unknown."""

    error_code = "oauth_provider_not_supported"
    status = 400
    default_message = "Unsupported provider"


class BadOAuthState(AuthError):
    """The OAuth `state` is invalid or expired."""

    error_code = "bad_oauth_state"
    status = 400
    default_message = "OAuth state parameter is invalid"


class BadOAuthCallback(AuthError):
    """The OAuth callback misses its code or state."""

    error_code = "bad_oauth_callback"
    status = 400
    default_message = "OAuth state parameter missing"


class ProviderEmailNeedsVerification(AuthError):
    """The provider did not verify the address and autoconfirm is off (external.go)."""

    error_code = "provider_email_needs_verification"
    status = 422
    default_message = "Unverified email with provider"


class SsoProviderNotFound(AuthError):
    """No SSO provider for that id or domain."""

    error_code = "sso_provider_not_found"
    status = 404
    default_message = "SSO Identity Provider not found"


class SsoProviderDisabled(AuthError):
    """The SSO provider is disabled."""

    error_code = "sso_provider_disabled"
    status = 422
    default_message = "SSO Provider is disabled"


class SamlProviderDisabled(AuthError):
    """SAML is turned off."""

    error_code = "saml_provider_disabled"
    status = 404
    default_message = "SAML 2.0 is disabled"


# --- one-time passwords and flow state -------------------------------------------------------


class OtpDisabled(AuthError):
    """OTP sign-in for an unknown user with `create_user: false`."""

    error_code = "otp_disabled"
    status = 422
    default_message = "Signups not allowed for otp"


class OtpExpired(AuthError):
    """The OTP or email link is wrong or expired."""

    error_code = "otp_expired"
    status = 403
    default_message = "Token has expired or is invalid"


class FlowStateNotFound(AuthError):
    """No PKCE flow state for that auth code."""

    error_code = "flow_state_not_found"
    status = 404
    default_message = "invalid flow state, no valid flow state found"


class FlowStateExpired(AuthError):
    """The PKCE flow state is older than its lifetime."""

    error_code = "flow_state_expired"
    status = 422
    default_message = "invalid flow state, flow state has expired"


class FlowStateAlreadyUsed(AuthError):
    """The PKCE flow state was already exchanged."""

    error_code = "flow_state_already_used"
    status = 400
    default_message = "State has already been used"


class BadCodeVerifier(AuthError):
    """The PKCE code verifier does not match the challenge."""

    error_code = "bad_code_verifier"
    status = 400
    default_message = "code challenge does not match previously saved code verifier"


# --- tokens and sessions ---------------------------------------------------------------------


class NoAuthorization(AuthError):
    """The endpoint needs a Bearer token."""

    error_code = "no_authorization"
    status = 401
    default_message = "This endpoint requires a valid Bearer token"


class BadJwt(AuthError):
    """The Bearer token is malformed, badly signed or misses claims."""

    error_code = "bad_jwt"
    status = 403
    default_message = "invalid JWT: unable to parse or verify signature"


class NotAdmin(AuthError):
    """The caller's role is not an admin role."""

    error_code = "not_admin"
    status = 403
    default_message = "User not allowed"


class SessionNotFound(AuthError):
    """The JWT's `session_id` (or the refresh token's session) no longer exists."""

    error_code = "session_not_found"
    status = 403
    default_message = "Session from session_id claim in JWT does not exist"


class SessionExpired(AuthError):
    """The session is past its timebox, `not_after`, inactivity timeout or low-AAL window."""

    error_code = "session_expired"
    status = 400
    default_message = "Invalid Refresh Token: Session Expired"


class RefreshTokenNotFound(AuthError):
    """The refresh token is unknown."""

    error_code = "refresh_token_not_found"
    status = 400
    default_message = "Invalid Refresh Token: Refresh Token Not Found"


class RefreshTokenAlreadyUsed(AuthError):
    """A revoked refresh token presented outside the reuse interval."""

    error_code = "refresh_token_already_used"
    status = 400
    default_message = "Invalid Refresh Token: Already Used"


class InsufficientAal(AuthError):
    """The session's assurance level is too low (401/403/422 depending on the route)."""

    error_code = "insufficient_aal"
    status = 403
    default_message = "AAL2 required"


# --- MFA -------------------------------------------------------------------------------------


class MfaFactorNotFound(AuthError):
    """No such MFA factor."""

    error_code = "mfa_factor_not_found"
    status = 404
    default_message = "Factor not found"


class MfaChallengeExpired(AuthError):
    """The MFA challenge expired."""

    error_code = "mfa_challenge_expired"
    status = 422
    default_message = (
        "MFA challenge has expired, verify against another challenge or create a new challenge."
    )


class MfaVerificationFailed(AuthError):
    """The MFA code is wrong."""

    error_code = "mfa_verification_failed"
    status = 422
    default_message = "Invalid TOTP code entered"


class MfaVerificationRejected(AuthError):
    """A hook rejected the MFA verification."""

    error_code = "mfa_verification_rejected"
    status = 403
    default_message = "MFA verification rejected"


class MfaIpAddressMismatch(AuthError):
    """Challenge and verification came from different addresses."""

    error_code = "mfa_ip_address_mismatch"
    status = 422
    default_message = "Challenge and verify IP addresses mismatch."


class TooManyEnrolledMfaFactors(AuthError):
    """The user has as many factors as allowed."""

    error_code = "too_many_enrolled_mfa_factors"
    status = 422
    default_message = "Maximum number of verified factors reached, unenroll to continue"


class MfaFactorNameConflict(AuthError):
    """Another factor of the user has that friendly name."""

    error_code = "mfa_factor_name_conflict"
    status = 422
    default_message = "A factor with this friendly name for this user already exists"


class MfaVerifiedFactorExists(AuthError):
    """A verified phone factor with that number exists."""

    error_code = "mfa_verified_factor_exists"
    status = 422
    default_message = (
        "A verified phone factor already exists, unenroll the existing factor to continue"
    )


class MfaTotpEnrollNotEnabled(AuthError):
    """TOTP enrolment is turned off."""

    error_code = "mfa_totp_enroll_not_enabled"
    status = 422
    default_message = "MFA enroll is disabled for TOTP"


class MfaTotpVerifyNotEnabled(AuthError):
    """TOTP verification is turned off."""

    error_code = "mfa_totp_verify_not_enabled"
    status = 422
    default_message = "MFA verification is disabled for TOTP"


class MfaPhoneEnrollNotEnabled(AuthError):
    """Phone MFA enrolment is turned off."""

    error_code = "mfa_phone_enroll_not_enabled"
    status = 422
    default_message = "MFA enroll is disabled for Phone"


class MfaPhoneVerifyNotEnabled(AuthError):
    """Phone MFA verification is turned off."""

    error_code = "mfa_phone_verify_not_enabled"
    status = 422
    default_message = "MFA verification is disabled for Phone"


class MfaWebauthnEnrollNotEnabled(AuthError):
    """WebAuthn enrolment is turned off."""

    error_code = "mfa_webauthn_enroll_not_enabled"
    status = 422
    default_message = "MFA enroll is disabled for WebAuthn"


class MfaWebauthnVerifyNotEnabled(AuthError):
    """WebAuthn verification is turned off."""

    error_code = "mfa_webauthn_verify_not_enabled"
    status = 422
    default_message = "MFA verification is disabled for WebAuthn"


# --- identities ------------------------------------------------------------------------------


class IdentityNotFound(AuthError):
    """No such identity for the user."""

    error_code = "identity_not_found"
    status = 422
    default_message = "Identity doesn't exist"


class IdentityAlreadyExists(AuthError):
    """The identity is already linked."""

    error_code = "identity_already_exists"
    status = 422
    default_message = "Identity is already linked"


class SingleIdentityNotDeletable(AuthError):
    """Unlinking would leave the user without identities."""

    error_code = "single_identity_not_deletable"
    status = 422
    default_message = "User must have at least 1 identity after unlinking"


class EmailConflictIdentityNotDeletable(AuthError):
    """Unlinking would leave the user's email address owned by another identity."""

    error_code = "email_conflict_identity_not_deletable"
    status = 422
    default_message = (
        "Unable to unlink identity due to email conflict. Please use a different email address."
    )


class ManualLinkingDisabled(AuthError):
    """Manual identity linking is turned off."""

    error_code = "manual_linking_disabled"
    status = 404
    default_message = "Manual linking is disabled"


# --- mail, rate limits, misc -----------------------------------------------------------------


class EmailAddressInvalid(AuthError):
    """The mailer refuses the address."""

    error_code = "email_address_invalid"
    status = 400
    default_message = "Email address is invalid"


class EmailAddressNotAuthorized(AuthError):
    """The default mailer sends only to authorized addresses."""

    error_code = "email_address_not_authorized"
    status = 400
    default_message = "Email address cannot be used as it is not authorized"


class SmsSendFailed(AuthError):
    """The SMS provider failed."""

    error_code = "sms_send_failed"
    status = 500
    default_message = "Error sending SMS"


class OverRequestRateLimit(AuthError):
    """Too many requests from this client."""

    error_code = "over_request_rate_limit"
    status = 429
    default_message = "Request rate limit reached"


class OverEmailSendRateLimit(AuthError):
    """Too many emails sent (project quota or per-address cooldown)."""

    error_code = "over_email_send_rate_limit"
    status = 429
    default_message = "Email rate limit exceeded"


class OverSmsSendRateLimit(AuthError):
    """Too many SMS sent (project quota or per-number cooldown)."""

    error_code = "over_sms_send_rate_limit"
    status = 429
    default_message = "SMS rate limit exceeded"


class Conflict(AuthError):
    """Concurrent modification, e.g. too many concurrent refreshes of one session."""

    error_code = "conflict"
    status = 409
    default_message = (
        "Too many concurrent token refresh requests on the same session or refresh token"
    )


class UnexpectedFailure(AuthError):
    """A server-side failure; what any bug is rendered as.

    `cause` is for the server's log only (a database error, say), never sent to the client.
    """

    error_code = "unexpected_failure"
    status = 500
    default_message = _UNEXPECTED_MESSAGE

    def __init__(
        self, message: str | None = None, *, status: int | None = None, cause: str | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.cause = cause


class OAuthRequestError(AuthError):
    """An OAuth-style refusal, rendered `{"error", "error_description"}` with status 400.

    GoTrue uses it for parameters of the `id_token` grant (`error` is then `"invalid request"`,
    with a space, as GoTrue spells it) and for the OAuth server endpoints.
    """

    status = 400

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
