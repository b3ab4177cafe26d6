// An instructor's class dashboard: the roster, live over the class WebSocket
// (docs/api.md: a "roster" event on connect, then one "learner" event per change),
// and ending the class.

import { api, describe } from "./api";

interface Entry {
  learner: string;
  session: string | null;
  step: number | null;
  checks_passed: number;
  checks_failed: number;
  last_activity: string | null;
  stuck: boolean;
  hand_raised: boolean;
  /** Steps skipped (a skip or fast-forward ran their solutions): done, not passed. */
  skipped: number[];
  /** The session's skip job, while it runs and after it ended; null when there was none. */
  skip: { state: "queued" | "running" | "done" | "failed"; to: number; by: string; message: string } | null;
}

const root = document.getElementById("classroom") as HTMLElement;
const classroomId = root.dataset.classroomId!;
const steps = Number(root.dataset.steps);
const body = document.getElementById("roster-body") as HTMLTableSectionElement;
const empty = document.getElementById("roster-empty") as HTMLElement;
const status = document.getElementById("live-status") as HTMLElement;
const counts = document.getElementById("roster-counts") as HTMLElement;
const endButton = document.getElementById("end-class") as HTMLButtonElement | null;
const message = document.getElementById("class-message") as HTMLElement;
const poolStatus = document.getElementById("pool-status") as HTMLElement;

// Learners by display name (unique enough for a room; the server keys rows itself).
const rows = new Map<string, Entry>();

function ago(iso: string | null): string {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

function cell(text: string, className = ""): HTMLTableCellElement {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function render(): void {
  const entries = [...rows.values()].sort(
    (a, b) => Number(b.stuck) - Number(a.stuck) || a.learner.localeCompare(b.learner),
  );
  body.replaceChildren(
    ...entries.map((e) => {
      const tr = document.createElement("tr");
      tr.className = "learner-row";
      tr.dataset.learner = e.learner;
      tr.classList.toggle("stuck", e.stuck);
      const flags = [e.hand_raised ? "✋ hand raised" : "", e.stuck && !e.hand_raised ? "stuck" : ""].filter(Boolean);
      tr.append(
        cell(e.learner, "learner-name"),
        cell(e.session ? "in the lab" : "no live session", "learner-state"),
        cell(e.step === null ? "–" : `${e.step} of ${steps}`, "learner-step"),
        cell(String(e.checks_passed), "learner-passed"),
        cell(String(e.checks_failed), "learner-failed"),
        skippedCell(e),
        cell(ago(e.last_activity), "learner-activity"),
        cell(flags.join(", "), "learner-flags"),
      );
      const watch = document.createElement("td");
      if (e.session) {
        const link = document.createElement("a");
        link.href = `/classrooms/${encodeURIComponent(classroomId)}/sessions/${encodeURIComponent(e.session)}/`;
        link.textContent = "Watch";
        link.className = "btn btn-small learner-watch";
        link.target = "_blank";
        const more = document.createElement("button");
        more.type = "button";
        more.className = "btn btn-small learner-time";
        more.textContent = "+15 min";
        more.addEventListener("click", () => void giveTime(15, e.session!));
        const forward = document.createElement("button");
        forward.type = "button";
        forward.className = "btn btn-small learner-forward";
        forward.textContent = "Fast-forward";
        forward.title = "Fast-forward this learner to the step chosen above";
        forward.disabled = e.skip?.state === "queued" || e.skip?.state === "running";
        forward.addEventListener("click", () => void fastForward(e.session!));
        watch.append(link, " ", more, " ", forward);
      }
      tr.append(watch);
      return tr;
    }),
  );
  empty.hidden = entries.length > 0;
  const stuck = entries.filter((e) => e.stuck).length;
  counts.textContent = `${entries.length} joined${stuck ? `, ${stuck} need help` : ""}`;
}

function skippedCell(e: Entry): HTMLTableCellElement {
  const td = cell((e.skipped ?? []).join(", ") || "–", "learner-skipped");
  if (e.skip) {
    // The skip job's own words: "Skipping step 2 (1 of 2): running its solution...", "Skipped to step 3."
    const note = document.createElement("small");
    note.className = "learner-skip";
    note.dataset.state = e.skip.state;
    note.textContent = e.skip.message;
    td.append(document.createElement("br"), note);
  }
  return td;
}

let delay = 1000;

function connect(): void {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/classrooms/${encodeURIComponent(classroomId)}/`);
  socket.addEventListener("open", () => {
    delay = 1000;
    status.textContent = "live";
    status.className = "live-status live";
  });
  socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") return;
    const data = JSON.parse(event.data) as { type: string; learners?: Entry[] } & Partial<Entry>;
    if (data.type === "roster") {
      rows.clear();
      for (const entry of data.learners ?? []) rows.set(entry.learner, entry);
      render();
    } else if (data.type === "pool") {
      const pool = data as unknown as { ready: number; warming: number; wanted: number };
      poolStatus.hidden = pool.warming === 0 && pool.ready === 0;
      poolStatus.textContent = `Hot start: ${pool.ready} sandboxes ready${
        pool.warming > pool.ready ? `, ${pool.warming - pool.ready} getting ready` : ""
      } for ${pool.wanted} seats still free.`;
    } else if (data.type === "learner") {
      const { type: _type, ...entry } = data;
      rows.set(entry.learner!, entry as Entry);
      render();
    }
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4404 || event.code === 4401 || event.code === 4403) {
      status.textContent = "not available";
      status.className = "live-status gone";
      return;
    }
    status.textContent = "reconnecting…";
    status.className = "live-status reconnecting";
    window.setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15000);
  });
}

endButton?.addEventListener("click", async () => {
  if (!window.confirm("End the class now? Every learner's session ends and their machines are deleted.")) return;
  endButton.disabled = true;
  try {
    await api("DELETE", `/api/classrooms/${encodeURIComponent(classroomId)}/`);
    message.textContent = "The class is over: every session in it has ended.";
    message.hidden = false;
  } catch (error) {
    endButton.disabled = false;
    message.textContent = describe(error);
    message.hidden = false;
  }
});

function say(text: string): void {
  message.textContent = text;
  message.hidden = false;
}

document.getElementById("broadcast")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("broadcast-text") as HTMLInputElement;
  if (!input.value.trim()) return;
  try {
    const answer = await api<{ sent: number }>("POST", `/api/classrooms/${encodeURIComponent(classroomId)}/message/`, {
      text: input.value,
    });
    say(`Sent to ${answer.sent} learner${answer.sent === 1 ? "" : "s"}.`);
    input.value = "";
  } catch (error) {
    say(describe(error));
  }
});

async function giveTime(minutes: number, sessionId?: string): Promise<void> {
  try {
    const body: Record<string, unknown> = { minutes };
    if (sessionId) body.session = sessionId;
    const answer = await api<{ extended: number }>(
      "POST",
      `/api/classrooms/${encodeURIComponent(classroomId)}/time/`,
      body,
    );
    say(`${minutes} more minutes for ${answer.extended} session${answer.extended === 1 ? "" : "s"}.`);
  } catch (error) {
    say(describe(error));
  }
}

const forwardStep = document.getElementById("fast-forward-step") as HTMLSelectElement | null;

/** Fast-forward one learner (their session) or, without one, every learner. */
async function fastForward(sessionId?: string): Promise<void> {
  if (!forwardStep) return;
  const step = Number(forwardStep.value);
  try {
    const body: Record<string, unknown> = { step };
    if (sessionId) body.session = sessionId;
    const answer = await api<{ learners: { learner: string; queued: boolean; message: string }[] }>(
      "POST", `/api/classrooms/${encodeURIComponent(classroomId)}/fast-forward/`, body,
    );
    const queued = answer.learners.filter((l) => l.queued).length;
    const refused = answer.learners.filter((l) => !l.queued).map((l) => `${l.learner}: ${l.message}`);
    say(`Fast-forwarding ${queued} learner${queued === 1 ? "" : "s"} to step ${step}.`
      + (refused.length ? ` Not: ${refused.join(" ")}` : ""));
  } catch (error) {
    say(describe(error));
  }
}

document.getElementById("fast-forward")?.addEventListener("submit", (event) => {
  event.preventDefault();
  void fastForward();
});

document.getElementById("time-all")?.addEventListener("click", () => void giveTime(15));

for (const button of document.querySelectorAll<HTMLButtonElement>("[data-copy]")) {
  button.addEventListener("click", () => void navigator.clipboard?.writeText(button.dataset.copy!));
}

render();
connect();
window.setInterval(render, 15000); // keep "x min ago" current
