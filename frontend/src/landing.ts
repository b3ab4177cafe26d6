// The landing page: Start makes a session and goes to it; each live session
// listed can be ended from here (a guest may have only one at a time).

import { api, ApiError, describe, startSession } from "./api";

const start = document.getElementById("start") as HTMLButtonElement | null;
const error = document.getElementById("start-error") as HTMLElement;

function showError(text: string): void {
  error.textContent = text;
  error.hidden = false;
}

// Start (the default image) and the other choices: an image or a template.
const choices = [start, ...document.querySelectorAll<HTMLButtonElement>("[data-start]")].filter(
  (b): b is HTMLButtonElement => b !== null,
);
for (const button of choices) {
  button.addEventListener("click", () => void begin(button, JSON.parse(button.dataset.start ?? "{}")));
}

async function begin(button: HTMLButtonElement, body: Record<string, string>): Promise<void> {
  const start = button;
  for (const other of choices) other.disabled = true;
  start.classList.add("busy");
  error.hidden = true;
  try {
    await startSession(body);
  } catch (failure) {
    let text = describe(failure);
    if (failure instanceof ApiError && failure.code === "limit_reached" && document.querySelector(".session-row")) {
      text += " Open or end one of your sessions below.";
    }
    showError(text);
    start.classList.remove("busy");
    // Rate limits and full hosts say when a retry can help.
    const wait = failure instanceof ApiError && failure.retryAfter ? failure.retryAfter * 1000 : 0;
    window.setTimeout(() => {
      for (const other of choices) other.disabled = false;
    }, wait);
  }
}

for (const button of document.querySelectorAll<HTMLButtonElement>("[data-end-session]")) {
  button.addEventListener("click", async () => {
    if (!window.confirm("End this session? Its machines and everything on them are deleted.")) return;
    button.disabled = true;
    try {
      await api("DELETE", `/api/sessions/${encodeURIComponent(button.dataset.endSession!)}/`);
      button.closest(".session-row")?.remove();
      if (!document.querySelector(".session-row")) document.getElementById("your-sessions")?.remove();
    } catch (failure) {
      button.disabled = false;
      showError(describe(failure));
    }
  });
}

// Time left on each listed session, kept current.
function tick(): void {
  for (const element of document.querySelectorAll<HTMLElement>("[data-expires-at]")) {
    const left = Math.floor((Date.parse(element.dataset.expiresAt!) - Date.now()) / 1000);
    if (left <= 0) {
      element.textContent = "ending";
      continue;
    }
    const h = Math.floor(left / 3600);
    const m = Math.floor((left % 3600) / 60);
    element.textContent = h ? `${h} h ${m} min left` : `${Math.max(1, m)} min left`;
  }
}
tick();
window.setInterval(tick, 30_000);
