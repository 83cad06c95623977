// The search page's counts: the page is drawn from its hits alone, and an element with
// data-facets="<url>" names where the facet counts and the number found are (an HTML
// fragment, /search/facets). This script asks for it once and puts each of its
// [data-fill="<id>"] parts in place of the contents of the page's element with that id,
// keeping the boxes already ticked and the focus where they were. Without this script, the
// element's "Show counts" link draws the same page with its counts.
"use strict";

(() => {
  const holder = document.querySelector("[data-facets]");
  if (!holder || !window.fetch || !window.DOMParser) return;
  const status = document.getElementById("facet-status");
  const panels = document.getElementById("facet-panels");
  const say = (text) => { if (status) status.textContent = text; };

  // The boxes as the visitor left them: "name=value" -> checked, and the one focused.
  function boxes() {
    const out = new Map();
    let focused = null;
    if (!panels) return { out, focused };
    for (const box of panels.querySelectorAll("input[type=checkbox]")) {
      const key = `${box.name}=${box.value}`;
      out.set(key, box.checked);
      if (box === document.activeElement) focused = key;
    }
    return { out, focused };
  }

  function restore(before) {
    if (!panels) return;
    for (const box of panels.querySelectorAll("input[type=checkbox]")) {
      const key = `${box.name}=${box.value}`;
      if (before.out.has(key)) box.checked = before.out.get(key);
      if (key === before.focused) box.focus();
    }
  }

  holder.hidden = true;
  if (panels) panels.setAttribute("aria-busy", "true");
  say("Counting…");
  fetch(holder.dataset.facets, { credentials: "same-origin", headers: { Accept: "text/html" } })
    .then((response) => {
      // a session that ended sends the sign-in page instead: keep the page as it is
      if (!response.ok || response.redirected) throw new Error(`status ${response.status}`);
      return response.text();
    })
    .then((html) => {
      const fragment = new DOMParser().parseFromString(html, "text/html")
        .querySelector("[data-facets-fragment]");
      if (!fragment) throw new Error("not the counts");
      const before = boxes();
      for (const part of fragment.querySelectorAll("[data-fill]")) {
        const target = document.getElementById(part.dataset.fill);
        if (!target) continue;
        target.replaceChildren(...Array.from(part.childNodes, (n) => document.importNode(n, true)));
      }
      restore(before);
      holder.remove();
    })
    .catch(() => {
      holder.hidden = false; // the link draws the page with its counts instead
      say("");
    })
    .finally(() => { if (panels) panels.removeAttribute("aria-busy"); });
})();
