"""Journeys through the console in headless Chromium against a real
``moonbase serve``: sign in (by keyboard), create a project and a key, use
the key with the openai SDK and see the request on the overview, switch to
Chinese, upload a PDF and read its text, run a batch to completion and
download its output; at 1280 px and at phone width (390 px). Screenshots of each step go
to the screenshots folder (see tests/console/browser.py); the browser must
report no Content-Security-Policy violation on any page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.console.browser import OPERATOR, PASSWORD, Browser
from tests.e2e.server import RunningServer, openai_client

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def sign_in(b: Browser) -> None:
    from selenium.webdriver.common.keys import Keys

    b.open("/console")
    b.until(lambda: "/console/sign-in" in b.driver.current_url, "the sign-in page")
    email = b.css("#email")
    assert b.driver.switch_to.active_element == email  # the form starts focused
    email.send_keys(OPERATOR, Keys.TAB)
    b.driver.switch_to.active_element.send_keys(PASSWORD)
    b.shot("01-sign-in")
    b.driver.switch_to.active_element.send_keys(Keys.ENTER)
    b.until(lambda: b.driver.current_url.endswith("/console"), "the overview")
    b.css("h1")


def test_sign_in_by_keyboard_and_out_again(browser: Browser):
    from selenium.webdriver.common.keys import Keys

    sign_in(browser)
    assert "Overview" in browser.text() and "Available balance" in browser.text()
    # Keyboard: the first Tab reaches the skip link, which leads to the content.
    browser.driver.find_element("tag name", "body").send_keys(Keys.TAB)
    skip = browser.driver.switch_to.active_element
    assert skip.get_attribute("class") == "skip"
    browser.shot("02-overview-empty")
    browser.css("form[action='/console/sign-out'] button").click()
    browser.until(lambda: "signed out" in browser.text(), "the signed-out notice")
    browser.open("/console/keys")
    browser.until(lambda: "/console/sign-in" in browser.driver.current_url, "sign-in again")
    assert not browser.csp_violations()


def test_create_a_project_and_a_key_then_use_it_and_see_the_request(
    browser: Browser, console_server: RunningServer
):
    from selenium.webdriver.common.by import By

    sign_in(browser)
    browser.css("nav a[href='/console/projects']").click()
    browser.css("#project-name").send_keys("web")
    browser.css("#project-monthly").send_keys("200")
    browser.css("form[action='/console/projects'] button[type=submit]").click()
    browser.until(lambda: "Project created." in browser.text(), "the new project")
    browser.shot("03-project")
    project_id = re.search(r"/console/projects/([^/?]+)", browser.driver.current_url)
    assert project_id is not None

    browser.css("a[href^='/console/keys?project=']").click()
    assert "No API keys here yet." in browser.text()
    browser.css("#key-name").send_keys("browser-journey")
    browser.css("input[name=models][value='moonshot-v1-8k']").click()
    browser.css("form[method=post][action='/console/keys'] button[type=submit]").click()
    secret = browser.css("[data-testid=secret]").get_attribute("value")
    assert secret.startswith("sk-")
    browser.css("button[data-copy]").click()
    browser.until(lambda: "Copied" in browser.text() or "Copy" in browser.text(), "copy")
    browser.shot("04-key-created")
    browser.css("a.button[href^='/console/keys']").click()
    browser.until(lambda: "browser-journey" in browser.text(), "the key in the list")
    assert secret not in browser.driver.page_source  # shown once, never again
    browser.shot("05-keys")

    client = openai_client(f"{console_server.base_url}/v1", secret)
    reply = client.chat.completions.create(
        model="moonshot-v1-8k", messages=[{"role": "user", "content": "Say yes."}], max_tokens=4
    )
    assert reply.usage is not None and reply.usage.total_tokens > 0

    def seen() -> bool:
        browser.open("/console")
        cell = browser.driver.find_element(By.CSS_SELECTOR, "[data-testid=requests-today]")
        return cell.text.strip() not in ("", "0")

    browser.until(seen, "the request on the overview")
    browser.css("#usage-chart canvas")  # uPlot drew the 30-day chart
    assert "moonshot-v1-8k" in browser.text()
    browser.shot("06-overview-with-usage")

    # The key's row: disabling swaps it in place (htmx), and it says so.
    browser.open(f"/console/keys?project={project_id.group(1)}")
    browser.css("tr[id^=key-] form[hx-post$='/disable'] button").click()
    browser.until(lambda: "disabled" in browser.css("tr[id^=key-]").text, "the disabled row")
    browser.css("tr[id^=key-] form[hx-post$='/enable'] button")

    browser.size(390, 844)  # a phone
    browser.open("/console")
    browser.css("#usage-chart canvas")
    browser.shot("07-overview-390px")
    width = browser.driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, f"the overview scrolls sideways at 390 px ({width} px)"
    browser.open(f"/console/keys?project={project_id.group(1)}")
    browser.css("tr[id^=key-]")
    browser.shot("08-keys-390px")
    width = browser.driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, f"the keys page scrolls sideways at 390 px ({width} px)"
    assert not browser.csp_violations()


def test_switch_to_chinese(browser: Browser):
    from selenium.webdriver.support.ui import Select

    sign_in(browser)
    Select(browser.css("#language")).select_by_value("zh-CN")  # submits on change
    browser.until(lambda: "概览" in browser.text(), "the Chinese overview")
    assert browser.driver.find_element("tag name", "html").get_attribute("lang") == "zh-Hans"
    assert "可用余额" in browser.text() and "¥" in browser.text()
    browser.shot("09-overview-zh")
    browser.css("nav a[href='/console/keys']").click()
    browser.until(lambda: "API 密钥" in browser.text(), "the Chinese keys page")
    browser.shot("10-keys-zh")
    Select(browser.css("#language")).select_by_value("en")
    browser.until(lambda: "API keys" in browser.text(), "English again")
    assert not browser.csp_violations()


def _scrolls_sideways(b: Browser) -> int:
    return int(b.driver.execute_script("return document.documentElement.scrollWidth"))


def _upload(b: Browser, purpose: str, path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    b.open("/console/files")
    Select(b.css("#file-purpose")).select_by_value(purpose)
    b.css("#file-file").send_keys(str(path))
    b.css("form[data-upload] button[type=submit]").click()  # files.js: XHR with progress
    b.until(lambda: "File uploaded." in b.text(), "the uploaded file")


def test_upload_a_pdf_and_read_its_extracted_text(browser: Browser, tmp_path: Path):
    from tests.files.documents import ENGLISH, pdf

    sign_in(browser)
    browser.css("nav a[href='/console/files']").click()
    browser.until(lambda: "No files in this project yet." in browser.text(), "the empty files")
    document = pdf(tmp_path / "quarterly-report.pdf", [ENGLISH, "Page two <b>stays text</b>"])
    _upload(browser, "file-extract", document)
    assert "quarterly-report.pdf" in browser.text() and "ready" in browser.text()
    browser.shot("70-files")
    browser.css("table.files a[href^='/console/files/file-']").click()
    extracted = browser.css("[data-testid=extracted]")
    assert ENGLISH in extracted.text and "<b>stays text</b>" in extracted.text  # not HTML
    browser.shot("71-file-extracted")
    browser.size(390, 844)
    browser.driver.refresh()
    browser.css("[data-testid=extracted]")
    browser.shot("72-file-extracted-390px")
    assert _scrolls_sideways(browser) <= 390, "the file page scrolls sideways at 390 px"
    browser.size(1280, 900)
    assert not browser.csp_violations()


def test_run_a_small_batch_to_completion_and_download_its_output(browser: Browser, tmp_path: Path):
    from selenium.webdriver.support.ui import Select

    sign_in(browser)
    line = {"method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "moonshot-v1-8k", "max_tokens": 8,
                     "messages": [{"role": "user", "content": "Say yes."}]}}  # fmt: skip
    requests = tmp_path / "two-requests.jsonl"
    requests.write_text("\n".join(json.dumps({**line, "custom_id": f"q{n}"}) for n in (1, 2)))
    _upload(browser, "batch", requests)
    browser.css("nav a[href='/console/batches']").click()
    Select(browser.css("#batch-input")).select_by_index(0)
    Select(browser.css("#batch-window")).select_by_value("24h")
    browser.shot("80-batch-create")
    browser.css("form[method=post][action='/console/batches'] button[type=submit]").click()
    browser.css("#batch-progress")
    browser.shot("81-batch-progress")
    # No reload: htmx polls the progress fragment until the batch ends.
    browser.until(
        lambda: browser.css("#batch-progress").get_attribute("data-status") == "completed",
        "the batch to complete",
    )
    assert "2 of 2 requests done: 2 answered, 0 failed." in browser.text()
    assert browser.css("#batch-progress").get_attribute("hx-trigger") is None  # stopped
    browser.shot("82-batch-completed")
    href = browser.css("[data-testid=output]").get_attribute("href")
    output = browser.driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(function (r) { return r.text(); }).then(done);",
        href,
    )
    results = [json.loads(row) for row in output.splitlines()]
    assert sorted(r["custom_id"] for r in results) == ["q1", "q2"]
    assert all(r["response"]["status_code"] == 200 for r in results)
    browser.size(390, 844)
    browser.driver.refresh()
    browser.css("#batch-progress")
    browser.shot("83-batch-390px")
    assert _scrolls_sideways(browser) <= 390, "the batch page scrolls sideways at 390 px"
    browser.size(1280, 900)


def _yuan(text: str) -> float:
    return float(text.replace("¥", "").replace(",", "").strip())


def test_a_streamed_answer_in_the_playground(browser: Browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser)
    browser.open("/console/projects")  # a project to pay for it
    browser.css("#project-name").send_keys("playground")
    browser.css("form[action='/console/projects'] button[type=submit]").click()
    browser.until(lambda: "Project created." in browser.text(), "the new project")
    browser.css("nav a[href='/console/playground']").click()
    Select(browser.css("#pg-model")).select_by_value("moonshot-v1-8k")
    assert "Context" in browser.css("#pg-model-info").text
    browser.css("#pg-system").send_keys("Answer in one short sentence.")
    browser.css("#pg-user").send_keys("Say hello to the console.")
    browser.until(lambda: re.search(r"\d+ tokens", browser.css("#pg-tokens").text), "the count")
    browser.css("details.options summary").click()
    limit = browser.css("#pg-max-tokens")
    limit.clear()
    limit.send_keys("24")
    browser.css("#pg-send").click()
    browser.until(lambda: browser.css("#pg-usage").text.strip(), "the answer's usage", 600)
    assert browser.css("[data-testid=answer]").text.strip()
    assert not browser.driver.find_element(By.ID, "pg-error").is_displayed()
    browser.css("details.options summary").click()  # folded again: the answer in view
    browser.driver.execute_script("document.getElementById('pg-user').scrollIntoView()")
    browser.shot("11-playground-answer")

    browser.css("#pg-code summary").click()
    browser.driver.execute_script("document.getElementById('pg-code').scrollIntoView()")
    curl = browser.css("#pg-curl").get_attribute("value")
    python = browser.css("#pg-python").get_attribute("value")
    assert "Bearer $MOONSHOT_API_KEY" in curl and '"max_tokens": 24' in curl
    assert 'os.environ["MOONSHOT_API_KEY"]' in python and "max_tokens=24" in python
    assert "sk-" not in curl + python + browser.driver.page_source  # no secret on the page
    browser.shot("12-playground-code")

    browser.size(390, 844)
    browser.open("/console/playground")
    browser.css("#pg-user")
    browser.shot("13-playground-390px")
    width = browser.driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, f"the playground scrolls sideways at 390 px ({width} px)"
    assert not browser.csp_violations()


def test_an_operator_tops_up_an_organisation_and_the_member_sees_it(
    browser: Browser, console_server: RunningServer
):
    import secrets

    import httpx
    from selenium.webdriver.common.keys import Keys

    sign_in(browser)
    browser.css("nav a[href='/console/operator/organizations']").click()
    link = browser.css("tr[data-testid=org-default] a")
    org_id = link.get_attribute("href").rsplit("/", 1)[1]
    # A member joins through an invitation the operator sends (management API).
    base = console_server.base_url
    session = httpx.post(f"{base}/v1/auth/sessions", json={"email": OPERATOR, "password": PASSWORD})
    email = f"member-{secrets.token_hex(3)}@example.com"
    invite = httpx.post(
        f"{base}/v1/organization/invites",
        json={"email": email, "role": "member"},
        headers={"authorization": f"Bearer {session.json()['token']}",
                 "openai-organization": org_id},
    )  # fmt: skip
    assert invite.status_code == 201, invite.text
    browser.driver.delete_all_cookies()
    browser.driver.get(invite.json()["accept_url"])
    browser.css("#password").send_keys("member journey pass", Keys.ENTER)
    browser.until(lambda: browser.driver.current_url.endswith("/console"), "the member's overview")
    before = _yuan(browser.css("[data-testid=cash]").text)

    browser.driver.delete_all_cookies()
    sign_in(browser)
    browser.open("/console/operator/organizations")
    browser.css("tr[data-testid=org-default] a").click()
    browser.css("#credit-amount").send_keys("500")
    browser.css("#credit-reason").send_keys("browser journey")
    browser.css("form[action$='/credit'] button[type=submit]").click()
    browser.until(lambda: "Topped up." in browser.text(), "the top-up")
    browser.shot("14-operator-topped-up")
    browser.open(f"/console/operator/audit?org={org_id}&action=account.topup")
    browser.until(lambda: "browser journey" in browser.text(), "the top-up in the audit log")
    browser.shot("15-operator-audit")

    browser.driver.delete_all_cookies()
    browser.open("/console/sign-in")
    browser.css("#email").send_keys(email, Keys.TAB)
    browser.driver.switch_to.active_element.send_keys("member journey pass", Keys.ENTER)
    browser.until(lambda: browser.driver.current_url.endswith("/console"), "the overview")

    def topped_up() -> bool:
        browser.open("/console")
        return _yuan(browser.css("[data-testid=cash]").text) >= before + 499  # less any spend

    browser.until(topped_up, "the new balance")
    assert "Organizations" not in browser.css("nav").text  # no operator's pages for them
    browser.shot("16-member-sees-new-balance")
    assert not browser.csp_violations()
