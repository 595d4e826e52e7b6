"""The unsubscribe link of every notification e-mail: public (no login), authorized by its
signed token alone (`db.notify.unsubscribe_token`, itsdangerous with the app's key).

GET shows what the link stops and one button; POST stops it. The button is there because mail
scanners and link previews open GET links: a GET that unsubscribed would unsubscribe people who
never clicked. Mail clients that offer "Unsubscribe" themselves POST to the same URL (the
e-mail's `List-Unsubscribe` and `List-Unsubscribe-Post` headers, RFC 8058), in one click. The
POST needs no CSRF token: the unguessable token in the URL is what another site cannot forge.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, render_template, request

from db.notifications import unsubscribe, unsubscribe_target
from db.notify import read_unsubscribe_token
from webapp.state import state

bp = Blueprint("notify", __name__)
MAX_TOKEN = 500


def _page(title: str, text: str, status: int = 200, confirm: bool = False) -> Any:
    return render_template("unsubscribe.html", title=title, text=text, confirm=confirm), status


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe_link(token: str) -> Any:
    parsed = read_unsubscribe_token(state().settings, token) if len(token) <= MAX_TOKEN else None
    if parsed is None:
        return _page(
            "Link not valid",
            "This unsubscribe link is not valid. Log in and open Notifications to change "
            "what you receive.",
            400,
        )
    what, ident, user_id = parsed
    engine = state().engine
    if request.method == "POST":
        changed = unsubscribe(engine, what, ident, user_id)
        stopped = "the digest" if what == "digest" else "this alert"
        text = f"You will not get {stopped} any more." if changed else "Nothing left to stop."
        return _page("Unsubscribed", text)
    target = unsubscribe_target(engine, what, ident, user_id)
    if target is None:
        return _page("Already unsubscribed", "You no longer get these e-mails.")
    return _page(
        "Unsubscribe?",
        f"Stop sending {target['what']} to {target['email']}?",
        confirm=True,
    )


def init_app(server: Flask) -> None:
    server.register_blueprint(bp)
