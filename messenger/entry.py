"""CF Messenger's worker: the HTTP API, WebSocket routing, the delivery queue consumer and crons.

Every API answer is one JSON envelope: `{"ok": true, "data": ..., "requestId": ...}` or
`{"ok": false, "error": {"code", "message"}, "requestId": ...}`.  The route table below is also the
source of `GET /api/openapi.json`, so the document cannot drift from what is served.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import uuid
from contextvars import ContextVar
from urllib.parse import parse_qs, urlsplit

from js import Date
from workers import Request, Response, WorkerEntrypoint

import accounts
import archive
import audit
import auth
import bots
import dashboard
import emoticons
import events
import rekey
import retention
import sessions
from audit import AuditLog
from bots import AIQuota
from directory import Directory, directory
from inbox import Inbox
from naming import PUBLIC_ROOMS, dm_room, may_join, valid_room
from presence import PresenceRoom, presence
from protocol import BODIES, ERRORS, ProtocolError, loads, validate
from ratelimit import RateLimiter
from rooms import ChatRoom
from sessions import Session
from sockets import TRUSTED_USER_HEADER
from store import py

close_sessions = accounts.close_sessions

__all__ = ["Default", "ChatRoom", "PresenceRoom", "Inbox", "Directory", "Session", "AIQuota", "RateLimiter", "AuditLog",
           "ROUTES"]

MAX_BODY_BYTES = 16 * 1024
# A valid hash of a random password, checked when the username is unknown so that sign-in takes the
# same time either way (no username probing by timing).
_DUMMY_HASH = auth.DEMO_ACCOUNTS[0]["hash"]
ROTATE_CRON = "0 */6 * * *"
_REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)  # for audit records
ARCHIVE_CRON = "15 0 * * *"
_RAY_ID = re.compile(r"[0-9a-f]{16}(-[A-Z]{3})?")  # a Cloudflare ray id: 16 hex digits, "-" data centre

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status or ERRORS.get(code, 400)
        self.headers = headers or {}


def _throttled(message: str, retry_after_ms: int) -> ApiError:
    """429 `rate_limited` with a Retry-After header in whole seconds (as Cloudflare's own 429s carry)."""
    seconds = max(1, -(-int(retry_after_ms) // 1000))
    return ApiError("rate_limited", f"{message}; retry in {seconds} s", 429, {"retry-after": str(seconds)})


def client_address(request) -> str:
    """The client's address as sign-in throttling counts it: IPv4 as is, IPv6 by its /64 (one host
    usually holds a whole /64), "unknown" when Cloudflare's CF-Connecting-IP header is absent or odd."""
    # Cloudflare sends one address.  Where a client's own CF-Connecting-IP survives with the real one
    # appended after it (cfemu dev today), the last entry is the one the proxy vouches for.
    raw = (request.headers.get("cf-connecting-ip") or "").split(",")[-1].strip()
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return "unknown"
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _rpc(result) -> object:
    """Unwrap a {"ok", "data"|"code"} RPC answer into data or an ApiError."""
    result = py(result)
    if not result.get("ok"):
        raise ApiError(result.get("code", "internal"), result.get("message", "error"))
    return result.get("data")


# -- routing ------------------------------------------------------------------------------------

# (method, path pattern, handler name, auth required, summary, body schema name)
ROUTES = [
    ("GET", "/api/health", "health", False, "Liveness check", None),
    ("GET", "/api/openapi.json", "openapi", False, "This document", None),
    ("GET", "/api/emoticons", "emoticon_table", False, "Emoticon codes and their images", None),
    ("GET", "/api/personas", "personas", False, "AI personas", None),
    ("POST", "/api/auth/register", "register", False, "Create an account", "register"),
    ("POST", "/api/auth/login", "login", False, "Sign in: access + refresh token", "login"),
    ("POST", "/api/auth/refresh", "refresh", False, "Rotate the refresh token, get a new access token", "refresh"),
    ("POST", "/api/auth/logout", "logout", True, "Sign out this session or everywhere", "logout"),
    ("GET", "/api/me", "me", True, "The signed-in user with presence", None),
    ("DELETE", "/api/me", "delete_me", True, "Delete the signed-in account (current password required; returns a receipt)", "delete_me"),
    ("DELETE", "/api/admin/users/{user}", "admin_delete_user", False, "Admin: delete any account (ADMIN_TOKEN bearer)", None),
    ("POST", "/api/admin/keys/rotate", "admin_rotate_keys", False, "Admin: new message data key, re-encrypt bodies (ADMIN_TOKEN bearer; reencrypt=0 skips)", None),
    ("GET", "/api/admin/audit", "admin_audit", False, "Admin: audit records as NDJSON (from, to: ms since epoch)", None),
    ("GET", "/api/admin/stats", "admin_stats", False, "Admin: hourly analytics counts for the admin page's charts (hours)", None),
    ("PUT", "/api/me/status", "set_status", True, "Change presence state, personal message or name", "status"),
    ("GET", "/api/users", "users", True, "Buddy list: bots, rooms, online, offline, unread counts", None),
    ("GET", "/api/rooms", "rooms", True, "Public rooms and the caller's DM rooms", None),
    ("GET", "/api/rooms/{room}/history", "history", True, "A page of history, backwards (before, limit)", None),
    ("GET", "/api/search", "search", True, "Search messages the caller may read (q)", None),
    ("GET", "/api/inbox", "inbox", True, "Pointers to DMs received while offline", None),
    ("GET", "/api/presence/{user}", "presence_lookup", True, "Cheap presence lookup (KV mirror)", None),
    ("POST", "/api/rum", "rum", False, "Real-user monitoring beacon: LCP, INP, CLS (no cookie, no identity)", "rum"),
    ("GET", "/ws/presence", "ws_presence", False, "WebSocket: presence (auth in first frame)", None),
    ("GET", "/ws/room/{room}", "ws_room", False, "WebSocket: a chat room (auth in first frame)", None),
]
_COMPILED = [(m, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", p) + "$"), h, a, p) for m, p, h, a, _, _ in ROUTES]


def openapi_document() -> dict:
    """OpenAPI 3.0 description of ROUTES."""
    paths: dict = {}
    for method, pattern, handler, needs_auth, summary, body in ROUTES:
        op = {"operationId": handler, "summary": summary, "responses": {
            "200": {"description": "Success envelope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ok"}}}},
            "default": {"description": "Error envelope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}
        if pattern.startswith("/ws/"):
            op["responses"] = {"101": {"description": "Switching Protocols (WebSocket; see messenger/README.md)"},
                               "426": {"description": "Upgrade required"}}
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in re.findall(r"\{(\w+)\}", pattern)]
        if handler == "history":
            params += [{"name": "before", "in": "query", "schema": {"type": "integer"}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}}]
        if handler == "admin_audit":
            params += [{"name": n, "in": "query", "schema": {"type": "integer"}} for n in ("from", "to")]
            op["responses"]["200"] = {"description": "NDJSON, one audit record a line",
                                      "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}
        if handler == "admin_rotate_keys":
            params += [{"name": "reencrypt", "in": "query", "schema": {"type": "integer", "enum": [0, 1], "default": 1}}]
        if handler == "admin_stats":
            params += [{"name": "hours", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 168}}]
        if handler == "search":
            params += [{"name": "q", "in": "query", "required": True, "schema": {"type": "string"}}]
        if params:
            op["parameters"] = params
        if needs_auth:
            op["security"] = [{"bearer": []}]
        elif handler.startswith("admin_"):
            op["security"] = [{"adminToken": []}]
        if body:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _schema(BODIES[body])}}}
        paths.setdefault(pattern, {})[method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "CF Messenger API", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                                "adminToken": {"type": "http", "scheme": "bearer",
                                               "description": "the ADMIN_TOKEN secret"}},
            "schemas": {
                "Ok": {"type": "object", "required": ["ok", "data", "requestId"],
                       "properties": {"ok": {"type": "boolean", "enum": [True]}, "data": {}, "requestId": {"type": "string"}}},
                "Error": {"type": "object", "required": ["ok", "error", "requestId"],
                          "properties": {"ok": {"type": "boolean", "enum": [False]}, "requestId": {"type": "string"},
                                         "error": {"type": "object", "required": ["code", "message"],
                                                   "properties": {"code": {"type": "string", "enum": sorted(ERRORS)},
                                                                  "message": {"type": "string"}}}}},
            },
        },
    }


def _schema(spec: dict) -> dict:
    props, required = {}, []
    for name, (types, req, _check) in spec.items():
        kind = ("boolean" if bool in types else "number" if float in types else "integer" if int in types
                else "string")
        props[name] = {"type": kind}
        if req:
            required.append(name)
    out = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


# -- the worker ---------------------------------------------------------------------------------

class Default(WorkerEntrypoint):
    """Routes HTTP and WebSocket requests, consumes the delivery queue, runs the crons."""

    async def fetch(self, request):
        # Cloudflare's ray id when it is one (Cloudflare sets cf-ray itself); anything else a client
        # sent would carry its text into answers and the audit trail: a generated id instead.
        ray = request.headers.get("cf-ray") or ""
        rid = ray if _RAY_ID.fullmatch(ray) else uuid.uuid4().hex[:16]
        _REQUEST_ID.set(rid)
        url = urlsplit(request.url)
        path = url.path
        if request.method == "OPTIONS":
            return self._cors(request, Response(None, status=204))
        for method, rx, handler, needs_auth, _pattern in _COMPILED:
            m = rx.match(path)
            if not m:
                continue
            if method != request.method:
                continue
            try:
                claims = await self._auth(request) if needs_auth else None
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                result = await getattr(self, "_" + handler)(request, claims, query, **m.groupdict())
                if isinstance(result, Response):
                    return result
                return self._envelope(request, {"ok": True, "data": result, "requestId": rid}, 200)
            except ApiError as error:
                return self._envelope(request, {"ok": False, "error": {"code": error.code, "message": error.message},
                                                "requestId": rid}, error.status, error.headers)
            except ProtocolError as error:
                return self._envelope(request, {"ok": False, "error": {"code": error.code, "message": error.message},
                                                "requestId": rid}, ERRORS.get(error.code, 400))
            except Exception as error:
                print(f"messenger: {request.method} {path} failed: {error!r}")
                return self._envelope(request, {"ok": False, "error": {"code": "internal", "message": "internal error"},
                                                "requestId": rid}, 500)
        if any(rx.match(path) for _, rx, _, _, _ in _COMPILED):
            return self._envelope(request, {"ok": False, "error": {"code": "method_not_allowed", "message":
                                  f"{request.method} is not allowed here"}, "requestId": rid}, 405)
        if path.startswith("/api/") or path.startswith("/ws/"):
            return self._envelope(request, {"ok": False, "error": {"code": "not_found", "message": "no such route"},
                                            "requestId": rid}, 404)
        assets = getattr(self.env, "ASSETS", None)
        if assets is not None:
            return await assets.fetch(request)
        return Response("Not Found", status=404)

    # -- envelope, CORS, auth -------------------------------------------------------------------

    def _cors(self, request, response):
        origin = request.headers.get("origin")
        allowed = [o.strip() for o in str(getattr(self.env, "ALLOWED_ORIGINS", "") or "").split(",") if o.strip()]
        if origin and origin in allowed:
            response.headers.set("access-control-allow-origin", origin)
            response.headers.set("vary", "Origin")
            response.headers.set("access-control-allow-headers", "authorization, content-type")
            response.headers.set("access-control-allow-methods", "GET, POST, PUT, DELETE, OPTIONS")
            response.headers.set("access-control-expose-headers",
                                 "retry-after, x-audit-records, x-audit-truncated, x-audit-next-from, x-audit-skipped")
        return response

    def _envelope(self, request, body: dict, status: int, headers: dict | None = None):
        return self._cors(request, Response.json(body, status=status, headers={**SECURITY_HEADERS, **(headers or {})}))

    async def _auth(self, request) -> dict:
        header = request.headers.get("authorization") or ""
        if not header.lower().startswith("bearer "):
            raise ApiError("not_authenticated", "send Authorization: Bearer <access token>")
        # No object on this path: the signature is checked here, the session against its KV marker.
        return _rpc(await sessions.http_claims(self.env, header[7:].strip()))

    async def _body(self, request, schema_name: str) -> dict:
        raw = await request.text()
        if len(raw.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise ApiError("too_large", f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        obj = loads(raw, "request body is not valid JSON") if raw.strip() else {}
        return validate(obj, BODIES[schema_name])

    # -- public routes --------------------------------------------------------------------------

    async def _health(self, request, claims, query):
        return {"status": "ok", "time": Date.now()}

    async def _openapi(self, request, claims, query):
        return Response.json(openapi_document(), headers={"access-control-allow-origin": "*"})

    async def _emoticon_table(self, request, claims, query):
        return emoticons.table()

    async def _personas(self, request, claims, query):
        return [{k: p[k] for k in ("id", "username", "name", "presence", "message")} for p in bots.PERSONAS]

    async def _rum(self, request, claims, query):
        body = await self._body(request, "rum")
        if not body:
            raise ApiError("invalid_field", "send at least one of lcp, inp, cls")
        # One point per metric: blob2 names it, double1 is its value.  Nothing about who sent it.
        for metric in ("lcp", "inp", "cls"):
            if metric in body:
                events.emit(self.env, "rum", blobs=(metric,), doubles=(float(body[metric]),))
        return {"recorded": sorted(body)}

    async def _register(self, request, claims, query):
        body = await self._body(request, "register")
        # Each registration costs a scrypt and an account record: limited per client address.
        limiter = self.env.LIMITER.getByName("loginip:" + self._address_key(request))
        verdict = py(await limiter.take("register_ip"))
        if not verdict["ok"]:
            events.emit(self.env, "rate_limited", blobs=("register_ip",))
            if verdict.get("audit", True):  # the first refusal of a spell, not each one of a flood
                await self._audit(request, "rate_limited", "denied", reason="register_ip")
            raise _throttled("too many new accounts from this address", verdict["retryAfterMs"])
        hashed = auth.hash_password(body["password"])
        user = _rpc(await directory(self.env).createUser(body["username"], hashed, body.get("displayName", "")))
        session = await self._new_session(user["id"])
        await self._audit(request, "sign_up", "success", account=user["id"])
        return session

    async def _login(self, request, claims, query):
        body = await self._body(request, "login")
        found = await self._check_password(request, body["username"].strip().lower(), body["password"])
        session = await self._new_session(found["id"])
        events.emit(self.env, "login_success", blobs=("password",), user=found["id"])
        await self._audit(request, "sign_in", "success", account=found["id"])
        return session

    async def _check_password(self, request, username: str, password: str) -> dict:
        """The account's credentials record when `password` is right, under the sign-in throttle;
        raises `rate_limited` or `bad_credentials` (a counted failure) otherwise."""
        # Failures count per address (keyed hash, never the address itself) and per (account, address):
        # guesses from one address throttle that address, never the owner signing in from elsewhere.
        ip = self._address_key(request)
        per_ip = self.env.LIMITER.getByName("loginip:" + ip)
        account = self.env.LIMITER.getByName("login:" + username)
        # Each attempt is counted before the password is checked (concurrent guesses cannot overrun the
        # limits while scrypt runs) and refunded when the password was right.
        ip_verdict = py(await per_ip.take("login_ip"))
        if not ip_verdict["ok"]:
            events.emit(self.env, "rate_limited", blobs=("login_ip",))
            if ip_verdict.get("audit", True):  # the first refusal of a spell, not each one of a flood
                await self._audit(request, "rate_limited", "denied", reason="login_ip")
            raise _throttled("too many failed sign-ins from this address", ip_verdict["retryAfterMs"])
        verdict = py(await account.loginBegin(ip))
        if not verdict["ok"]:
            await per_ip.refund("login_ip", ip_verdict["at"])  # refused unchecked: not a failure
            events.emit(self.env, "rate_limited", blobs=("login",))
            if verdict.get("audit", True):  # the first refusal of a spell, not each one of a flood
                await self._audit(request, "rate_limited", "denied", reason="login_account")
            raise _throttled("too many failed sign-ins for this account", verdict["retryAfterMs"])
        found = py(await directory(self.env).credentials(username))
        stored = found["data"]["hash"] if found.get("ok") else _DUMMY_HASH
        if not auth.verify_password(password, stored) or not found.get("ok"):
            events.emit(self.env, "login_failure", blobs=("password",))
            await self._audit(request, "sign_in", "failure", reason="bad_credentials",
                              account=found["data"]["id"] if found.get("ok") else None)
            raise ApiError("bad_credentials", "wrong username or password")
        await account.loginEnd(ip, verdict["at"], True)
        await per_ip.refund("login_ip", ip_verdict["at"])
        return found["data"]

    def _address_key(self, request) -> str:
        """The client address as the limiters know it: a keyed hash, never the address itself."""
        return events.keyed_hash(self.env, "signin-address:" + client_address(request))

    async def _new_session(self, uid: str) -> dict:
        # The Directory creates the session and signs its first access token (it holds the private key).
        created = _rpc(await directory(self.env).createSession(uid))
        out = created["tokens"]
        out["refreshToken"] = created["refreshToken"]
        return out

    async def _refresh(self, request, claims, query):
        body = await self._body(request, "refresh")
        sid = auth.refresh_session_id(body["refreshToken"])
        if sid is None:
            await self._audit(request, "token_refresh", "failure", reason="refresh_invalid")
            raise ApiError("refresh_invalid", "refresh token invalid")
        result = py(await sessions.session_stub(self.env, sid).refresh(body["refreshToken"]))
        if not result.get("ok"):
            if result.get("revoked"):
                await close_sessions(self.env, result["revoked"], "session_revoked")
                events.emit(self.env, "session_revoked", blobs=("refresh_reuse",))
                await self._audit(request, "session_revoked", "success", reason="refresh_reuse",
                                  count=len(result["revoked"]))
            await self._audit(request, "token_refresh", "failure", reason=result["code"])
            raise ApiError(result["code"], result["message"])
        # Only the Directory can sign (the private key never leaves its storage): one call per refresh.
        out = _rpc(await directory(self.env).issueToken(json.dumps(result["data"]["session"])))
        out["refreshToken"] = result["data"]["refreshToken"]
        events.emit(self.env, "token_refresh", user=out["user"]["id"])
        await self._audit(request, "token_refresh", "success", account=out["user"]["id"])
        return out

    # -- signed-in routes -----------------------------------------------------------------------

    async def _logout(self, request, claims, query):
        body = await self._body(request, "logout")
        everywhere = bool(body.get("everywhere"))
        sids = _rpc(await directory(self.env).sessionsOf(claims["sub"])) if everywhere else [claims["sid"]]
        revoked = await sessions.revoke_sessions(self.env, sids)
        closed = await close_sessions(self.env, revoked, "session_revoked")
        events.emit(self.env, "session_revoked", blobs=("everywhere" if everywhere else "logout",))
        await self._audit(request, "sign_out", "success", account=claims["sub"], reason="everywhere" if everywhere
                          else "this_session", count=len(revoked))
        return {"revokedSessions": len(revoked), "closedSockets": closed}

    async def _me(self, request, claims, query):
        # From the verified token, with the display name chosen since sign-in (presence holds it).
        user = {"id": claims["sub"], "username": claims["usr"], "displayName": claims["name"]}
        entry = py(await presence(self.env).own(claims["sub"]))
        if entry.get("name"):  # a display name chosen since sign-in
            user["displayName"] = entry["name"]
        user.update({"status": entry["status"], "message": entry.get("message", ""), "sessionId": claims["sid"]})
        return user

    async def _set_status(self, request, claims, query):
        body = await self._body(request, "status")
        return py(await presence(self.env).setStatus(claims["sub"], json.dumps(body)))

    async def _delete_me(self, request, claims, query):
        body = await self._body(request, "delete_me")
        # The same check, throttle and failure count as sign-in: a stolen access token cannot erase
        # the account, nor be used to guess its password faster than the sign-in form allows.
        found = await self._check_password(request, claims["usr"], body["password"])
        if found["id"] != claims["sub"]:  # the name belongs to a newer account now
            raise ApiError("bad_credentials", "wrong username or password")
        receipt = await accounts.erase_account(self.env, claims["sub"])
        if receipt is None:
            raise ApiError("not_found", "no such user")
        receipt["by"] = "self"
        events.emit(self.env, "account_deleted", blobs=("self",))
        await self._audit(request, "account_deleted", "success", account=claims["sub"], actor="self")
        return receipt

    async def _admin(self, request, action: str) -> None:
        """The ADMIN_TOKEN bearer check of every admin route; a refusal is audited too."""
        expected = str(getattr(self.env, "ADMIN_TOKEN", "") or "")
        if not expected:
            raise ApiError("forbidden", "the admin API is disabled (no ADMIN_TOKEN secret)")
        # Wrong tokens count per client address: past the limit nothing is checked (no brute force of
        # the token), and only the first refusal of the spell is audited (no flood of the trail).
        limiter = self.env.LIMITER.getByName("loginip:" + self._address_key(request))
        verdict = py(await limiter.peek("admin_ip"))
        if not verdict["ok"]:
            events.emit(self.env, "rate_limited", blobs=("admin_ip",))
            if verdict.get("audit", True):
                await self._audit(request, "rate_limited", "denied", reason="admin_ip")
            raise _throttled("too many wrong admin tokens from this address", verdict["retryAfterMs"])
        header = request.headers.get("authorization") or ""
        if not header.lower().startswith("bearer "):
            await limiter.take("admin_ip")
            await self._audit(request, "admin_action", "denied", actor="admin", reason=action)
            raise ApiError("not_authenticated", "send Authorization: Bearer <admin token>")
        if not hmac.compare_digest(header[7:].strip().encode(), expected.encode()):
            await limiter.take("admin_ip")
            await self._audit(request, "admin_action", "denied", actor="admin", reason=action)
            raise ApiError("forbidden", "not the admin token")

    async def _admin_delete_user(self, request, claims, query, user):
        """An operator erases any account, authenticated by the ADMIN_TOKEN secret (not a user token)."""
        await self._admin(request, "delete_user")
        if not re.fullmatch(r"[a-z0-9]{1,40}", user):
            raise ApiError("not_found", "no such user")
        receipt = await accounts.erase_account(self.env, user)
        if receipt is None:
            await self._audit(request, "admin_action", "failure", actor="admin", reason="delete_user")
            raise ApiError("not_found", "no such user")
        receipt["by"] = "admin"
        events.emit(self.env, "account_deleted", blobs=("admin",))
        await self._audit(request, "account_deleted", "success", account=user, actor="admin")
        await self._audit(request, "admin_action", "success", account=user, actor="admin", reason="delete_user")
        return receipt

    async def _admin_audit(self, request, claims, query):
        """NDJSON of the audit records with from <= ts < to (ms since epoch; default the last 24 h)."""
        await self._admin(request, "audit_export")
        now = int(Date.now())
        to_ms = _int_param(query, "to", now + 1)  # (exclusive) what happened up to this instant
        from_ms = _int_param(query, "from", to_ms - audit.DAY_MS)
        if max(from_ms, to_ms) > 253_402_300_799_999:  # past 9999-12-31 no date (nor R2 key) exists
            raise ApiError("invalid_field", "from and to must be before year 10000")
        if from_ms >= to_ms:
            raise ApiError("invalid_field", "from must be before to")
        if to_ms - from_ms > 31 * audit.DAY_MS:
            raise ApiError("invalid_field", "export at most 31 days at a time")
        await self._audit(request, "admin_action", "success", actor="admin", reason="audit_export")
        await self.env.AUDIT.getByName("log").flush()  # what is still buffered is exported too
        cap = audit.settings(self.env)["exportMax"]
        lines, next_from, skipped = await audit.read(self.env, from_ms, to_ms, cap)
        headers = {**SECURITY_HEADERS, "content-type": "application/x-ndjson; charset=utf-8",
                   "x-audit-records": str(len(lines))}
        if next_from is not None:  # more records in the range: ask again with from=<next-from>
            headers["x-audit-truncated"] = "true"
            headers["x-audit-next-from"] = str(next_from)
        if skipped:
            headers["x-audit-skipped"] = str(skipped)
        return self._cors(request, Response("".join(line + "\n" for line in lines), headers=headers))

    async def _admin_stats(self, request, claims, query):
        """Hourly counts of logins, messages, rate limits and AI calls, from the Analytics Engine SQL API."""
        await self._admin(request, "stats")
        hours = _int_param(query, "hours", 24)
        if not 1 <= hours <= 168:
            raise ApiError("invalid_field", "hours must be 1..168")
        await self._audit(request, "admin_action", "success", actor="admin", reason="stats")
        try:
            return await dashboard.hourly(self.env, request.url, hours, int(Date.now()))
        except dashboard.StatsUnavailable as error:
            raise ApiError("unavailable", str(error), 503) from None

    async def _audit(self, request, event: str, outcome: str, **fields) -> None:
        await audit.record(self.env, event, outcome, request_id=_REQUEST_ID.get(),
                           client=self._address_key(request), **fields)

    async def _admin_rotate_keys(self, request, claims, query):
        """An operator rotates the message data key (and re-wraps under the current master key)."""
        await self._admin(request, "rotate_keys")
        flag = query.get("reencrypt", "1")
        if flag not in ("0", "1"):  # (any other word used to mean "yes": `false` re-encrypted everything)
            raise ApiError("invalid_field", "reencrypt must be 0 or 1")
        result = await rekey.rotate_now(self.env, reencrypt_all=flag == "1")
        await self._audit(request, "admin_action", "success", actor="admin", reason="rotate_keys")
        return result

    async def _users(self, request, claims, query):
        me = claims["sub"]
        users = _rpc(await directory(self.env).listUsers())
        snap = py(await presence(self.env).snapshot())
        unread = py(await self.env.INBOX.getByName(me).counts())
        groups = {"bots": [], "rooms": [], "online": [], "offline": []}
        for p in bots.PERSONAS:
            room = dm_room(me, p["id"])
            groups["bots"].append({"id": p["id"], "username": p["username"], "displayName": p["name"], "status": p["presence"],
                                   "message": p["message"], "room": room, "unread": 0, "bot": True})
        for name, title in PUBLIC_ROOMS.items():
            groups["rooms"].append({"room": name, "title": title})
        for u in users:
            if u["id"] == me:
                continue
            entry = snap.get(u["id"], {"status": "offline", "message": ""})
            room = dm_room(me, u["id"])
            item = {**u, "status": entry["status"], "message": entry.get("message", ""), "room": room,
                    "unread": unread.get(room, {}).get("unread", 0)}
            if entry.get("name"):
                item["displayName"] = entry["name"]
            groups["offline" if entry["status"] == "offline" else "online"].append(item)
        return groups

    async def _rooms(self, request, claims, query):
        me = claims["sub"]
        users = _rpc(await directory(self.env).listUsers())
        dms = [{"room": dm_room(me, u["id"]), "with": u} for u in users if u["id"] != me]
        dms += [{"room": dm_room(me, p["id"]), "with": {"id": p["id"], "username": p["username"], "displayName": p["name"]}}
                for p in bots.PERSONAS]
        return {"public": [{"room": k, "title": v} for k, v in PUBLIC_ROOMS.items()], "direct": dms}

    async def _history(self, request, claims, query, room):
        if not valid_room(room):
            raise ApiError("not_found", "no such room")
        if not may_join(room, claims["sub"]):
            raise ApiError("forbidden", "only the two participants may read a direct-message room")
        before, limit = _int_param(query, "before", 0), _int_param(query, "limit", 50)
        return _rpc(await self.env.CHAT.getByName(room).history(room, claims["sub"], before, limit))

    async def _search(self, request, claims, query):
        q = query.get("q", "")
        if not 1 <= len(q) <= 200:
            raise ApiError("invalid_field", "q must be 1..200 characters")
        return {"results": await archive.search(self.env, claims["sub"], q)}

    async def _inbox(self, request, claims, query):
        box = self.env.INBOX.getByName(claims["sub"])
        return {"pointers": py(await box.pending()), "counts": py(await box.counts())}

    async def _presence_lookup(self, request, claims, query, user):
        if not re.fullmatch(r"[a-z0-9]{1,40}", user):  # user ids' shape; anything else would only reach KV's key limit
            raise ApiError("not_found", "no such user")
        raw = await self.env.KV.get(f"presence:{user}") if getattr(self.env, "KV", None) is not None else None
        if raw is None:
            return {"id": user, "status": "offline", "source": "kv"}
        entry = json.loads(raw)
        entry["source"] = "kv"
        return entry

    # -- WebSockets -----------------------------------------------------------------------------

    async def _upgrade(self, request, stub, extra_headers: dict):
        if (request.headers.get("upgrade") or "").lower() != "websocket":
            raise ApiError("bad_request", "expected a WebSocket upgrade", 426)
        headers = {"upgrade": "websocket", **extra_headers}
        offered = [p.strip() for p in (request.headers.get("sec-websocket-protocol") or "").split(",") if p.strip()]
        bearer = next((p[len("bearer."):] for p in offered if p.startswith("bearer.")), None)
        if bearer:
            # Sub-protocol auth: verified here, passed to the object in a header only we can set.
            claims = _rpc(await sessions.socket_claims(self.env, bearer))
            headers[TRUSTED_USER_HEADER] = json.dumps(claims)
        return await stub.fetch(Request(request.url, headers=headers))

    async def _ws_presence(self, request, claims, query):
        return await self._upgrade(request, presence(self.env), {})

    async def _ws_room(self, request, claims, query, room):
        if not valid_room(room):
            raise ApiError("not_found", "no such room")
        return await self._upgrade(request, self.env.CHAT.getByName(room), {"x-messenger-room": room})

    # -- queue and crons ------------------------------------------------------------------------

    async def queue(self, batch, env=None, ctx=None):
        """Offline DM delivery: a pointer lands in the recipient's inbox, then their buddy list hears of it."""
        for message in batch.messages:
            try:
                pointer = py(message.body)
                if isinstance(pointer, str):
                    pointer = json.loads(pointer)
                counts = py(await self.env.INBOX.getByName(pointer["to"]).add(json.dumps(pointer)))
                frame = {"type": "inbox", "room": pointer["room"], "seq": pointer["seq"], "from": pointer["from"],
                         "name": pointer.get("name", ""), "unread": counts.get(pointer["room"], {}).get("unread", 1)}
                await presence(self.env).notify(pointer["to"], json.dumps(frame))
                events.emit(self.env, "delivery_latency", blobs=("offline",), doubles=(Date.now() - pointer["ts"],))
                message.ack()
            except Exception as error:
                print(f"delivery: attempt {message.attempts} failed: {error!r}")
                message.retry(delaySeconds=min(300, 2 ** max(1, message.attempts)))

    async def scheduled(self, controller, env=None, ctx=None):
        if controller.cron == ROTATE_CRON:
            await directory(self.env).rotateKeys()
        elif controller.cron == ARCHIVE_CRON:
            yesterday = bots.day_of(controller.scheduledTime - 86_400_000)
            at = controller.scheduledTime
            # Each step on its own: one failing (R2 or D1 down, a bad var) must not stop the others.
            failed = []
            for name, step in (("archive export", lambda: archive.export_day(self.env, yesterday)),
                               # Retention for the cold copies (each room purges its own log with its alarm).
                               ("retention", lambda: retention.purge_cold(self.env, at)),
                               # Message keys: rewrap, rotate when due, legacy bodies sealed.
                               ("key maintenance", lambda: rekey.maintain(self.env)),
                               ("audit retention", lambda: audit.purge(self.env, at))):
                try:
                    await step()
                except Exception as error:
                    print(f"messenger: daily cron: {name} failed: {error!r}")
                    failed.append(name)
            if failed:  # the cron run is reported failed (as Cloudflare shows it) once the rest ran
                raise RuntimeError(f"daily cron steps failed: {', '.join(failed)}")


def _int_param(query: dict, name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError("invalid_field", f"{name} must be an integer") from None
    if value < 0:
        raise ApiError("invalid_field", f"{name} must not be negative")
    return value
