"""The portal's front door in a real browser: signing in through the page (by mouse and by
keyboard), the home page's investigations, signing out, the guest way in, the error page of
an unknown address, and the skip link."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")

from playwright.sync_api import Page, expect

from tests.browser.support import (
    DEMO_PASSWORD,
    Contexts,
    Portal,
    sign_in,
)

#: Rows the home page lists (signin.HOME_ROWS).
HOME_ROWS = 10


def my_titles(portal: Portal) -> list[str]:
    """The scientist's investigations as the home page must list them: most recent first."""
    return [r[0] for r in portal.rows(
        "SELECT i.title FROM INVESTIGATION i JOIN INVESTIGATIONUSER iu "
        "ON iu.investigation_id = i.id JOIN USER_ u ON iu.user_id = u.id "
        "WHERE u.name = :user ORDER BY i.startDate DESC, i.id DESC", user=portal.scientist)]


def test_signing_in_leads_home_to_my_investigations(page: Page, portal: Portal) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Sign in to "))
    sign_in(page, portal.scientist, DEMO_PASSWORD)

    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("My data")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="My data")
           ).to_have_attribute("aria-current", "page")
    expect(page.locator("header")).to_contain_text(portal.scientist)
    section = page.get_by_role("region", name="My investigations")
    titles = my_titles(portal)
    assert titles, "the demo scientist is on no investigation"
    rows = section.get_by_role("row").filter(has=page.get_by_role("link"))
    expect(rows).to_have_count(min(len(titles), HOME_ROWS))
    expect(rows.get_by_role("link")).to_have_text(titles[:HOME_ROWS])
    # Each title leads to its investigation's page (the browse area's address).
    first = rows.first.get_by_role("link")
    expect(first).to_have_attribute("href", re.compile(r"^/browse/investigation/\d+$"))


def test_signing_in_with_the_keyboard_only(page: Page, portal: Portal) -> None:
    page.goto("/login")
    _, name = portal.scientist.split("/", 1)
    username = page.locator("input[name=username]").and_(
        page.locator("form:has(input[name=mechanism][value=db]) input"))
    for _ in range(30):  # Tab along the page to the db form's user name
        page.keyboard.press("Tab")
        if username.evaluate("e => e === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the db sign-in form's Username field")
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    expect(page.locator("form:has(input[name=mechanism][value=db]) input[type=password]")
           ).to_be_focused()
    page.keyboard.type(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("My data")


def test_a_wrong_password_is_said_next_to_the_form(page: Page, portal: Portal) -> None:
    page.goto("/login")
    form = page.locator("form:has(input[name=mechanism][value=db])")
    _, name = portal.scientist.split("/", 1)
    form.get_by_label("Username").fill(name)
    form.get_by_label("Password").fill("not-the-password")
    form.get_by_role("button", name=re.compile("^Sign in")).click()
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    # The fields point at the message, so a screen reader reads it with them.
    expect(form.get_by_label("Password")).to_have_attribute("aria-describedby",
                                                             alert.get_attribute("id") or "")
    expect(form.get_by_label("Username")).to_have_value(name)
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_signing_out_ends_the_session(page: Page, portal: Portal) -> None:
    sign_in(page, portal.scientist, DEMO_PASSWORD)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    # The cookie the browser still has is no session any more.
    assert not [c for c in page.context.cookies() if c["name"] == "cairn_session"]


def test_a_guest_sees_the_portal_without_an_account(page: Page) -> None:
    page.goto("/login")
    page.get_by_role("button", name="Continue as a guest").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My data")
    expect(page.locator("header")).to_contain_text("anon/anon")
    expect(page.get_by_role("region", name="My investigations")).to_contain_text(
        "You are not on any investigation yet.")


def test_an_unknown_address_is_a_page(contexts: Contexts, signed_in: Any,
                                      portal: Portal) -> None:
    page = contexts(storage_state=signed_in(portal.scientist)).new_page()
    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.get_by_role("alert")).to_have_text("There is no page at this address.")
    # Still the portal: signed in, with the way home.
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.get_by_role("link", name="Go to your home page").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My data")


def test_the_first_tab_reaches_the_skip_link_which_moves_focus_to_main(
        contexts: Contexts, signed_in: Any, portal: Portal) -> None:
    page = contexts(storage_state=signed_in(portal.scientist)).new_page()
    page.goto("/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()  # hidden until focused, then shown
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#content$"))
    expect(page.get_by_role("main")).to_be_focused()
    # The next Tab goes on inside main, past the header's links and forms.
    page.keyboard.press("Tab")
    inside = page.evaluate("() => document.querySelector('main').contains("
                           "document.activeElement)")
    assert inside, "after the skip link, Tab went back into the header"


_FOCUS_RING = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const s = getComputedStyle(e);
  const ring = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0)
               || s.boxShadow !== 'none';
  return {ring, what: e.outerHTML.slice(0, 120)};
}"""


def test_every_tab_stop_shows_where_focus_is(contexts: Contexts, signed_in: Any,
                                             portal: Portal) -> None:
    page = contexts(storage_state=signed_in(portal.scientist)).new_page()
    page.goto("/")
    seen, unmarked = 0, []
    for _ in range(25):
        page.keyboard.press("Tab")
        found = page.evaluate(_FOCUS_RING)
        if found is None:
            break
        seen += 1
        if not found["ring"]:
            unmarked.append(found["what"])
    assert seen >= 5, f"only {seen} tab stops on the home page"
    assert not unmarked, "focused but with no visible focus indicator:\n" + "\n".join(unmarked)
