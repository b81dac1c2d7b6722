/* Audience Exchange web interface: small progressive enhancements, no framework.
 * - endpoint form: show the fields of the chosen kind (protocol endpoint or partner adapter);
 * - share wizard: suggested mapping and destination requirements, schedule preview;
 * - job page: poll the JSON API every second until the job ends.
 * Every page works without this file; it only saves round trips. */
"use strict";

const TERMINAL = ["succeeded", "partially_succeeded", "failed", "cancelled"];
const STATE_LABELS = {
  queued: "Queued", fetching: "Fetching from the source", awaiting_source: "Waiting for the source",
  transforming: "Checking and mapping rows", delivering: "Delivering",
  awaiting_consumer: "Waiting for the destination", succeeded: "Succeeded",
  partially_succeeded: "Partially succeeded", failed: "Failed", cancelled: "Cancelled",
};
const STATE_TONES = { succeeded: "ok", partially_succeeded: "warn", failed: "bad", cancelled: "muted" };
const PHASES = { queued: 2, fetching: 15, awaiting_source: 10, transforming: 40, delivering: 60, awaiting_consumer: 95 };

function $(selector, root) { return (root || document).querySelector(selector); }
function $$(selector, root) { return Array.from((root || document).querySelectorAll(selector)); }

async function getJSON(url) {
  const resp = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
  return resp.json();
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

/* ------------------------------------------------------------ secrets shown once */
function initCopyFields() {
  $$("input[data-copy]").forEach((input) => input.addEventListener("focus", () => input.select()));
}

/* ------------------------------------------------------------ endpoint form */
function initEndpointForm() {
  const form = $("#endpoint-form");
  if (!form) return;
  const consumer = $("#f-consumer", form);
  const update = () => {
    const kind = ($("input[name=kind]:checked", form) || {}).value || "protocol";
    $$("fieldset[data-kind]", form).forEach((fs) => { fs.hidden = fs.dataset.kind !== kind; });
    const options = $("[data-consumer-options]", form);
    if (options && consumer) options.hidden = kind !== "protocol" || !consumer.value;
  };
  form.addEventListener("change", update);
  update();
}

/* ------------------------------------------------------------ share wizard */
function renderDestination(box, info) {
  box.replaceChildren();
  const p1 = el("p");
  p1.append(el("strong", {}, "Accepts identifiers: "),
    `${info.identifiers.join(", ")} — the mapping must produce at least one of them.`);
  const p2 = el("p");
  p2.append(el("strong", {}, "Attributes: "), info.attributes === null ? "any" : info.attributes.join(", ") || "none");
  const p3 = el("p");
  p3.append(el("strong", {}, "Modes: "), info.modes.join(", "));
  box.append(p1, p2, p3);
  if (info.adapter) box.append(el("p", {}, `${info.adapter}: ${info.note}`));
}

function renderMapping(wizard, rows) {
  const body = $("#mapping-rows", wizard);
  const template = $("#mapping-row", wizard);
  body.replaceChildren();
  rows.forEach((row, i) => {
    const tr = template.content.firstElementChild.cloneNode(true);
    const source = $("[data-part=source]", tr);
    source.name = `mapping-${i}-source`;
    source.value = row.source;
    $("[data-part=label]", tr).textContent = row.source;
    for (const part of ["target", "transform"]) {
      const input = $(`[data-part=${part}]`, tr);
      input.id = input.name = `mapping-${i}-${part}`;
      input.value = part === "target" ? row.target : row.transform.join(", ");
      const label = $(`[data-part=${part}-label]`, tr);
      label.htmlFor = input.id;
      label.textContent = `${part === "target" ? "Target" : "Transforms"} for ${row.source}`;
    }
    body.append(tr);
  });
  $("#mapping-empty", wizard).hidden = rows.length > 0;
}

function initWizard() {
  const wizard = $("#share-wizard");
  if (!wizard) return;
  const audience = $("#f-audience", wizard);
  const destination = $("#f-destination", wizard);
  const name = $("#f-destination-audience", wizard);
  let lastSuggestedName = name.value;

  const refreshMapping = async () => {
    if (!audience || !destination || !audience.value || !destination.value) {
      renderMapping(wizard, []);
      return;
    }
    const query = new URLSearchParams({ audience: audience.value, destination: destination.value });
    try {
      const data = await getJSON(`${wizard.dataset.mappingUrl}?${query}`);
      renderMapping(wizard, data.rows);
      renderDestination($("#dest-info", wizard), data.destination);
      const targets = $("#targets", wizard);
      targets.replaceChildren(...data.destination.identifiers.concat(data.destination.attributes || [])
        .map((t) => el("option", { value: t })));
      $$("input[name=mode]", wizard).forEach((radio) => {
        radio.disabled = radio.value !== "add" && !data.destination.can_remove;
      });
      if (!name.value || name.value === lastSuggestedName) name.value = lastSuggestedName = data.audience_name;
    } catch (err) {
      $("#dest-info", wizard).textContent = `Could not load the destination (${err.message}).`;
    }
  };

  const whenSections = () => {
    const when = ($("input[name=when]:checked", wizard) || {}).value || "now";
    $$("[data-when]", wizard).forEach((node) => { node.hidden = !node.dataset.when.split(" ").includes(when); });
    return when;
  };

  const refreshPreview = debounce(async () => {
    const when = whenSections();
    const query = new URLSearchParams({ when });
    for (const field of ["at", "every_count", "every_unit", "cron", "timezone"]) {
      const input = wizard.elements[field];
      if (input) query.set(field, input.value);
    }
    const box = $("#schedule-preview", wizard);
    try {
      const data = await getJSON(`${wizard.dataset.previewUrl}?${query}`);
      box.replaceChildren();
      if (data.errors) {
        Object.values(data.errors).forEach((msgs) => box.append(el("p", { class: "field-error" }, msgs.join(" "))));
        return;
      }
      box.append(el("p", {}, ""));
      box.firstChild.append(el("strong", {}, data.description));
      if (data.runs.length) {
        box.append(el("p", {}, "Next runs:"));
        const list = el("ol", { class: "runs" });
        data.runs.forEach((run) => {
          const li = el("li");
          li.append(el("time", { datetime: run.iso }, run.local));
          list.append(li);
        });
        box.append(list);
      }
    } catch (err) {
      box.textContent = `Could not preview the schedule (${err.message}).`;
    }
  }, 250);

  const delta = $("#f-delta", wizard);
  let deltaTouched = false;
  if (delta) delta.addEventListener("change", () => { deltaTouched = true; });
  wizard.addEventListener("change", (event) => {
    const target = event.target;
    if (target === audience || target === destination) refreshMapping();
    if (["when", "at", "every_count", "every_unit", "cron", "timezone"].includes(target.name)) {
      if (target.name === "when" && delta && !deltaTouched) {
        const mode = ($("input[name=mode]:checked", wizard) || {}).value;
        delta.checked = ["interval", "cron", "on_new_data"].includes(target.value) && mode !== "remove";
      }
      refreshPreview();
    }
  });
  wizard.addEventListener("input", (event) => {
    if (["every_count", "cron", "timezone", "at"].includes(event.target.name)) refreshPreview();
  });
  const zone = wizard.elements.timezone;
  if (zone && zone.value === "UTC" && window.Intl) {
    const local = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (local) zone.value = local;
  }
  whenSections();
  if (audience && destination && audience.value && destination.value && !$("#mapping-rows tr", wizard)) refreshMapping();
}

/* ------------------------------------------------------------ job page */
function progressOf(job) {
  if (TERMINAL.includes(job.state)) return 100;
  let value = PHASES[job.state] || 0;
  if (job.state === "delivering") {
    const total = ((job.progress || {}).ops || []).reduce((n, op) => n + (op.rows || 0), 0);
    if (total) value += Math.floor(35 * Math.min(1, (job.counts.delivered || 0) / total));
  }
  return value;
}

function renderJob(page, job) {
  const badge = $("#job-state .badge", page);
  if (badge.dataset.state !== job.state) {
    badge.dataset.state = job.state;
    badge.className = `badge ${STATE_TONES[job.state] || "run"}`;
    badge.textContent = STATE_LABELS[job.state] || job.state;
  }
  const bar = $("#job-progress", page);
  bar.value = progressOf(job);
  bar.textContent = `${bar.value}%`;
  $$("[data-count]", page).forEach((dd) => {
    dd.textContent = (job.counts[dd.dataset.count] || 0).toLocaleString("en-US");
  });
  const fmt = (iso) => (iso ? `${iso.replace("T", " ").slice(0, 16)} UTC` : "—");
  $("#job-started", page).textContent = fmt(job.started_at);
  $("#job-finished", page).textContent = fmt(job.finished_at);
  $("#job-attempts", page).textContent = job.attempts;
  const error = $("#job-error", page);
  error.hidden = !job.error;
  if (job.error) error.textContent = `${job.error.title || "Error"}: ${job.error.detail || ""}`;
  const terminal = TERMINAL.includes(job.state);
  $("#cancel-form").hidden = terminal;
  $("#rejects-link").hidden = !(job.counts.rejected > 0 && !["queued", "fetching", "awaiting_source"].includes(job.state));
  return terminal;
}

// The same wording as the server's event_text filter: state names become their labels.
function eventText(message) {
  const text = message || "";
  const cut = text.indexOf(": ");
  if (cut > 0 && STATE_LABELS[text.slice(0, cut)]) return `${STATE_LABELS[text.slice(0, cut)]}${text.slice(cut)}`;
  if (!text.includes("→")) return text;
  return text.replace(/\b[a-z_]+\b/g, (word) => STATE_LABELS[word] || word);
}

async function refreshEvents(page) {
  const data = await getJSON(page.dataset.eventsUrl);
  const list = $("#events");
  list.replaceChildren(...data.items.map((e) => {
    const li = el("li");
    li.append(el("time", { datetime: e.at }, `${e.at.replace("T", " ").slice(0, 16)} UTC`), ` ${eventText(e.message)}`);
    return li;
  }));
}

function initJobPage() {
  const page = $("#job[data-job-url]");
  if (!page || page.dataset.terminal === "true") return;
  const tick = async () => {
    let terminal = false;
    try {
      const job = await getJSON(page.dataset.jobUrl);
      terminal = renderJob(page, job);
      await refreshEvents(page);
    } catch (err) {
      /* a missed poll is retried on the next tick */
    }
    if (terminal) page.dataset.terminal = "true";
    else setTimeout(tick, 1000);
  };
  setTimeout(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  initCopyFields();
  initEndpointForm();
  initWizard();
  initJobPage();
});
