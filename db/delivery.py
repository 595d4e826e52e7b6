"""Sending what `db/notify.py` recorded: e-mail over SMTP, alerts to webhooks; retries and a log.

Every message is a `notification_deliveries` row before anything is sent. `deliver` tries the
pending rows, records each attempt on its row (`log`, `attempts`, `error`), waits
`CUSTSEG_NOTIFY_BACKOFF` seconds (doubling each round) and tries the failed ones again, up to
`CUSTSEG_NOTIFY_RETRIES` times; what still fails is `failed` and shown on the Notifications page.
A permanent refusal (an SMTP 5xx answer, a webhook address outside the policy, no SMTP server
configured) is not retried. It runs in the scheduler's `notify` job, never inside a refit.

Webhooks go to http(s) URLs only. With `CUSTSEG_WEBHOOK_HOSTS` set, only those hosts (the admin
vouches for them, private addresses included); without it, any host whose every resolved address
is public. The connection goes to the address that was checked (no second DNS lookup to rebind)
and redirects are not followed, so the feature cannot be pointed at internal services.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any
from urllib.parse import SplitResult, urlsplit

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from config import Settings
from db.models import AlertRule, Channel, Delivery, DeliveryStatus
from db.models.users import utcnow

log = logging.getLogger("custseg.notify")

DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
MAX_URL = 2000
Resolver = Callable[[str, int], Sequence[str]]


class DeliveryFailed(RuntimeError):
    """One attempt failed. `permanent`: trying again cannot help; `refused`: nothing was
    attempted (a policy or the configuration forbids it)."""

    def __init__(self, message: str, permanent: bool = False, refused: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent or refused
        self.refused = refused


class WebhookRefused(DeliveryFailed, ValueError):
    """A webhook URL outside the policy (scheme, host, address)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, refused=True)


# --- e-mail ------------------------------------------------------------------------------------


def smtp_problem(settings: Settings) -> str | None:
    """What is missing for e-mail (None: it can be sent)."""
    if not settings.smtp_host:
        return "e-mail is not configured: set CUSTSEG_SMTP_HOST and CUSTSEG_SMTP_FROM"
    if not settings.smtp_from:
        return "e-mail is not configured: set CUSTSEG_SMTP_FROM"
    return None


def compose_email(
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    unsubscribe_url: str | None,
) -> str:
    """The whole message (headers, a plain-text and an HTML part) as RFC 5322 text.

    `List-Unsubscribe` with `List-Unsubscribe-Post` lets mail clients unsubscribe in one click
    (RFC 8058); `Auto-Submitted` keeps auto-replies away.
    """
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or None
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    if unsubscribe_url:
        msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    return msg.as_string()


def send_email(settings: Settings, recipient: str, message: str) -> None:
    """One message to one recipient through CUSTSEG_SMTP_*; DeliveryFailed on any failure."""
    problem = smtp_problem(settings)
    if problem:
        raise DeliveryFailed(problem, refused=True)
    assert settings.smtp_host is not None and settings.smtp_from is not None
    security = settings.smtp_security
    port = settings.smtp_port or DEFAULT_PORTS[security]
    timeout = settings.smtp_timeout_s
    sender = parseaddr(settings.smtp_from)[1]
    try:
        server: smtplib.SMTP
        if security == "ssl":
            context = ssl.create_default_context()
            server = smtplib.SMTP_SSL(settings.smtp_host, port, timeout=timeout, context=context)
        else:
            server = smtplib.SMTP(settings.smtp_host, port, timeout=timeout)
        with server:
            if security == "starttls":
                server.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                server.login(settings.smtp_user, settings.smtp_password or "")
            server.sendmail(sender, [recipient], message.encode("ascii", "replace"))
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        raise DeliveryFailed(_smtp_text(code, reply), permanent=code >= 500) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryFailed(
            _smtp_text(exc.smtp_code, exc.smtp_error), permanent=exc.smtp_code >= 500
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        host = f"{settings.smtp_host}:{port}"
        raise DeliveryFailed(f"SMTP {host}: {type(exc).__name__}: {exc}") from None


def _smtp_text(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"SMTP {code} {text}"[:500]


# --- webhooks ----------------------------------------------------------------------------------


def short_url(url: str) -> str:
    """scheme://host/… : what the log and the page show of a webhook URL (its path may be the
    secret of an incoming webhook)."""
    parts = urlsplit(url)
    tail = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{tail}"


def host_listed(host: str, allowed: Sequence[str]) -> bool:
    """`host` is named in the allow-list (".example.com": that domain and its subdomains)."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def check_webhook_url(url: object, allowed: Sequence[str]) -> SplitResult:
    """The URL's parts when its form and host are acceptable, else WebhookRefused saying why."""
    if not isinstance(url, str) or not url.strip():
        raise WebhookRefused("The webhook URL is empty.")
    url = url.strip()
    if len(url) > MAX_URL or any(ord(c) < 33 for c in url):
        raise WebhookRefused("The webhook URL is too long or contains spaces.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("A webhook URL must start with https:// (or http://).")
    if not parts.hostname:
        raise WebhookRefused("The webhook URL names no host.")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("The webhook URL must not carry a user name or password.")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise WebhookRefused("The webhook URL's port is not valid.") from None
    if allowed and not host_listed(parts.hostname, allowed):
        raise WebhookRefused(
            f"Webhooks may only go to {', '.join(allowed)} (CUSTSEG_WEBHOOK_HOSTS); "
            f"{parts.hostname} is not one of them."
        )
    return parts


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryFailed(f"cannot resolve {host}: {exc.strerror}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def webhook_target(
    url: object, allowed: Sequence[str], resolve: Resolver = _resolve
) -> tuple[SplitResult, str]:
    """The URL's parts and the address to connect to, after every check: the form and host
    (`check_webhook_url`), then the resolved addresses: all public, unless the host is listed
    in CUSTSEG_WEBHOOK_HOSTS."""
    parts = check_webhook_url(url, allowed)
    host = parts.hostname
    assert host is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(host, port)
    if not addresses:
        raise DeliveryFailed(f"{host} has no address")
    if not host_listed(host, allowed):
        private = [a for a in addresses if not _public(a)]
        if private:
            raise WebhookRefused(
                f"{host} resolves to a private, loopback or link-local address "
                f"({private[0]}): webhooks go to public addresses only, unless the host is "
                "listed in CUSTSEG_WEBHOOK_HOSTS."
            )
    return parts, addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to `address`, whatever `host` resolves to now (Host header: host)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """As _PinnedHTTP, with TLS verified against `host` (certificate and SNI)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post_webhook(
    url: str,
    body: dict[str, Any],
    *,
    allowed: Sequence[str],
    timeout: float,
    resolve: Resolver = _resolve,
) -> int:
    """POST `body` as JSON to a checked webhook URL; its status (2xx), else DeliveryFailed."""
    parts, address = webhook_target(url, allowed, resolve)
    assert parts.hostname is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    cls = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    conn = cls(parts.hostname, port, address, timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    data = json.dumps(body, default=str).encode("utf-8")
    try:
        conn.request(
            "POST",
            path,
            body=data,
            headers={"Content-Type": "application/json", "User-Agent": "custseg-notify"},
        )
        response = conn.getresponse()
        response.read(65536)
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryFailed(f"{short_url(url)}: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    if not 200 <= response.status < 300:
        # 3xx too: a redirect is not followed (it could point anywhere).
        raise DeliveryFailed(
            f"{short_url(url)} answered HTTP {response.status}",
            permanent=response.status in (400, 401, 403, 404, 410),
        )
    return response.status


# --- the delivery loop -------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    refused: int = 0
    retried: int = 0  # attempts after the first

    def __str__(self) -> str:
        text = f"{self.sent} sent, {self.failed} failed, {self.refused} refused"
        return text + (f" ({self.retried} retries)" if self.retried else "")


def pending_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(Delivery.id)
                .where(Delivery.status == DeliveryStatus.PENDING)
                .order_by(Delivery.id)
            ).scalars()
        )


def _attempt(engine: Engine, settings: Settings, d: Delivery) -> None:
    if d.channel == Channel.EMAIL:
        send_email(settings, d.recipient, d.payload)
        return
    with Session(engine) as db:
        rule = db.get(AlertRule, d.rule_id) if d.rule_id is not None else None
        url = rule.webhook_url if rule is not None else None
    if not url:
        raise DeliveryFailed("the rule or its webhook URL was removed", refused=True)
    post_webhook(
        url,
        json.loads(d.payload),
        allowed=settings.webhook_host_list,
        timeout=settings.webhook_timeout_s,
    )


def _record(engine: Engine, delivery_id: int, error: DeliveryFailed | None, last: bool) -> str:
    """Log one attempt on its row; the row's new status."""
    now = utcnow()
    with Session(engine) as db, db.begin():
        d = db.get(Delivery, delivery_id)
        assert d is not None
        d.attempts += 1
        entry: dict[str, Any] = {"at": now.isoformat(timespec="seconds"), "attempt": d.attempts}
        if error is None:
            d.status, d.sent_at, d.error = DeliveryStatus.SENT, now, None
            entry["result"] = "sent"
        else:
            d.error = str(error)[:2000]
            entry["error"] = d.error
            if error.refused:
                d.status = DeliveryStatus.REFUSED
            elif error.permanent or last:
                d.status = DeliveryStatus.FAILED
            entry["result"] = str(d.status)
        d.log = [*(d.log or []), entry]
        return str(d.status)


def deliver(
    engine: Engine,
    settings: Settings,
    ids: Sequence[int] | None = None,
    *,
    sleep: Callable[[float], None] | None = None,
) -> DeliveryReport:
    """Send the pending deliveries `ids` (default: every pending one), retrying the failed ones
    after a backoff; every attempt is logged on its row."""
    todo = list(ids) if ids is not None else pending_ids(engine)
    report = DeliveryReport()
    rounds = settings.notify_retries + 1
    for round_ in range(rounds):
        if not todo:
            break
        if round_:
            (sleep or time.sleep)(settings.notify_backoff_s * 2 ** (round_ - 1))
            report.retried += len(todo)
        again = []
        for delivery_id in todo:
            with Session(engine, expire_on_commit=False) as db:
                d = db.get(Delivery, delivery_id)
            if d is None or d.status != DeliveryStatus.PENDING:
                continue
            error: DeliveryFailed | None = None
            try:
                _attempt(engine, settings, d)
            except DeliveryFailed as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - any failure of one message is logged
                error = DeliveryFailed(f"{type(exc).__name__}: {exc}")
            status = _record(engine, delivery_id, error, last=round_ == rounds - 1)
            extra = {"delivery_id": delivery_id, "channel": str(d.channel), "status": status}
            if error is None:
                report.sent += 1
                log.info("notification sent", extra=extra)
                continue
            log.warning("notification not sent", extra={**extra, "error": str(error)})
            if status == DeliveryStatus.PENDING:
                again.append(delivery_id)
            elif status == DeliveryStatus.REFUSED:
                report.refused += 1
            else:
                report.failed += 1
        todo = again
    return report


def retry_failed(engine: Engine, since: datetime | None = None) -> list[int]:
    """Put failed deliveries (created since `since`) back in the queue; their ids."""
    with Session(engine) as db, db.begin():
        stmt = select(Delivery).where(Delivery.status == DeliveryStatus.FAILED)
        if since is not None:
            stmt = stmt.where(Delivery.created_at >= since)
        rows = list(db.scalars(stmt))
        for d in rows:
            d.status = DeliveryStatus.PENDING
        return [d.id for d in rows]
