"""The signature check against GitHub's documented example and two independent signers."""

from __future__ import annotations

import pytest

from observer.sources.github.signature import sign, verify
from tests.signing import sign as independent_sign
from tests.signing import sign_with_openssl

SECRET = b"It's a Secret to Everybody"
BODY = b"Hello, World!"
# The example from GitHub's "Validating webhook deliveries" documentation.
GITHUB_EXAMPLE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_matches_githubs_documented_example() -> None:
    assert sign(SECRET, BODY) == GITHUB_EXAMPLE
    assert verify([SECRET], BODY, GITHUB_EXAMPLE)


def test_accepts_signatures_from_openssl() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    assert verify([b"s3cret"], body, sign_with_openssl("s3cret", body))


def test_accepts_the_previous_secret_during_rotation() -> None:
    header = independent_sign(b"old", BODY)
    assert verify([b"new", b"old"], BODY, header)
    assert not verify([b"new"], BODY, header)


def test_accepts_upper_case_hex() -> None:
    header = GITHUB_EXAMPLE.replace("757107ea", "757107EA")
    assert verify([SECRET], BODY, header)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        GITHUB_EXAMPLE.removeprefix("sha256="),
        "sha1=" + GITHUB_EXAMPLE.removeprefix("sha256="),
        GITHUB_EXAMPLE[:-1],
        GITHUB_EXAMPLE + "0",
        GITHUB_EXAMPLE[:-1] + "g",
        GITHUB_EXAMPLE[:-1] + "f",
        "sha256=" + "0" * 64,
        " " + GITHUB_EXAMPLE,
    ],
)
def test_refuses_anything_else(header: str | None) -> None:
    assert not verify([SECRET], BODY, header)


def test_refuses_a_signature_of_another_body() -> None:
    assert not verify([SECRET], BODY + b" ", GITHUB_EXAMPLE)


def test_refuses_when_no_secret_is_configured() -> None:
    assert not verify([], BODY, GITHUB_EXAMPLE)
