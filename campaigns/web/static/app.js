// A little JavaScript for the staff pages: CSRF header on fetch, live progress, confirmations.
// Vendored with the project (no CDN), loaded with `defer`, no inline scripts (CSP).
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

function bindConfirmations() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

function pollProgress() {
  const bars = document.querySelectorAll("[data-progress-campaign]");
  bars.forEach((bar) => {
    const id = bar.dataset.progressCampaign;
    const tick = async () => {
      const response = await fetch(`/api/v1/campaigns/${id}`, { credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      const percent = Math.round(data.progress_percent ?? 0);
      bar.value = percent;
      bar.textContent = `${percent} %`;
      const label = document.querySelector(`[data-progress-label="${id}"]`);
      if (label) label.textContent = `${percent} %`;
      document.querySelectorAll(`[data-count-campaign="${id}"]`).forEach((cell) => {
        const value = (data.counts || {})[cell.dataset.status];
        if (value !== undefined) cell.textContent = value;
      });
      const status = document.querySelector(`[data-status-campaign="${id}"]`);
      if (status && data.status) status.textContent = data.status;
      if (!["completed", "cancelled"].includes(data.status)) setTimeout(tick, 1500);
    };
    tick();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  bindConfirmations();
  pollProgress();
  window.campaigns = { postJSON, csrfToken };
});
