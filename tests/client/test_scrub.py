"""Privacy rules of the scrubber, one by one."""

from __future__ import annotations

import pytest

from flawless.client.scrub import DEFAULT_KEY_PATTERNS, MASK, Scrubber, luhn_valid
from flawless.report import Frame, Report

REQUIRED_NAMES = ["password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "auth",
                  "credential", "private_key", "session", "cookie", "csrf", "card", "cvv",
                  "ssn", "iban"]


@pytest.fixture
def scrubber() -> Scrubber:
    return Scrubber(DEFAULT_KEY_PATTERNS, home="/home/alice", virtualenv="/opt/venvs/shop")


@pytest.mark.parametrize("name", REQUIRED_NAMES)
def test_every_default_pattern_matches_anywhere_in_the_name_in_any_case(scrubber, name):
    assert scrubber.is_sensitive_name(name)
    assert scrubber.is_sensitive_name(f"user_{name.upper()}_value")
    assert scrubber.is_sensitive_name(f"My{name.capitalize()}")


def test_harmless_names_and_non_string_keys_are_kept(scrubber):
    for name in ("quantity", "price", "items", "user_id", "total"):
        assert not scrubber.is_sensitive_name(name)
    assert not scrubber.is_sensitive_name(42)


def test_added_patterns_mask_more_names_and_keep_the_defaults(scrubber):
    assert not scrubber.is_sensitive_name("pin_code")
    scrubber.add_key_patterns(r"pin_?code", "mothers_maiden")
    assert scrubber.is_sensitive_name("PIN_CODE")
    assert scrubber.is_sensitive_name("mothers_maiden_name")
    assert scrubber.is_sensitive_name("password")


def test_an_invalid_added_pattern_is_refused_and_changes_nothing(scrubber):
    with pytest.raises(Exception):
        scrubber.add_key_patterns("(unclosed")
    assert scrubber.is_sensitive_name("password")
    assert not scrubber.is_sensitive_name("unclosed")


def test_luhn_checksum():
    assert luhn_valid("4111111111111111")
    assert luhn_valid("5500005555555559")
    assert not luhn_valid("4111111111111112")


@pytest.mark.parametrize("card", ["4111111111111111", "4111 1111 1111 1111",
                                  "4111-1111-1111-1111", "378282246310005"])
def test_card_numbers_are_masked_whatever_their_separators(scrubber, card):
    text = scrubber.scrub_text(f"charge failed for {card} today")
    assert card not in text and "1111" not in text.replace(MASK, "")
    assert text == f"charge failed for {MASK} today"


def test_long_numbers_failing_luhn_are_not_cards(scrubber):
    assert scrubber.scrub_text("order 4111111111111112") == "order 4111111111111112"
    assert scrubber.scrub_text("ts 1763700000250") == "ts 1763700000250"


def test_bearer_and_basic_tokens_and_jwts_are_masked(scrubber):
    text = scrubber.scrub_text("header Authorization: Bearer abc.DEF-123_xyz~+/= sent")
    assert "abc.DEF" not in text
    assert "Basic" in scrubber.scrub_text("Basic dXNlcjpwYXNzd29yZA==")
    assert "dXNlcjpw" not in scrubber.scrub_text("Basic dXNlcjpwYXNzd29yZA==")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXZhbHVl"
    assert scrubber.scrub_text(f"got {jwt}!") == f"got {MASK}!"


def test_pem_private_keys_are_masked_even_when_cut_or_escaped(scrubber):
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
    assert scrubber.scrub_text(f"bad key {key} end") == f"bad key {MASK} end"
    escaped = repr(key)
    assert "MIIEow" not in scrubber.scrub_text(escaped)
    assert "MIIEow" not in scrubber.scrub_text("'-----BEGIN PRIVATE KEY-----\\nMIIEowIBAA…")


def test_credentials_in_urls_are_masked_and_the_rest_kept(scrubber):
    text = scrubber.scrub_text("cannot reach postgres://shop:s3cr3t@db.internal:5432/shop")
    assert "s3cr3t" not in text and "shop:" not in text
    assert text.endswith(f"postgres://{MASK}@db.internal:5432/shop")
    assert scrubber.scrub_text("see https://example.com/a@b") == "see https://example.com/a@b"


def test_query_values_and_email_addresses_are_masked_names_kept(scrubber):
    text = scrubber.scrub_text("<WSGIRequest: GET '/search?q=red+shoes&email=ann%40x.org&page=2'>")
    assert text == f"<WSGIRequest: GET '/search?q={MASK}&email={MASK}&page={MASK}'>"
    assert scrubber.scrub_text("404 for url: https://api.example.com/u?id=7#top") == \
        f"404 for url: https://api.example.com/u?id={MASK}#top"
    assert scrubber.scrub_text("mail Ann.Lee+shop@mail.example.co.uk now") == f"mail {MASK} now"
    assert scrubber.scrub_text("a == b ? c : d & e") == "a == b ? c : d & e"
    code = 'send("ops@example.com", url + "?id=" + id)'
    assert scrubber.scrub_text(code, assignments=False, code=True) == code


def test_each_kind_of_value_can_be_left_unmasked(scrubber):
    text = "ann@example.com /a?q=shoes 4111 1111 1111 1111 /home/ann/x"
    scrubber.remove("emails", "query_values")
    assert scrubber.scrub_text(text) == f"ann@example.com /a?q=shoes {MASK} ~/x"
    scrubber.remove("card_numbers", "home_directories")
    assert scrubber.scrub_text(text) == text
    with pytest.raises(ValueError, match="'e-mails'"):
        scrubber.remove("e-mails")


def test_sensitive_name_value_pairs_in_text_are_masked(scrubber):
    text = scrubber.scrub_text("login failed: password=hunter2 user=bob; api_key: 'k-123'")
    assert "hunter2" not in text and "k-123" not in text
    assert "user=bob" in text


def test_known_secret_values_are_masked_wherever_they_reappear(scrubber):
    text = scrubber.scrub_text("token rejected: sk_live_ABCDEF", secrets=["sk_live_ABCDEF"])
    assert "sk_live_ABCDEF" not in text


@pytest.mark.parametrize("path, shortened", [
    ("/home/alice/proj/shop/cart.py", "~/proj/shop/cart.py"),
    ("/home/bob/proj/shop/cart.py", "~/proj/shop/cart.py"),
    ("/Users/carol/code/shop/cart.py", "~/code/shop/cart.py"),
    ("C:\\Users\\dave\\code\\shop\\cart.py", "~\\code\\shop\\cart.py"),
    ("/home/alice/.venvs/x/lib/python3.11/site-packages/requests/adapters.py",
     "site-packages/requests/adapters.py"),
    ("C:\\Users\\dave\\venv\\Lib\\site-packages\\requests\\adapters.py",
     "site-packages\\requests\\adapters.py"),
    ("/usr/lib/python3/dist-packages/yaml/reader.py", "dist-packages/yaml/reader.py"),
    ("/opt/venvs/shop/bin/serve", "<virtualenv>/bin/serve"),
    ("/tmp/ipykernel_4242/3412312.py", "<ipykernel>/3412312.py"),
    ("/var/folders/x1/T/ipykernel_77/99.py", "<ipykernel>/99.py"),
    ("/srv/app/shop/cart.py", "/srv/app/shop/cart.py"),
])
def test_paths_lose_the_user_name_and_keep_the_mapped_tail(scrubber, path, shortened):
    assert scrubber.shorten_path(path) == shortened


def test_home_paths_inside_text_and_reprs_are_shortened(scrubber):
    text = scrubber.scrub_text("no such file: '/home/zoe/data.csv' or 'C:\\\\Users\\\\zoe\\\\d'")
    assert "zoe" not in text


def test_a_home_outside_the_usual_places_is_shortened_too():
    scrubber = Scrubber(home="/var/lib/erin")
    assert scrubber.shorten_path("/var/lib/erin/app/main.py") == "~/app/main.py"


def test_scrub_report_covers_message_locals_info_context_and_paths(scrubber):
    report = Report(
        exception_type="builtins.ValueError",
        exception_message="bad card 4111111111111111",
        traceback=(Frame("/home/alice/shop/cart.py", 3, "total", "x = 1",
                         {"password": "'x'", "note": "'Bearer abcdefgh'"}),),
        additional_info="GET /?token=abcdef",
        context={"cell": "secret=abc123", "execution_count": 3},
    )
    scrubbed = scrubber.scrub_report(report)
    assert scrubbed.exception_message == f"bad card {MASK}"
    frame = scrubbed.traceback[0]
    assert frame.filename == "~/shop/cart.py"
    assert frame.frame_locals == {"password": MASK, "note": f"'Bearer {MASK}'"}
    assert "abcdef" not in scrubbed.additional_info
    assert scrubbed.context == {"cell": f"secret={MASK}", "execution_count": 3}


def test_source_lines_keep_their_code_but_not_secret_values(scrubber):
    line = 'password = form["password"]; k = "Bearer abcdefgh"'
    report = Report("builtins.E", "", (Frame("/srv/a.py", 1, "f", line),))
    text = scrubber.scrub_report(report).traceback[0].text
    assert text.startswith('password = form["password"]')
    assert "abcdefgh" not in text


# -- the substring tests that skip patterns never change the outcome -----------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from flawless.client import scrub as scrub_module  # noqa: E402

PIECES = st.sampled_from([
    "password=", "Token ", "bearer ", "Basic ", "eyJhbGciOi.eyJzdWIiOi.sig", "://", "@",
    "user:pw@host", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----",
    "4111 1111 1111 1111", "4111-1111-1111-1111", "1234", "/home/ann/x", "/Users/bob/y",
    "C:\\Users\\eve\\z", "C:\\\\Users\\\\eve", "api_key: ", "'", '"', " ", "=", ":", "\n", "x",
    "secret", "SeSsIoN", "abcdef1234567890", "pin_code=", "pin code: ", "x y=", "my.api_key=",
    "a-token'= ", "ann@example.com", "ann%40example.org", ".uk", "+tag", "?q=", "&page=",
])


def unfiltered_scrub(scrubber, text):
    """scrub_text as it would be with every pattern always applied (the oracle)."""
    text = scrub_module._PEM.sub(scrub_module.MASK, text)
    text = scrub_module._TOKEN.sub(lambda m: m.group(1) + m.group(2) + scrub_module.MASK, text)
    text = scrub_module._JWT.sub(scrub_module.MASK, text)
    text = scrub_module._URL_CREDENTIALS.sub(lambda m: m.group(1) + scrub_module.MASK + "@",
                                             text)
    text = scrub_module._QUERY_VALUE.sub(lambda m: m.group(1) + scrub_module.MASK, text)
    text = scrub_module._EMAIL.sub(scrub_module.MASK, text)
    text = scrubber._assignment.sub(lambda m: m.group(1) + scrub_module.MASK, text)
    text = scrub_module._CARD.sub(lambda m: scrub_module._mask_card(m, scrub_module.MASK), text)
    return scrub_module._HOME.sub("~", text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(PIECES, st.text(max_size=6)), max_size=12).map("".join))
def test_skipping_patterns_that_cannot_match_changes_nothing(text):
    for extra in ((), (r"pin_?code",), (r"pin.code|x y",)):  # word-only patterns, and not
        scrubber = scrub_module.Scrubber(home="", virtualenv="")
        scrubber.add_key_patterns(*extra)
        assert scrubber.scrub_text(text) == unfiltered_scrub(scrubber, text)


def test_scrub_report_keeps_every_frame_field_it_does_not_scrub(scrubber):
    frame = Frame("/home/ann/app/static/app.js", 3, "checkout", "pay(card)",
                  {"password": "hunter22"}, column_number=17, in_app=False)
    scrubbed = scrubber.scrub_report(Report("TypeError", "x", (frame,))).traceback[0]
    assert (scrubbed.column_number, scrubbed.in_app) == (17, False)
    assert scrubbed.frame_locals == {"password": MASK} and "ann" not in scrubbed.filename
