"""GitLab's secret token and Standard Webhooks signature, checked before any body is read."""

from __future__ import annotations

import base64
import json

import pytest
from starlette.datastructures import Headers

from observer.ops import startup
from observer.settings import Settings
from observer.sources.adapter import Delivery, Refused
from observer.sources.gitlab.adapter import adapter
from tests.gitlab import SECRET, SIGNING_KEY, SIGNING_TOKEN, headers, load

NOW = 1_800_000_000
BODY = json.dumps(load("push")).encode()


def gitlab(**settings: str) -> object:
    values = {"webhook_secret": "github-secret", "gitlab_webhook_secret": SECRET, **settings}
    return adapter(Settings(**values), clock=lambda: NOW)


def refusal(source: object, sent: dict[str, str], body: bytes = BODY) -> tuple[int, str]:
    with pytest.raises(Refused) as refused:
        source.precheck(Headers(sent))  # type: ignore[attr-defined]
        source.authenticate(Headers(sent), body)  # type: ignore[attr-defined]
    return refused.value.status, refused.value.reason


def test_the_secret_token_authenticates() -> None:
    source = gitlab()
    sent = Headers(headers("Push Hook", BODY))
    source.precheck(sent)  # type: ignore[attr-defined]
    source.authenticate(sent, BODY)  # type: ignore[attr-defined]


def test_without_a_configured_secret_everything_is_refused() -> None:
    source = adapter(Settings(webhook_secret="github-secret"))
    assert refusal(source, headers("Push Hook", BODY)) == (
        401,
        "GITLAB_WEBHOOK_SECRET is not configured: /gitlab accepts no delivery",
    )


def test_a_missing_token_is_refused_before_the_body() -> None:
    with pytest.raises(Refused) as refused:
        gitlab().precheck(Headers(headers("Push Hook", BODY, token=None)))  # type: ignore[attr-defined]
    assert (refused.value.status, refused.value.reason) == (401, "missing X-Gitlab-Token header")


@pytest.mark.parametrize("token", ["wrong", SECRET + "x", SECRET[:-1], " " + SECRET])
def test_a_wrong_token_is_refused(token: str) -> None:
    assert refusal(gitlab(), headers("Push Hook", BODY, token=token)) == (
        401,
        "X-Gitlab-Token does not match GITLAB_WEBHOOK_SECRET",
    )


def test_every_listed_token_authenticates_while_rotating() -> None:
    source = gitlab(gitlab_webhook_secret=f"old-token, {SECRET} ,")
    for token in ("old-token", SECRET):
        source.authenticate(Headers(headers("Push Hook", BODY, token=token)), BODY)  # type: ignore[attr-defined]
    assert refusal(source, headers("Push Hook", BODY, token=""))[0] == 401


def test_the_secret_may_come_from_a_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "token"
    path.write_text(SECRET + "\n")
    source = adapter(Settings(webhook_secret="x", gitlab_webhook_secret_file=str(path)))
    source.authenticate(Headers(headers("Push Hook", BODY)), BODY)  # type: ignore[attr-defined]


def signed(**overrides: object) -> dict[str, str]:
    values: dict[str, object] = {"signing_key": SIGNING_KEY, "timestamp": NOW}
    values.update(overrides)
    return headers("Push Hook", BODY, **values)  # type: ignore[arg-type]


def test_a_signed_delivery_authenticates() -> None:
    gitlab(gitlab_signing_token=SIGNING_TOKEN).authenticate(Headers(signed()), BODY)  # type: ignore[attr-defined]


def test_a_signing_token_without_the_whsec_prefix_is_the_key_itself() -> None:
    source = gitlab(gitlab_signing_token="plain-signing-token")
    source.authenticate(Headers(signed(signing_key=b"plain-signing-token")), BODY)  # type: ignore[attr-defined]


def test_one_of_several_signatures_suffices() -> None:
    sent = signed()
    sent["webhook-signature"] = "v1,AAAA v2,whatever " + sent["webhook-signature"]
    gitlab(gitlab_signing_token=SIGNING_TOKEN).authenticate(Headers(sent), BODY)  # type: ignore[attr-defined]


def test_a_signature_with_another_key_is_refused() -> None:
    source = gitlab(gitlab_signing_token=SIGNING_TOKEN)
    assert refusal(source, signed(signing_key=b"another key")) == (
        401,
        "webhook-signature does not match GITLAB_SIGNING_TOKEN",
    )


def test_a_changed_body_is_refused() -> None:
    source = gitlab(gitlab_signing_token=SIGNING_TOKEN)
    assert refusal(source, signed(), BODY + b" ")[0] == 401


def test_a_missing_signature_is_refused_before_the_body() -> None:
    source = gitlab(gitlab_signing_token=SIGNING_TOKEN)
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        sent = signed()
        del sent[name]
        with pytest.raises(Refused) as refused:
            source.precheck(Headers(sent))  # type: ignore[attr-defined]
        assert refused.value.reason == (
            "missing webhook-id, webhook-timestamp or webhook-signature header"
        )


@pytest.mark.parametrize("moment", [NOW - 301, NOW + 301, NOW - 86_400])
def test_a_timestamp_outside_five_minutes_is_refused(moment: int) -> None:
    source = gitlab(gitlab_signing_token=SIGNING_TOKEN)
    assert refusal(source, signed(timestamp=moment)) == (
        401,
        "webhook-timestamp is more than 5 minutes from now",
    )


@pytest.mark.parametrize("moment", [NOW - 300, NOW + 300])
def test_a_timestamp_at_the_edge_of_the_window_is_accepted(moment: int) -> None:
    source = gitlab(gitlab_signing_token=SIGNING_TOKEN)
    source.authenticate(Headers(signed(timestamp=moment)), BODY)  # type: ignore[attr-defined]


def test_a_timestamp_that_is_not_a_number_is_refused() -> None:
    sent = signed()
    sent["webhook-timestamp"] = "2026-12-07T10:00:00Z"
    assert refusal(gitlab(gitlab_signing_token=SIGNING_TOKEN), sent) == (
        401,
        "webhook-timestamp is not a Unix time in seconds",
    )


def test_a_signature_does_not_stand_in_for_the_token() -> None:
    source = gitlab(gitlab_signing_token=SIGNING_TOKEN)
    assert refusal(source, signed(token=None)) == (401, "missing X-Gitlab-Token header")


def test_a_malformed_whsec_token_fails_at_start() -> None:
    with pytest.raises(ValueError, match=r"gitlab_signing_token"):
        Settings(webhook_secret="x", gitlab_signing_token="whsec_not base64!")
    # The decoded key is the HMAC key, not the token's text.
    assert base64.b64decode(SIGNING_TOKEN.removeprefix("whsec_")) == SIGNING_KEY


def test_the_delivery_id_is_the_idempotency_key_else_the_event_uuid() -> None:
    source = gitlab()
    sent = {
        name.lower(): value for name, value in headers("Push Hook", BODY, delivery="i-1").items()
    }
    assert source.identify(sent) == Delivery("Push Hook", "i-1")  # type: ignore[attr-defined]
    del sent["idempotency-key"]
    uuid = sent["x-gitlab-event-uuid"]
    assert source.identify(sent) == Delivery("Push Hook", uuid)  # type: ignore[attr-defined]
    del sent["x-gitlab-event-uuid"]
    assert source.identify(sent) == Delivery(  # type: ignore[attr-defined]
        "Push Hook", None, "missing Idempotency-Key or X-Gitlab-Event-UUID header"
    )
    del sent["x-gitlab-event"]
    assert source.identify(sent).unusable == "missing X-Gitlab-Event header"  # type: ignore[attr-defined]


@pytest.mark.parametrize("delivery", ["x" * 201, "two words", "tab\there"])
def test_an_unusable_delivery_id_is_named(delivery: str) -> None:
    sent = {
        name.lower(): value for name, value in headers("Push Hook", BODY, delivery=delivery).items()
    }
    assert gitlab().identify(sent).unusable == (  # type: ignore[attr-defined]
        "Idempotency-Key or X-Gitlab-Event-UUID must be 1 to 200 printable characters"
    )


def test_secrets_never_appear_in_the_settings_repr() -> None:
    settings = Settings(
        webhook_secret="x", gitlab_webhook_secret=SECRET, gitlab_signing_token=SIGNING_TOKEN
    )
    assert SECRET not in repr(settings) and SIGNING_TOKEN not in repr(settings)


@pytest.mark.parametrize(
    ("values", "mode"),
    [
        ({}, "off"),
        ({"gitlab_webhook_secret": SECRET}, "token"),
        (
            {"gitlab_webhook_secret": SECRET, "gitlab_signing_token": SIGNING_TOKEN},
            "token and signature",
        ),
    ],
)
def test_the_start_line_says_how_gitlab_authenticates(values: dict[str, str], mode: str) -> None:
    summary = startup.summary(Settings(webhook_secret="x" * 32, **values))
    assert summary["gitlab"] == mode
    assert SECRET not in str(summary) and SIGNING_TOKEN not in str(summary)


@pytest.mark.parametrize(
    ("token", "warned"), [("change-me", True), ("tiny-1", True), (SECRET, False)]
)
def test_a_guessable_gitlab_token_is_warned_about(token: str, warned: bool) -> None:
    settings = Settings(webhook_secret="x" * 32, gitlab_webhook_secret=f"{SECRET},{token}")
    found = [line for line in startup.warnings(settings) if "GITLAB_WEBHOOK_SECRET" in line]
    assert bool(found) is warned
    assert all(token not in line for line in found)
