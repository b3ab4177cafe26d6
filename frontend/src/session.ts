// The session page: the instance list, one terminal per instance (the
// selected one shown), the time left with its warning and Extend button, and
// the "session over" screen. The server renders the page and hands the
// session's JSON in #session-data; this script keeps it current.

import { api, ApiError, describe, Instance, InstanceStats, LIVE_STATES, serverClockOffset, Session, startSession } from "./api";
import { FONT_MAX, FONT_MIN, saveFontSize, savedFontSize, TerminalClient } from "./terminal";
import { enableDownload, enableDrop, FileTarget } from "./files";

declare global {
  interface Window {
    /** Test hook: the terminals of this page by instance id (text(), term, state). */
    playgroundTerminals: Record<string, TerminalClient>;
  }
}

const LIVE_INSTANCE = new Set(["provisioning", "running"]);
const POLL_BUSY_MS = 2_000;
// Also how soon a port a server starts listening on shows up as a link.
const POLL_IDLE_MS = 5_000;

const root = document.getElementById("session") as HTMLElement;
const config = {
  maxInstances: Number(root.dataset.maxInstances),
  maxExtensions: Number(root.dataset.maxExtensions),
  extensionSeconds: Number(root.dataset.extensionSeconds),
  warnSeconds: Number(root.dataset.warnSeconds),
  maxFileBytes: Number(root.dataset.maxFileBytes) || 0,
};
let session: Session = JSON.parse(document.getElementById("session-data")!.textContent!);

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const list = $<HTMLUListElement>("instances");
const panes = $("panes");
const countLabel = $("instance-count");
const setupStatus = $("setup-status");
const addButton = $<HTMLButtonElement>("add-instance");
const timer = $("timer");
const countdown = $("countdown");
const extendButtons = document.querySelectorAll<HTMLButtonElement>("[data-action=extend]");
const endButton = $<HTMLButtonElement>("end-session");
const expiryWarning = $("expiry-warning");
const expiryWarningText = $("expiry-warning-text");
const notice = $("notice");
const noticeText = $("notice-text");
const overScreen = $("over");
const overReason = $("over-reason");
const emptyState = $("no-instance");

interface Pane {
  element: HTMLElement;
  screen: HTMLElement;
  connection: HTMLElement;
  client: TerminalClient | null;
}

const paneOf = new Map<string, Pane>();
let selected: string | null = null;
let over = false;
let pollTimer: number | undefined;
let pollDueAt = 0;
window.playgroundTerminals = {};

// -- notices ----------------------------------------------------------------------

let noticeTimer: number | undefined;

function showNotice(text: string, kind: "error" | "info" | "message" = "error"): void {
  noticeText.textContent = text;
  notice.dataset.kind = kind;
  notice.hidden = false;
  window.clearTimeout(noticeTimer);
  // An instructor's message stays until dismissed.
  if (kind === "info") noticeTimer = window.setTimeout(() => (notice.hidden = true), 6000);
}

// One message reaches every terminal of the page: show it once.
let lastMessage = "";

$("notice-close").addEventListener("click", () => (notice.hidden = true));

// -- instances ---------------------------------------------------------------------

function liveInstances(): Instance[] {
  return session.instances.filter((i) => LIVE_INSTANCE.has(i.state));
}

/** A template's set-up (e.g. the swarm being formed), while it runs and if it failed. */
function renderSetup(): void {
  const setup = session.setup;
  setupStatus.hidden = !setup;
  if (!setup) return;
  const prefix = session.template ? `${session.template}: ` : "";
  const text: Record<string, string> = {
    pending: "setting up",
    running: "setting up",
    done: "ready",
    failed: "set-up failed",
  };
  setupStatus.textContent = `${prefix}${text[setup.state] ?? setup.state}${setup.state === "done" ? "" : ` (${setup.message})`}`;
  setupStatus.className = `setup-status setup-${setup.state}`;
}

function renderInstances(): void {
  const items = session.instances.map((instance) => {
    const item = document.createElement("li");
    item.className = "instance";
    item.dataset.iid = instance.id;
    item.classList.toggle("selected", instance.id === selected);

    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "instance-pick";
    pick.setAttribute("aria-pressed", String(instance.id === selected));
    const name = document.createElement("span");
    name.className = "instance-name";
    name.textContent = instance.hostname;
    const ip = document.createElement("span");
    ip.className = "instance-ip";
    ip.textContent = instance.ip ?? "no address yet";
    pick.append(name, ip);
    const role = session.setup?.roles?.[instance.hostname];
    if (role) {
      const badge = document.createElement("span");
      badge.className = "instance-role";
      badge.textContent = role;
      name.append(" ", badge);
    }
    pick.addEventListener("click", () => select(instance.id));

    const state = document.createElement("span");
    state.className = `badge state-${instance.state}`;
    state.textContent = instance.state;
    if (instance.reason) state.title = instance.reason;

    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "icon-button instance-delete";
    remove.title = `Delete ${instance.hostname}`;
    remove.setAttribute("aria-label", `Delete ${instance.hostname}`);
    remove.textContent = "×";
    remove.addEventListener("click", () => deleteInstance(instance));

    item.append(pick, state, remove);
    if (instance.state === "running" && instance.ports?.length) item.append(portLinks(instance));
    if (instance.state === "running" && instance.stats) item.append(statsLine(instance.stats));
    return item;
  });
  list.replaceChildren(...items);
  renderSetup();

  const live = liveInstances().length;
  countLabel.textContent = `${live} of ${config.maxInstances}`;
  const full = live >= config.maxInstances;
  addButton.disabled = full || over;
  addButton.title = full ? `A session may have at most ${config.maxInstances} instances.` : "";
  emptyState.hidden = session.instances.length > 0;
}

function paneFor(instance: Instance): Pane {
  let pane = paneOf.get(instance.id);
  if (pane) return pane;
  const element = document.createElement("section");
  element.className = "pane";
  element.dataset.iid = instance.id;
  element.setAttribute("aria-label", `Terminal of ${instance.hostname}`);

  const bar = document.createElement("div");
  bar.className = "pane-bar";
  const title = document.createElement("span");
  title.className = "pane-title";
  title.textContent = instance.hostname;
  const connection = document.createElement("span");
  connection.className = "connection";
  const spacer = document.createElement("span");
  spacer.className = "spacer";
  const smaller = toolButton("A−", "Smaller text", () => changeFont(-1));
  const bigger = toolButton("A+", "Larger text", () => changeFont(+1));
  smaller.dataset.font = "smaller";
  bigger.dataset.font = "bigger";
  const full = toolButton("Full screen", "Show this terminal on the whole screen", () => toggleFullscreen(element));
  full.classList.add("fullscreen-toggle");
  bar.append(title, connection, spacer, smaller, bigger, full);
  enableDrop(element, () => fileTarget(instance.id), config.maxFileBytes, showNotice);

  const screen = document.createElement("div");
  screen.className = "term-host";
  element.append(bar, screen);
  panes.append(element);
  pane = { element, screen, connection, client: null };
  paneOf.set(instance.id, pane);
  updateFontButtons();
  return pane;
}

function toolButton(label: string, title: string, action: () => void): HTMLButtonElement {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "tool-button";
  button.textContent = label;
  button.title = title;
  button.addEventListener("click", action);
  return button;
}

function connectPane(instance: Instance, pane: Pane): void {
  if (pane.client || over) return;
  if (!LIVE_INSTANCE.has(instance.state)) {
    const why = instance.reason ? `: ${instance.reason}` : ".";
    const message = document.createElement("p");
    message.className = "pane-message";
    message.textContent = `${instance.hostname} is ${instance.state}${why}`;
    pane.screen.replaceChildren(message);
    return;
  }
  pane.screen.replaceChildren();
  const client = new TerminalClient(pane.screen, {
    path: instance.terminal,
    name: instance.hostname,
    onExpiry: (expiresAt) => {
      session.expires_at = expiresAt;
      tick();
    },
    onMessage: (text, from) => {
      const shown = `${from ? `${from} (instructor)` : "Your instructor"}: ${text}`;
      if (shown === lastMessage && !notice.hidden) return;
      lastMessage = shown;
      showNotice(shown, "message");
    },
    onSessionOver: () => void refresh(),
    onStatus: (state) => {
      if (state === "running" && findInstance(instance.id)?.state === "provisioning") void refresh();
    },
    onPhase: (phase, text) => {
      pane.connection.dataset.phase = phase;
      pane.connection.textContent = phase === "live" ? "connected" : phase === "over" ? "disconnected" : text.includes("Reconnect") ? "reconnecting…" : "connecting…";
    },
  });
  pane.client = client;
  window.playgroundTerminals[instance.id] = client;
}

function findInstance(iid: string | null): Instance | undefined {
  return session.instances.find((i) => i.id === iid);
}

function select(iid: string): void {
  const instance = findInstance(iid);
  if (!instance) return;
  selected = iid;
  const pane = paneFor(instance);
  for (const [id, other] of paneOf) other.element.classList.toggle("active", id === iid);
  connectPane(instance, pane);
  renderInstances();
  history.replaceState(null, "", `#${instance.hostname}`);
  document.title = `${instance.hostname} · Container playground`;
  requestAnimationFrame(() => {
    pane.client?.fitNow();
    pane.client?.focus();
  });
}

/** Bring panes in line with the session: drop the deleted, connect the started. */
function syncPanes(): void {
  for (const [iid, pane] of paneOf) {
    const instance = findInstance(iid);
    if (!instance) {
      pane.client?.dispose();
      delete window.playgroundTerminals[iid];
      pane.element.remove();
      paneOf.delete(iid);
    } else if (iid === selected) {
      connectPane(instance, pane);
    }
  }
  if (!findInstance(selected)) {
    const next = liveInstances()[0] ?? session.instances[0];
    selected = null;
    if (next) select(next.id);
  }
  renderInstances();
}

async function addInstance(): Promise<void> {
  addButton.disabled = true;
  try {
    const instance = await api<Instance>("POST", `/api/sessions/${session.id}/instances/`, {});
    session.instances = [...session.instances.filter((i) => i.id !== instance.id), instance];
    select(instance.id);
    schedulePoll(POLL_BUSY_MS);
  } catch (error) {
    handleError(error);
  } finally {
    renderInstances();
  }
}

async function deleteInstance(instance: Instance): Promise<void> {
  if (!window.confirm(`Delete ${instance.hostname}? Everything on it is lost.`)) return;
  try {
    await api("DELETE", `/api/sessions/${session.id}/instances/${instance.id}/`);
    session.instances = session.instances.filter((i) => i.id !== instance.id);
    syncPanes();
  } catch (error) {
    handleError(error);
  }
}

// -- stats --------------------------------------------------------------------------------

const MiB = 1024 * 1024;

/** "CPU 3% · 21/512 MiB" under a running instance. */
function statsLine(stats: InstanceStats): HTMLElement {
  const line = document.createElement("span");
  line.className = "instance-stats";
  const cpu = stats.cpu_percent === null ? "–" : `${Math.round(stats.cpu_percent)}%`;
  const used = Math.round(stats.memory_bytes / MiB);
  const limit = Math.round(stats.memory_limit_bytes / MiB);
  line.textContent = `CPU ${cpu} · ${used}/${limit} MiB`;
  line.title = "CPU use (100% is one CPU busy) and memory in use of its limit, a few seconds ago";
  return line;
}

// -- ports --------------------------------------------------------------------------------
// Each link opens the port on an origin of its own (docs/api.md, "Ports"); its
// grant is fresh from the last poll.

function portLinks(instance: Instance): HTMLElement {
  const box = document.createElement("div");
  box.className = "instance-ports";
  box.setAttribute("aria-label", `Open ports of ${instance.hostname}`);
  for (const { port, url } of instance.ports) {
    const link = document.createElement("a");
    link.className = "port-link";
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = String(port);
    link.title = `Open port ${port} of ${instance.hostname} in a new tab`;
    box.append(link);
  }
  return box;
}

/** Where files of instance ``iid`` go: null unless it is there and not over. */
function fileTarget(iid: string | null): FileTarget | null {
  const instance = findInstance(iid);
  if (!instance || over || instance.state === "stopped" || instance.state === "failed") return null;
  return { sessionId: session.id, instanceId: instance.id, hostname: instance.hostname };
}

enableDownload($<HTMLFormElement>("download-file"), $<HTMLInputElement>("download-file-path"), () => fileTarget(selected), showNotice);

const openPortForm = $<HTMLFormElement>("open-port");
const openPortNumber = $<HTMLInputElement>("open-port-number");

openPortForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const instance = findInstance(selected);
  const port = Number(openPortNumber.value);
  if (!instance || !Number.isInteger(port) || port < 1 || port > 65535) {
    showNotice("Give a port number from 1 to 65535, with an instance selected.");
    return;
  }
  // Opened now, while the click counts as the user's, and pointed at the port once known.
  const tab = window.open("", "_blank");
  try {
    const { url } = await api<{ port: number; url: string }>(
      "POST", `/api/sessions/${session.id}/instances/${instance.id}/ports/`, { port },
    );
    if (tab) {
      tab.opener = null;
      tab.location.href = url;
    } else window.location.assign(url);
  } catch (error) {
    tab?.close();
    handleError(error);
  }
});

// -- font size and full screen ---------------------------------------------------------

function changeFont(step: number): void {
  const size = saveFontSize(savedFontSize() + step);
  for (const pane of paneOf.values()) pane.client?.setFontSize(size);
  updateFontButtons();
}

function updateFontButtons(): void {
  const size = savedFontSize();
  for (const button of document.querySelectorAll<HTMLButtonElement>("[data-font]")) {
    button.disabled = button.dataset.font === "smaller" ? size <= FONT_MIN : size >= FONT_MAX;
  }
}

function toggleFullscreen(element: HTMLElement): void {
  if (document.fullscreenElement) void document.exitFullscreen();
  else void element.requestFullscreen?.().catch(() => showNotice("This browser refused to go full screen."));
}

document.addEventListener("fullscreenchange", () => {
  for (const pane of paneOf.values()) {
    const full = document.fullscreenElement === pane.element;
    const toggle = pane.element.querySelector(".fullscreen-toggle");
    if (toggle) toggle.textContent = full ? "Exit full screen" : "Full screen";
  }
  const current = selected ? paneOf.get(selected)?.client : null;
  current?.focus();
});

// -- time left -----------------------------------------------------------------------------

function secondsLeft(): number {
  return Math.floor((Date.parse(session.expires_at) - (Date.now() + serverClockOffset)) / 1000);
}

function clock(seconds: number): string {
  const s = Math.max(0, seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

function tick(): void {
  if (over) return;
  const left = secondsLeft();
  countdown.textContent = clock(left);
  const warn = left <= config.warnSeconds;
  timer.classList.toggle("warning", warn);
  expiryWarning.hidden = !warn;
  if (warn) {
    expiryWarningText.textContent =
      left > 0 ? `This session ends in ${clock(left)}. Everything in it will be deleted.` : "This session is ending…";
  }
  const canExtend = (session.extensions ?? 0) < config.maxExtensions;
  for (const button of extendButtons) {
    button.disabled = !canExtend;
    button.title = canExtend
      ? `Add ${Math.round(config.extensionSeconds / 60)} minutes`
      : "This session was extended the most times allowed.";
  }
  if (left <= 0) schedulePoll(1000);
}

async function extend(): Promise<void> {
  for (const button of extendButtons) button.disabled = true;
  try {
    session = await api<Session>("POST", `/api/sessions/${session.id}/extend/`);
    const until = new Date(Date.parse(session.expires_at)).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    showNotice(`Extended: the session now ends at ${until}.`, "info");
  } catch (error) {
    handleError(error);
  } finally {
    tick();
  }
}

for (const button of extendButtons) button.addEventListener("click", () => void extend());

// In a class: raise or lower a hand, which the instructor's dashboard shows.
const handButton = document.getElementById("raise-hand") as HTMLButtonElement | null;
handButton?.addEventListener("click", async () => {
  const raise = handButton.getAttribute("aria-pressed") !== "true";
  handButton.disabled = true;
  try {
    const answer = await api<{ raised: boolean }>("POST", `/api/sessions/${session.id}/hand/`, { raised: raise });
    handButton.setAttribute("aria-pressed", String(answer.raised));
    handButton.textContent = answer.raised ? "Lower hand" : "✋ Raise hand";
  } catch (error) {
    handleError(error);
  } finally {
    handButton.disabled = false;
  }
});

// -- the session's state -------------------------------------------------------------------

async function refresh(): Promise<void> {
  try {
    session = await api<Session>("GET", `/api/sessions/${session.id}/`);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 410)) {
      showOver(error.status === 404 ? "This session no longer exists." : error.message);
      return;
    }
    schedulePoll(POLL_IDLE_MS); // a blip: keep the page as it is and try later
    return;
  }
  if (!LIVE_STATES.has(session.state)) {
    showOver(overText(session));
    return;
  }
  syncPanes();
  tick();
  const busy =
    session.state === "starting" ||
    session.instances.some((i) => i.state === "provisioning") ||
    session.setup?.state === "pending" ||
    session.setup?.state === "running";
  schedulePoll(busy ? POLL_BUSY_MS : POLL_IDLE_MS);
}

/** Poll the session in ``delay`` ms, unless a poll is due sooner already. */
function schedulePoll(delay: number): void {
  if (over) return;
  const at = Date.now() + delay;
  if (pollTimer !== undefined && pollDueAt <= at) return;
  window.clearTimeout(pollTimer);
  pollDueAt = at;
  pollTimer = window.setTimeout(() => {
    pollTimer = undefined;
    void refresh();
  }, delay);
}

function overText(s: Session): string {
  const gone = "Its machines and their files are gone.";
  switch (s.state) {
    case "expired":
      return `It expired${s.reason ? `: ${s.reason}` : ""}. ${gone}`;
    case "failed":
      return `It could not start${s.reason ? `: ${s.reason}` : ""}.`;
    default:
      return `It was ${s.reason || "ended"}. ${gone}`;
  }
}

function showOver(text: string): void {
  if (over) return;
  over = true;
  window.clearTimeout(pollTimer);
  for (const pane of paneOf.values()) pane.client?.end("This session is over.");
  if (document.fullscreenElement) void document.exitFullscreen();
  overReason.textContent = text;
  overScreen.hidden = false;
  root.classList.add("is-over");
  expiryWarning.hidden = true;
  countdown.textContent = "over";
  timer.classList.remove("warning");
  for (const button of extendButtons) button.disabled = true;
  endButton.disabled = true;
  addButton.disabled = true;
  document.title = "Session over · Container playground";
  $<HTMLButtonElement>("over-start").focus();
}

async function endSession(): Promise<void> {
  if (!window.confirm("End this session? Its machines and everything on them are deleted.")) return;
  endButton.disabled = true;
  try {
    await api("DELETE", `/api/sessions/${session.id}/`);
    showOver("You ended it. Its machines and their files are gone.");
  } catch (error) {
    endButton.disabled = false;
    handleError(error);
  }
}

function handleError(error: unknown): void {
  if (error instanceof ApiError && error.status === 410) {
    void refresh();
    showOver(error.message);
    return;
  }
  showNotice(describe(error));
}

// -- start -------------------------------------------------------------------------------------

addButton.addEventListener("click", () => void addInstance());
endButton.addEventListener("click", () => void endSession());
$("over-start").addEventListener("click", async (event) => {
  const button = event.currentTarget as HTMLButtonElement;
  button.disabled = true;
  $("over-error").hidden = true;
  try {
    await startSession();
  } catch (error) {
    $("over-error").textContent = describe(error);
    $("over-error").hidden = false;
    button.disabled = false;
  }
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !over) void refresh();
});

if (!LIVE_STATES.has(session.state)) {
  renderInstances();
  showOver(overText(session));
} else {
  const wanted = session.instances.find((i) => `#${i.hostname}` === location.hash);
  const first = wanted ?? liveInstances()[0] ?? session.instances[0];
  if (first) select(first.id);
  else renderInstances();
  tick();
  window.setInterval(tick, 1000);
  schedulePoll(session.instances.some((i) => i.state === "provisioning") ? POLL_BUSY_MS : POLL_IDLE_MS);
}
