"""A small client for the Warden gateway, standard library only (Python 3.9 or newer).

Copy this one file into your project. It speaks the gateway's HTTP API (port 8004 by default):

    from warden_client import WardenClient, WardenDenied

    warden = WardenClient("http://127.0.0.1:8004", "demo-refund-agent-key", "refund-agent")
    outcome = warden.execute("issue_refund", {"order_id": "ORD-1002", "amount": 25, "reason": "late"})
    if outcome.status == "held":
        outcome = warden.wait_for_approval(outcome.approval_id, timeout=300)

    @warden.guard("lookup_order")
    def lookup_order(order_id: str) -> dict:
        \"\"\"Get an order with its items and balance.\"\"\"  # the gateway runs the tool

See README.md beside this file.
"""

from __future__ import annotations

import functools
import inspect
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar

__all__ = [
    "WardenClient",
    "WardenApprover",
    "WardenResult",
    "WardenError",
    "WardenTransportError",
    "WardenConnectionError",
    "WardenTimeout",
    "WardenHTTPError",
    "WardenAuthError",
    "WardenUnavailable",
    "WardenDenied",
    "WardenToolFailed",
    "WardenApprovalTimeout",
]

__version__ = "0.1.0"

USER_AGENT = "warden-client-python/" + __version__
# The gateway caps one long-poll at 60 seconds.
MAX_POLL_SECONDS = 60


# ---------------------------------------------------------------------------------------------
# Errors


class WardenError(Exception):
    """Base class of everything this module raises."""


class WardenTransportError(WardenError):
    """No usable HTTP answer: the connection failed, broke, or the answer was not Warden's JSON.

    ``idempotency_key`` is the key the call was sent with (``execute`` only): pass it again as
    ``execute(..., idempotency_key=...)`` and a retry is answered with the first decision instead
    of deciding and running the call a second time.
    """

    def __init__(self, message: str, idempotency_key: Optional[str] = None) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key


class WardenConnectionError(WardenTransportError):
    """The gateway could not be reached, or the connection broke before a full answer."""


class WardenTimeout(WardenTransportError, TimeoutError):
    """A request got no answer within its timeout."""


class WardenHTTPError(WardenError):
    """The gateway refused the request itself (bad input, credentials, conflicts, outages).

    A decision about the tool call is not an error: denials come back as a ``WardenResult``
    with ``status == "denied"``.
    """

    def __init__(
        self,
        http_status: int,
        code: str,
        message: str,
        request_id: Optional[str] = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{http_status} {code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.body = body


class WardenAuthError(WardenHTTPError):
    """401: the key (or approver token) is missing, unknown, or belongs to another agent."""


class WardenUnavailable(WardenHTTPError):
    """5xx without a decision: a dependency the decision needs is down; nothing was run."""


class WardenDenied(WardenError):
    """Raised by ``guard``: the call was denied (by a layer, or by the person who reviewed it)."""

    def __init__(self, code: str, reason: str, result: Optional["WardenResult"] = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.result = result


class WardenToolFailed(WardenError):
    """Raised by ``guard``: the call was allowed but the tool failed (``upstream_error`` ...)."""

    def __init__(self, code: str, message: str, result: Optional["WardenResult"] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.result = result


class WardenApprovalTimeout(WardenError, TimeoutError):
    """``wait_for_approval`` ran out of time; the approval is still pending (wait again)."""

    def __init__(self, approval_id: str, timeout: float) -> None:
        super().__init__(f"approval {approval_id} still pending after {timeout:g} s")
        self.approval_id = approval_id
        self.timeout = timeout


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class WardenResult:
    """What happened to one tool call.

    ``status`` is one of:

    - ``executed``: allowed (or approved) and run; ``result`` is the tool's answer.
    - ``denied``: refused; ``code`` and ``message`` say why (``rate_limited`` comes with
      ``retry_after`` seconds; a person's denial is ``approval_denied``, an expired hold
      ``approval_expired``).
    - ``held``: waiting for a person; ``approval_id`` and ``expires_at`` are set.
    - ``failed``: allowed (or approved) but the tool failed; ``code`` and ``message`` say how.
    """

    status: str
    http_status: int
    decision: Optional[str] = None
    code: Optional[str] = None
    message: Optional[str] = None
    result: Any = None
    approval_id: Optional[str] = None
    expires_at: Optional[str] = None
    request_id: Optional[str] = None
    layer: Optional[str] = None
    risk: Optional[Dict[str, Any]] = None
    retry_after: Optional[float] = None
    idempotency_key: Optional[str] = None
    replayed: bool = False
    body: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "executed"


# ---------------------------------------------------------------------------------------------
# HTTP


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The gateway never redirects; following one would send the bearer secret elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None


@dataclass
class _Reply:
    status: int
    body: Any
    headers: Mapping[str, str]


class _Http:
    def __init__(self, base_url: str, secret: str, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if not isinstance(secret, str) or not secret or any(c.isspace() for c in secret):
            raise ValueError("the key or token must be a non-empty string without spaces")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self._secret = secret
        self._opener = urllib.request.build_opener(_NoRedirect)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> _Reply:
        data = None
        all_headers = {
            "Authorization": "Bearer " + self._secret,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        req = urllib.request.Request(
            self.base_url + path, data=data, headers=all_headers, method=method
        )
        limit = self.timeout if timeout is None else timeout
        try:
            with self._opener.open(req, timeout=limit) as resp:
                return _Reply(resp.status, _json(resp.read(), resp.status), resp.headers)
        except urllib.error.HTTPError as err:
            # A 4xx/5xx still carries the gateway's JSON body.
            try:
                raw = err.read()
            except (OSError, ValueError) as read_err:
                raise _transport(read_err, method, path, limit) from read_err
            finally:
                err.close()
            return _Reply(err.code, _json(raw, err.code), err.headers)
        except urllib.error.URLError as err:
            raise _transport(err.reason, method, path, limit) from err
        except (OSError, ValueError) as err:
            # socket.timeout (TimeoutError), resets, http.client's BadStatusLine / IncompleteRead.
            raise _transport(err, method, path, limit) from err


def _transport(reason: Any, method: str, path: str, limit: float) -> WardenTransportError:
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return WardenTimeout(f"{method} {path}: no answer within {limit:g} s")
    if isinstance(reason, WardenTransportError):
        return reason
    return WardenConnectionError(f"{method} {path}: {reason}")


def _json(raw: bytes, status: int) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        snippet = raw[:120].decode("utf-8", "replace")
        raise WardenTransportError(
            f"HTTP {status}: the answer is not JSON (is this a Warden gateway?): {snippet!r}"
        ) from None


def _error_of(reply: _Reply) -> WardenHTTPError:
    body = reply.body if isinstance(reply.body, dict) else {}
    err = body.get("error") if isinstance(body.get("error"), dict) else {}
    code = str(err.get("code") or f"http_{reply.status}")
    message = str(err.get("message") or "the gateway refused the request")
    request_id = body.get("request_id")
    if reply.status == 401:
        cls: type = WardenAuthError
    elif reply.status >= 500:
        cls = WardenUnavailable
    else:
        cls = WardenHTTPError
    return cls(reply.status, code, message, request_id, reply.body)


def _retry_after(headers: Mapping[str, str]) -> Optional[float]:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


# ---------------------------------------------------------------------------------------------
# The agent's client

F = TypeVar("F", bound=Callable[..., Any])


class WardenClient:
    """An agent's connection to the gateway: ``execute`` a tool call, wait for approvals.

    ``agent_id`` is the agent the key belongs to (the gateway checks they match). ``timeout`` is
    the socket timeout of every request, in seconds. ``retries`` is how many times ``execute``
    retries after a transport failure, a 5xx outage or ``idempotency_in_progress``; each call is
    sent with an ``Idempotency-Key`` so a retry is answered with the first decision and never runs
    the tool twice. With ``retries=0`` no key is sent unless you pass one.
    """

    def __init__(
        self,
        base_url: str,
        agent_key: str,
        agent_id: str,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        if not isinstance(agent_id, str) or not agent_id:
            raise ValueError("agent_id must be the id of the agent the key belongs to")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self._http = _Http(base_url, agent_key, timeout)
        self.base_url = self._http.base_url
        self.agent_id = agent_id
        self.timeout = self._http.timeout
        self.retries = int(retries)
        self.backoff = float(backoff)

    def __repr__(self) -> str:  # never show the key
        return f"WardenClient({self.base_url!r}, agent_id={self.agent_id!r})"

    def execute(
        self,
        tool: str,
        params: Mapping[str, Any],
        session_id: Optional[str] = None,
        context: Optional[Mapping[str, Any]] = None,
        *,
        delegation: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> WardenResult:
        """Send one tool call through the gateway (``POST /gateway/execute``).

        Returns a ``WardenResult`` for every decision (executed, denied, held, failed). Raises
        ``WardenAuthError`` for a bad key, ``WardenHTTPError`` for a request the gateway refused
        as malformed or conflicting, ``WardenUnavailable`` and ``WardenTransportError`` (or
        ``WardenTimeout``) when no decision could be had after the retries.
        """
        body: Dict[str, Any] = {"agent_id": self.agent_id, "tool": tool, "params": dict(params)}
        if session_id is not None:
            body["session_id"] = session_id
        if context is not None:
            body["context"] = dict(context)
        if delegation is not None:
            body["delegation"] = delegation
        key = idempotency_key
        if key is None and self.retries > 0:
            key = "py-" + uuid.uuid4().hex
        headers = {"Idempotency-Key": key} if key is not None else {}
        # Without a key a retry could decide and run the call twice: send it once only.
        attempts = 1 + (self.retries if key is not None else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                reply = self._http.request(
                    "POST", "/gateway/execute", body, headers=headers, timeout=timeout
                )
            except WardenTransportError as err:
                err.idempotency_key = key
                if last:
                    raise
                self._sleep(attempt, None)
                continue
            decision = reply.body.get("decision") if isinstance(reply.body, dict) else None
            if decision is None and not last and _retryable(reply):
                self._sleep(attempt, _retry_after(reply.headers))
                continue
            return _call_result(reply, key)
        raise AssertionError("unreachable")  # pragma: no cover

    def wait_for_approval(
        self, approval_id: str, timeout: float = 300.0, *, poll: float = 30.0
    ) -> WardenResult:
        """Wait until a held call is decided (long-polling ``GET /gateway/approvals/{id}``).

        Returns ``executed`` (approved and run, with the tool's ``result``), ``failed`` (approved,
        the tool failed), or ``denied`` (``approval_denied`` or ``approval_expired``). Raises
        ``WardenApprovalTimeout`` if it is still pending after ``timeout`` seconds.
        """
        if not timeout >= 0:
            raise ValueError("timeout must be 0 or more")
        deadline = time.monotonic() + timeout
        path = "/gateway/approvals/" + _quote(approval_id)
        while True:
            left = deadline - time.monotonic()
            wait = int(max(0, min(left, poll, MAX_POLL_SECONDS)))
            try:
                reply = self._http.request(
                    "GET", f"{path}?wait={wait}", timeout=wait + self.timeout
                )
            except WardenTransportError:
                # Reading is safe to repeat; give up only at the deadline.
                if deadline - time.monotonic() <= 0:
                    raise
                time.sleep(min(self.backoff, max(0.0, deadline - time.monotonic())))
                continue
            if not isinstance(reply.body, dict) or "approval" not in reply.body:
                if reply.status >= 500 and deadline - time.monotonic() > 0:
                    time.sleep(min(self.backoff, max(0.0, deadline - time.monotonic())))
                    continue
                raise _error_of(reply)
            result = _approval_result(reply)
            if result is not None:
                return result
            if deadline - time.monotonic() <= 0:
                raise WardenApprovalTimeout(approval_id, timeout)
            if wait == 0:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def guard(
        self,
        tool_name: str,
        *,
        session_id: Optional[str] = None,
        context: Optional[Mapping[str, Any]] = None,
        approval_timeout: float = 300.0,
    ) -> Callable[[F], F]:
        """Decorator: calling the function sends the call through Warden instead of running it.

        The function's signature says which parameters the tool takes (arguments are bound to it,
        defaults included, ``None`` left out); its body is not run: the gateway runs the
        configured tool. Returns the tool's result; a held call waits up to ``approval_timeout``
        seconds for a person. Raises ``WardenDenied(code, reason)`` when denied (by a layer or a
        person), ``WardenToolFailed`` when the tool failed, ``WardenApprovalTimeout`` when no one
        decided in time.
        """

        def decorate(fn: F) -> F:
            signature = inspect.signature(fn)

            @functools.wraps(fn)
            def call(*args: Any, **kwargs: Any) -> Any:
                params = _params_of(signature, args, kwargs)
                outcome = self.execute(tool_name, params, session_id=session_id, context=context)
                if outcome.status == "held":
                    assert outcome.approval_id is not None
                    outcome = self.wait_for_approval(outcome.approval_id, approval_timeout)
                return _unwrap(outcome)

            call.__wrapped_tool__ = tool_name  # type: ignore[attr-defined]
            return call  # type: ignore[return-value]

        return decorate

    def _sleep(self, attempt: int, retry_after: Optional[float]) -> None:
        delay = self.backoff * (2**attempt) * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, 30.0))
        time.sleep(delay)


def _retryable(reply: _Reply) -> bool:
    """An answer without a decision that a retry with the same key may get past."""
    if reply.status >= 500:
        return True  # an outage before anything ran gives the key back (decision 0012)
    code = reply.body.get("error", {}).get("code") if isinstance(reply.body, dict) else None
    return reply.status == 409 and code == "idempotency_in_progress"


def _call_result(reply: _Reply, key: Optional[str]) -> WardenResult:
    body = reply.body
    decision = body.get("decision") if isinstance(body, dict) else None
    if decision is None or reply.status == 401:
        raise _error_of(reply)
    err = body.get("error") if isinstance(body.get("error"), dict) else {}
    common = dict(
        http_status=reply.status,
        decision=decision,
        request_id=body.get("request_id"),
        layer=body.get("layer"),
        risk=body.get("risk"),
        idempotency_key=key,
        replayed=reply.headers.get("Idempotent-Replayed") == "true",
        body=body,
    )
    if decision == "allow" and reply.status == 200:
        return WardenResult("executed", result=body.get("result"), **common)
    if decision == "allow":
        return WardenResult(
            "failed", code=err.get("code"), message=err.get("message"), **common
        )
    if decision == "approval_required":
        return WardenResult(
            "held",
            approval_id=body.get("approval_id"),
            expires_at=body.get("expires_at"),
            message=body.get("reason"),
            **common,
        )
    if decision == "deny":
        return WardenResult(
            "denied",
            code=err.get("code"),
            message=err.get("message"),
            retry_after=_retry_after(reply.headers),
            **common,
        )
    raise WardenTransportError(f"unknown decision {decision!r} from the gateway")


def _approval_result(reply: _Reply) -> Optional[WardenResult]:
    """The outcome of a settled approval, or None while it is pending (or approved, not run)."""
    approval = reply.body["approval"]
    status = approval.get("status")
    common = dict(
        http_status=reply.status,
        approval_id=approval.get("id"),
        expires_at=approval.get("expires_at"),
        request_id=approval.get("request_id"),
        layer=approval.get("layer"),
        risk=approval.get("risk"),
        body=reply.body,
    )
    if status == "approved" and approval.get("executed_at"):
        if approval.get("outcome") == "ok":
            return WardenResult("executed", decision="allow", result=approval.get("result"), **common)
        result = approval.get("result")
        message = result.get("error") if isinstance(result, dict) else None
        # The gateway's tool runner: `error` is upstream_error, `unknown` an upstream_timeout
        # (the tool may or may not have acted).
        timed_out = approval.get("outcome") == "unknown"
        return WardenResult(
            "failed",
            decision="allow",
            code="upstream_timeout" if timed_out else "upstream_error",
            message=str(message or f"the tool's outcome is {approval.get('outcome')}"),
            result=result,
            **common,
        )
    if status == "denied":
        reason = approval.get("comment") or f"denied by {approval.get('decided_by') or 'a person'}"
        return WardenResult(
            "denied", decision="deny", code="approval_denied", message=str(reason), **common
        )
    if status == "expired":
        return WardenResult(
            "denied",
            decision="deny",
            code="approval_expired",
            message="no one decided the held call before it expired",
            **common,
        )
    return None


def _params_of(
    signature: inspect.Signature, args: tuple, kwargs: Dict[str, Any]
) -> Dict[str, Any]:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    params: Dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise TypeError("a guarded tool takes named parameters only, not *args")
        elif kind is inspect.Parameter.VAR_KEYWORD:
            params.update({k: v for k, v in value.items() if v is not None})
        elif value is not None:
            params[name] = value
    return params


def _unwrap(outcome: WardenResult) -> Any:
    if outcome.status == "executed":
        return outcome.result
    if outcome.status == "denied":
        raise WardenDenied(outcome.code or "denied", outcome.message or "denied", outcome)
    if outcome.status == "failed":
        raise WardenToolFailed(outcome.code or "upstream_error", outcome.message or "", outcome)
    raise WardenError(f"unexpected outcome {outcome.status!r}")


# ---------------------------------------------------------------------------------------------
# An approver's client (for scripts and bots that decide held calls)


class WardenApprover:
    """Decides held calls with an approver token (``POST /gateway/approve``). Never retried."""

    def __init__(self, base_url: str, approver_token: str, *, timeout: float = 30.0) -> None:
        self._http = _Http(base_url, approver_token, timeout)
        self.base_url = self._http.base_url

    def __repr__(self) -> str:
        return f"WardenApprover({self.base_url!r})"

    def pending(self) -> list:
        """The held calls waiting for a person (``GET /gateway/pending-approvals``)."""
        reply = self._http.request("GET", "/gateway/pending-approvals")
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise _error_of(reply)
        return list(reply.body.get("approvals", []))

    def approve(self, approval_id: str, comment: Optional[str] = None) -> Dict[str, Any]:
        return self._decide(approval_id, "approve", comment)

    def deny(self, approval_id: str, comment: Optional[str] = None) -> Dict[str, Any]:
        return self._decide(approval_id, "deny", comment)

    def _decide(self, approval_id: str, decision: str, comment: Optional[str]) -> Dict[str, Any]:
        body: Dict[str, Any] = {"approval_id": approval_id, "decision": decision}
        if comment is not None:
            body["comment"] = comment
        reply = self._http.request("POST", "/gateway/approve", body)
        # 502/504 with an approval: approved, but the tool failed; the body says how.
        if isinstance(reply.body, dict) and "approval" in reply.body:
            return reply.body
        raise _error_of(reply)
