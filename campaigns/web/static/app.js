// A little JavaScript for the staff pages: CSRF header on fetch, live progress and counts,
// template preview, due-time countdowns, confirmations.
// Vendored with the project (no CDN), loaded with `defer`, no inline scripts (CSP).
// User text is only ever put in the page with textContent / DOM nodes, never innerHTML.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

async function postJSON(url, data) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(data),
  });
  return { ok: response.ok, status: response.status, body: await response.json().catch(() => ({})) };
}

function debounce(fn, delay) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), delay);
  };
}

function bindConfirmations() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

// --- campaigns: progress bar, counts and funnel ------------------------------------------

function updateFunnel(funnel) {
  const svg = document.querySelector("svg.funnel");
  if (!svg || !funnel) return;
  const barMax = Number(svg.dataset.barMax);
  const labelWidth = Number(svg.dataset.labelWidth);
  const largest = Math.max(1, ...Object.values(funnel));
  Object.entries(funnel).forEach(([key, value]) => {
    const rect = svg.querySelector(`rect[data-funnel="${key}"]`);
    const label = svg.querySelector(`text[data-funnel-label="${key}"]`);
    const width = value > 0 ? Math.max(2, Math.round((barMax * value) / largest)) : 0;
    if (rect) rect.setAttribute("width", String(width));
    if (label) {
      label.textContent = String(value);
      label.setAttribute("x", String(labelWidth + width + 8));
    }
  });
}

// Counts, parts sent, cost and why the campaign waits, formatted by the server (French).
function updateFigures(id, data) {
  const french = new Intl.NumberFormat("fr-FR");
  document.querySelectorAll(`[data-count-campaign="${id}"]`).forEach((cell) => {
    const value = (data.counts || {})[cell.dataset.status];
    // The server groups thousands with a no-break space, Intl with a narrow one: same look.
    if (value !== undefined) cell.textContent = french.format(value).replace(/\u202f/g, "\u00a0");
  });
  document.querySelectorAll(`[data-figure-campaign="${id}"]`).forEach((cell) => {
    const value = (data.figures || {})[cell.dataset.figure];
    if (value !== undefined) cell.textContent = value;
  });
  document.querySelectorAll(`[data-reason-campaign="${id}"]`).forEach((cell) => {
    cell.textContent = data.status_reason ? ` — ${data.status_reason}` : "";
  });
}

function pollProgress() {
  const ids = new Set();
  document.querySelectorAll("[data-progress-campaign]").forEach((bar) => ids.add(bar.dataset.progressCampaign));
  ids.forEach((id) => {
    const tick = async () => {
      const response = await fetch(`/campagnes/${id}/etat`, { credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      const percent = Math.round(data.progress_percent ?? 0);
      document.querySelectorAll(`[data-progress-campaign="${id}"]`).forEach((bar) => {
        bar.value = percent;
        bar.textContent = `${percent} %`;
      });
      document.querySelectorAll(`[data-progress-label="${id}"]`).forEach((label) => {
        label.textContent = `${percent} %`;
      });
      document.querySelectorAll(`[data-status-campaign="${id}"]`).forEach((status) => {
        if (data.status_label) status.textContent = data.status_label;
      });
      updateFigures(id, data);
      updateFunnel(data.funnel);
      // The campaign page offers actions for the status it was drawn with: redraw on change.
      const live = document.querySelector(`[data-campaign-live="${id}"]`);
      if (live && live.dataset.initialStatus && live.dataset.initialStatus !== data.status) {
        window.location.reload();
        return;
      }
      if (["running", "paused", "scheduled"].includes(data.status)) setTimeout(tick, 1500);
      else setTimeout(() => updateFunnelLater(id), 5000);
    };
    tick();
  });
}

// Replies and delivery receipts keep arriving after a campaign completes: refresh the funnel.
async function updateFunnelLater(id) {
  if (!document.querySelector("svg.funnel")) return;
  const response = await fetch(`/campagnes/${id}/etat`, { credentials: "same-origin" });
  if (!response.ok) return;
  const data = await response.json();
  updateFunnel(data.funnel);
  updateFigures(id, data);
  setTimeout(() => updateFunnelLater(id), 10000);
}

// --- imports: progress of a background import ------------------------------------------

function pollImport() {
  const box = document.querySelector("[data-import-job]");
  if (!box) return;
  const id = box.dataset.importJob;
  const bar = document.getElementById("import-progress");
  const tick = async () => {
    const response = await fetch(`/imports/${id}/etat`, { credentials: "same-origin" });
    if (!response.ok) return;
    const data = await response.json();
    if (bar) {
      bar.value = data.percent;
      bar.textContent = `${data.percent} %`;
    }
    if (data.state !== "running") window.location.reload();
    else setTimeout(tick, 700);
  };
  tick();
}

// --- audiences: live count of the filter being built -----------------------------------

function audienceFilter(form) {
  const data = new FormData(form);
  const filter = {};
  ["segments_any", "segments_all", "segments_none", "districts"].forEach((key) => {
    const values = data.getAll(`${key}[]`).filter((v) => String(v).trim());
    if (values.length) filter[key] = values;
  });
  ["age_min", "age_max", "not_contacted_days"].forEach((key) => {
    const value = String(data.get(key) || "").trim();
    if (value) filter[key] = Number(value);
  });
  const channel = String(data.get("channel") || "");
  if (channel) filter.channel = channel;
  return filter;
}

function bindAudienceBuilder() {
  const form = document.querySelector("form[data-audience-builder]");
  if (!form) return;
  const output = document.getElementById("audience-count");
  const error = document.getElementById("audience-error");
  let latest = 0;
  const refresh = debounce(async () => {
    const asked = ++latest;
    const result = await postJSON("/api/v1/audiences/count", { filter: audienceFilter(form) });
    // An answer to an older filter that comes back last must not replace the newer count.
    if (asked !== latest) return;
    if (result.ok) {
      output.textContent = new Intl.NumberFormat("fr-FR")
        .format(result.body.count)
        .replace(/\u202f/g, "\u00a0");
      error.textContent = "";
    } else {
      output.textContent = "—";
      error.textContent = result.body.detail || "Filtre invalide";
    }
  }, 250);
  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
  refresh();
}

// --- templates: live preview -------------------------------------------------------------

function highlighted(container, text, ucs2Chars) {
  // Built from text nodes and <mark> elements: the message text is never parsed as HTML.
  container.replaceChildren();
  const flagged = new Set(ucs2Chars);
  let run = "";
  let runFlagged = false;
  const flush = () => {
    if (!run) return;
    if (runFlagged) {
      const mark = document.createElement("mark");
      mark.className = "ucs2";
      mark.textContent = run;
      container.appendChild(mark);
    } else {
      container.appendChild(document.createTextNode(run));
    }
    run = "";
  };
  for (const ch of text) {
    const isFlagged = flagged.has(ch);
    if (isFlagged !== runFlagged) {
      flush();
      runFlagged = isFlagged;
    }
    run += ch;
  }
  flush();
}

function bindTemplateEditor() {
  const form = document.querySelector("form[data-template-editor]");
  if (!form) return;
  const channel = form.dataset.channel;
  const price = Number(form.dataset.price || "0");
  const el = (id) => document.getElementById(id);
  const refresh = debounce(async () => {
    const body = form.elements.body.value;
    if (!body.trim()) return;
    const person = form.elements.preview_person.value;
    const request = {
      channel,
      body,
      subject: form.elements.subject ? form.elements.subject.value : null,
      fold_accents: form.elements.fold_accents ? form.elements.fold_accents.checked : false,
      person_id: person ? Number(person) : null,
    };
    const result = await postJSON("/api/v1/templates/preview", request);
    if (!result.ok) {
      el("preview-error").textContent = result.body.detail || "Aperçu impossible";
      return;
    }
    const data = result.body;
    el("preview-error").textContent = "";
    highlighted(el("preview-text"), data.text, data.ucs2_chars || []);
    el("preview-encoding").textContent = data.encoding || "—";
    const help = el("preview-encoding-help");
    if (help) {
      const explained = { "GSM-7": help.dataset.gsm7, "UCS-2": help.dataset.ucs2 }[data.encoding];
      help.textContent = explained ? `— ${explained}` : "";
    }
    const chars = el("preview-chars");
    if (chars) chars.textContent = String([...(data.text || "")].length);
    el("preview-segments").textContent = String(data.segments);
    const ucs2 = el("preview-ucs2");
    ucs2.replaceChildren();
    if ((data.ucs2_chars || []).length === 0) ucs2.textContent = "aucun";
    (data.ucs2_chars || []).forEach((ch) => {
      const mark = document.createElement("mark");
      mark.className = "ucs2";
      mark.textContent = ch;
      ucs2.appendChild(mark);
      ucs2.appendChild(document.createTextNode(" "));
    });
    el("preview-cost").textContent = `${(price * data.segments).toFixed(4).replace(".", ",")}\u00a0€`;
    const parts = el("preview-parts");
    parts.replaceChildren();
    (data.parts || []).forEach((part) => {
      const item = document.createElement("li");
      item.textContent = part;
      parts.appendChild(item);
    });
  }, 300);
  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
}

// --- queues: due times counting down -----------------------------------------------------

function dueText(due, now) {
  const minutes = Math.round((due - now) / 60000);
  const amount = Math.abs(minutes);
  let span;
  if (amount >= 48 * 60) span = `${Math.floor(amount / 1440)} j`;
  else if (amount >= 120) span = `${Math.floor(amount / 60)} h ${String(amount % 60).padStart(2, "0")}`;
  else span = `${amount} min`;
  return minutes >= 0 ? `dans ${span}` : `en retard de ${span}`;
}

function countdowns() {
  const items = document.querySelectorAll("[data-due]");
  if (!items.length) return;
  const tick = () => {
    const now = Date.now();
    items.forEach((item) => {
      const due = Date.parse(item.dataset.due);
      if (Number.isNaN(due)) return;
      item.textContent = dueText(due, now);
      item.classList.toggle("overdue", due < now);
    });
  };
  tick();
  setInterval(tick, 30000);
}

document.addEventListener("DOMContentLoaded", () => {
  bindConfirmations();
  pollProgress();
  pollImport();
  bindAudienceBuilder();
  bindTemplateEditor();
  countdowns();
  window.campaigns = { postJSON, csrfToken };
});
