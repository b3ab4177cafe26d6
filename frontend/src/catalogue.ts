// The lab pages (catalogue and one lab): "Start" makes a session of the lab
// and goes to it. Searching and filtering are a plain GET form.

import { api, ApiError, describe, Session } from "./api";

for (const button of document.querySelectorAll<HTMLButtonElement>("[data-start-lab]")) {
  const error = document.getElementById("start-error") as HTMLElement;
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.classList.add("busy");
    error.hidden = true;
    try {
      const session = await api<Session>("POST", "/api/sessions/", { lab: button.dataset.startLab });
      window.location.assign(`/sessions/${encodeURIComponent(session.id)}/`);
    } catch (failure) {
      let text = describe(failure);
      if (failure instanceof ApiError && failure.code === "limit_reached") {
        text += " End a session on the start page first.";
      }
      error.textContent = text;
      error.hidden = false;
      button.disabled = false;
      button.classList.remove("busy");
    }
  });
}
