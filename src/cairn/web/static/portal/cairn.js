// Cairn's portal script: small enhancements only; every page works without it.
"use strict";

// A checkbox with data-select-all="name" ticks or clears every checkbox called name.
document.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || !box.dataset.selectAll) return;
  const form = box.form || document;
  for (const other of form.querySelectorAll(`input[type=checkbox][name="${box.dataset.selectAll}"]`)) {
    other.checked = box.checked;
  }
});

// The downloads page: a table with data-poll="<url>" asks that URL every few seconds about
// its rows that are still on their way (data-pending="1") and puts the cells it gets back
// in place, only when a row's signature (data-sig) changed. It stops when nothing is
// pending. After a "Get the zip" link is followed, that row is watched a while longer, so
// the bytes sent show up. Without this script the page's Refresh link does the same.
(() => {
  const table = document.querySelector("table[data-poll]");
  if (!table || !window.fetch) return;
  const url = table.dataset.poll;
  const every = Math.max(1, Number(table.dataset.pollSeconds) || 3) * 1000;
  // Rows followed after their link was used: id -> polls left without news.
  const watched = new Map();
  const WATCH_POLLS = 20;
  let timer = null;
  let failures = 0;

  const rows = () => Array.from(table.querySelectorAll("tbody tr[data-id]"));
  const wanted = () => rows()
    .filter((row) => row.dataset.pending === "1" || watched.has(row.dataset.id))
    .map((row) => row.dataset.id);

  function schedule(delay) {
    if (timer === null && wanted().length) timer = window.setTimeout(poll, delay);
  }

  function update(row, news) {
    if (news.deleted) {
      row.dataset.pending = "0";
      watched.delete(row.dataset.id);
      return;
    }
    const changed = row.dataset.sig !== news.sig;
    if (changed) {
      for (const [name, html] of Object.entries(news.cells)) {
        const cell = row.querySelector(`[data-cell="${name}"]`);
        if (cell) cell.innerHTML = html;
      }
      row.dataset.sig = news.sig;
      row.dataset.state = news.state;
    }
    row.dataset.pending = news.pending ? "1" : "0";
    const id = row.dataset.id;
    if (watched.has(id)) {
      const left = changed ? WATCH_POLLS : watched.get(id) - 1;
      if (news.state === "delivered" || news.state === "failed" || left <= 0) watched.delete(id);
      else watched.set(id, left);
    }
  }

  async function poll() {
    timer = null;
    const ids = wanted();
    if (!ids.length) return;
    let answer;
    try {
      const response = await fetch(`${url}?ids=${ids.join(",")}`, {
        credentials: "same-origin", headers: { Accept: "application/json" } });
      const type = response.headers.get("content-type") || "";
      if (!response.ok || !type.includes("application/json")) return; // signed out: stop
      answer = await response.json();
      failures = 0;
    } catch (error) {
      failures += 1; // the server away for a moment: ask again, less often
      if (failures < 10) schedule(every * 2 ** Math.min(failures, 4));
      return;
    }
    for (const row of rows()) {
      if (!ids.includes(row.dataset.id)) continue;
      const news = answer.downloads[row.dataset.id];
      if (news) update(row, news);
      else { row.dataset.pending = "0"; watched.delete(row.dataset.id); }
    }
    schedule(every);
  }

  table.addEventListener("click", (event) => {
    const link = event.target instanceof Element && event.target.closest("a[data-fetch]");
    if (!link) return;
    watched.set(link.dataset.fetch, WATCH_POLLS);
    schedule(every);
  });
  schedule(every);
})();
