// huggingplace viewer: copy buttons and live updates. No inline script anywhere (the pages'
// Content-Security-Policy forbids it); new rows are drawn by the server, escaped, and inserted.
"use strict";

function fromHTML(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();  // server-rendered with autoescaping
  return template.content.firstElementChild;
}

async function fragment(path) {
  const response = await fetch(path, {credentials: "same-origin", headers: {Accept: "text/html"}});
  return response.ok ? fromHTML(await response.text()) : null;
}

function dropEmpty(container) {
  const empty = container.querySelector("tr.empty");
  if (empty) empty.remove();
}

const handlers = {
  async sessions(table, record) {
    const sessionId = record.session_id;
    if (!sessionId) return;
    const row = await fragment("/fragments/session/" + encodeURIComponent(sessionId));
    if (!row) return;
    const body = table.tBodies[0];
    for (const old of body.querySelectorAll("tr.session-row")) {
      if (old.dataset.sessionId === sessionId) old.remove();
    }
    dropEmpty(body);
    body.prepend(row);
  },
  async records(table, record) {
    const row = await fragment("/fragments/record/" + encodeURIComponent(record.event_id));
    if (!row) return;
    dropEmpty(table.tBodies[0]);
    table.tBodies[0].prepend(row);
  },
  async turns(section, record) {
    const turn = await fragment("/fragments/turn/" + encodeURIComponent(record.event_id));
    if (turn) section.append(turn);
  },
};

function follow(element) {
  const kind = element.dataset.live;
  const status = document.getElementById("live-status");
  let url = "/v2/stream";
  if (element.dataset.sessionId) url += "?session_id=" + encodeURIComponent(element.dataset.sessionId);
  const source = new EventSource(url);
  source.addEventListener("open", () => { status.textContent = "live: on"; status.dataset.state = "on"; });
  source.addEventListener("error", () => { status.textContent = "live: reconnecting"; status.dataset.state = "off"; });
  // records arrive in bursts: draw each session row once per burst, the newest last
  let pending = [];
  let timer = null;
  const flush = async () => {
    timer = null;
    const batch = pending;
    pending = [];
    const seen = new Set();
    const latest = kind === "sessions" ? batch.filter((r) => {
      if (seen.has(r.session_id)) return false;
      seen.add(r.session_id);
      return true;
    }).reverse() : batch;
    for (const record of latest.slice(-50)) {
      try { await handlers[kind](element, record); } catch (error) { /* the next event redraws */ }
    }
  };
  source.addEventListener("record", (event) => {
    const record = JSON.parse(event.data).record;
    if (kind === "sessions") pending.unshift(record); else pending.push(record);
    if (timer === null) timer = setTimeout(flush, 250);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch (error) {
        button.textContent = "Select and copy";
      }
    });
  }
  const live = document.querySelector("[data-live]");
  if (live && live.dataset.filtered !== "true") follow(live);
});
