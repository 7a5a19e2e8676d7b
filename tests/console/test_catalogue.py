"""The message catalogue: both languages for every key, with the same
placeholders, and every key a template or a route names is in it."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import moonbase.console
from moonbase.console.i18n import Translator, language_from, placeholders
from moonbase.console.messages import MESSAGES

CONSOLE = Path(moonbase.console.__file__).parent
KEY = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-z_.0-9]+)["']\s*[,)]""")
NAV = re.compile(r"""nav\([^,]+,\s*["']([a-z_.]+)["']""")


def test_every_message_has_both_languages_with_the_same_placeholders():
    for key, (english, chinese) in MESSAGES.items():
        assert english.strip() and chinese.strip(), key
        assert placeholders(english) == placeholders(chinese), key


def test_every_key_used_is_in_the_catalogue():
    used = set()
    for path in [*CONSOLE.rglob("*.html"), *CONSOLE.rglob("*.py")]:
        text = path.read_text()
        used |= set(KEY.findall(text)) | set(NAV.findall(text))
    # Keys built from values: roles, grace periods, "done" notices.
    used |= {f"role.{r}" for r in ("owner", "admin", "member", "viewer", "operator")}
    used |= {f"project_role.{r}" for r in ("owner", "member")}
    used |= {f"keys.grace_{s}" for s in (0, 3600, 86400, 604800)}
    used |= {f"project.done_{d}" for d in ("created", "budgets", "member", "removed", "models")}
    used |= {f"orgs.done_{d}" for d in ("created", "topup", "voucher", "limits")}
    used |= {f"orgs.{name}" for name in ("concurrency", "rpm", "tpm", "tpd")}
    assert len(used) > 100
    missing = sorted(used - set(MESSAGES))
    assert not missing, missing


def test_language_from_the_cookie_then_accept_language():
    assert language_from(None, None) == "en"
    assert language_from(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert language_from(None, "en-GB,en;q=0.9,zh;q=0.8") == "en"
    assert language_from(None, "fr-FR, zh;q=0.5") == "zh-CN"
    assert language_from(None, "zh-TW") == "en"  # Traditional is not what we speak
    assert language_from(None, "en;q=0.1, zh-Hans;q=0.9") == "zh-CN"
    assert language_from("en", "zh-CN") == "en"  # the switch wins
    assert language_from("zh-CN", None) == "zh-CN"
    assert language_from("xx", "zh-CN") == "zh-CN"
    assert language_from(None, "q=;;,,,zh;q=abc") == "en"


def test_numbers_money_and_dates_per_language():
    en, zh = Translator("en"), Translator("zh-CN")
    assert en.number(1234567) == zh.number(1234567) == "1,234,567"
    assert en.money(1234.5) == "¥1,234.50" and en.money(-3.2) == "-¥3.20"
    assert zh.money(0) == "¥0.00"
    assert en.compact(1_250_000) == "1.2M" and zh.compact(1_250_000) == "125万"
    assert zh.compact(300_000_000) == "3亿" and en.compact(999) == "999"
    day = date(2025, 12, 3)
    assert en.date(day) == "Dec 3, 2025" and zh.date(day) == "2025年12月3日"
    moment = datetime(2025, 12, 3, 18, 5, tzinfo=UTC)
    assert en.datetime(moment) == "Dec 3, 2025, 18:05 UTC"
    assert zh.datetime(moment) == "2025年12月3日 18:05 UTC"
    assert zh.datetime(None) == "从未" and en.date(None) == "never"
    assert en("keys.secret_label", name="x") == "Secret of x"
    assert en("no.such.key") == "no.such.key"
