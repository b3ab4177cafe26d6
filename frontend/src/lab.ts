// The lab panel of a session started for a lab: the steps beside the
// terminals (session.ts runs those). Markdown comes rendered and sanitised by
// the server; this script adds Copy and Run buttons to code blocks, fills in
// port URLs, runs checks, and follows the set-up while it runs. Progress is
// the server's (per learner), so a reload or a new session resumes it.
// Inline code marked {{run}} types itself on a click, {{copy}} copies itself,
// and a block marked onopen (a KillerCoda foreground script) is typed into
// the terminal once per session, when its page first opens.

import { api, ApiError, describe, Instance, Session } from "./api";

interface Step {
  number: number;
  title: string;
  text: string;
  instance: string | null;
  has_check: boolean;
  hint: string | null;
  has_solution: boolean;
  /** Why this step cannot be skipped past ("step 3 has no solution"), or null. */
  skip_blocker: string | null;
}

interface Progress {
  completed: number[];
  /** Steps skipped (their solution ran, then their check passed): done, not passed. */
  skipped: number[];
  current: number | null;
  finished: boolean;
}

interface Lab {
  slug: string;
  title: string;
  intro: string;
  finish: string;
  auto_check: boolean;
  skippable: boolean;
  steps: Step[];
  progress: Progress;
}

interface CheckResult {
  passed: boolean;
  output: string;
  hint: string | null;
  progress: Progress;
}

interface Skip {
  state: "queued" | "running" | "done" | "failed";
  to: number;
  by: "learner" | "instructor";
  message: string;
  output: string;
}

interface SessionLab {
  setup: { state: "none" | "pending" | "running" | "done" | "failed"; output: string };
  progress: Progress;
  skip: Skip | null;
}

const panel = document.getElementById("lab") as HTMLElement;
const sid = panel.dataset.session!;
const slug = panel.dataset.lab!;
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const titleEl = $("lab-title");
const counter = $("lab-counter");
const setupStrip = $("lab-setup");
const body = $("lab-body");
const result = $("lab-result");
const backButton = $<HTMLButtonElement>("lab-back");
const checkButton = $<HTMLButtonElement>("lab-check");
const nextButton = $<HTMLButtonElement>("lab-next");
const skipBar = $("lab-skip");
const skipSelect = $<HTMLSelectElement>("lab-skip-to");
const skipButton = $<HTMLButtonElement>("lab-skip-button");
const skipWhy = $("lab-skip-why");
const skipStatus = $("lab-skip-status");

let lab: Lab;
let progress: Progress;
/** 0: the intro, 1..n: steps, n + 1: the finish page. */
let view = 0;
let session: Session = JSON.parse(document.getElementById("session-data")!.textContent!);
let setupBusy = false;
let checking = false;
/** A skip job runs in the session (the learner's, or an instructor's fast-forward). */
let skipping = false;

// -- rendering -----------------------------------------------------------------------

/** Passed or skipped: either unlocks the next step. */
function done(step: number): boolean {
  return progress.completed.includes(step) || progress.skipped.includes(step);
}

function unlocked(step: number): boolean {
  return progress.current === null || step <= progress.current;
}

function render(): void {
  const last = lab.steps.length + 1;
  result.hidden = true;
  // Collapsed sections the learner opened stay open when the same page is drawn again (after a check).
  const opened = panel.dataset.view === String(view)
    ? Array.from(body.querySelectorAll("details"), (section) => section.open) : [];
  if (view === 0) {
    titleEl.textContent = lab.title;
    counter.textContent = `${lab.steps.length} steps`;
    body.innerHTML = lab.intro;
  } else if (view === last) {
    titleEl.textContent = "Finished";
    counter.textContent = progress.finished ? "all steps done" : "";
    body.innerHTML = lab.finish;
  } else {
    const step = lab.steps[view - 1];
    titleEl.textContent = `${step.number}. ${step.title}`;
    const state = progress.skipped.includes(step.number) ? " · skipped" : done(step.number) ? " · done" : "";
    counter.textContent = `Step ${step.number} of ${lab.steps.length}${state}`;
    body.innerHTML = step.text;
  }
  panel.dataset.view = String(view);
  body.querySelectorAll("details").forEach((section, index) => {
    if (opened[index]) section.open = true;
  });
  decorate(body);
  fillPorts(body);
  typeOnOpen(body, view);
  backButton.disabled = view === 0;
  const onStep = view >= 1 && view < last;
  checkButton.hidden = !onStep;
  checkButton.disabled = !onStep || setupBusy || checking || skipping;
  checkButton.textContent = onStep && !lab.steps[view - 1].has_check ? "Done" : "Check";
  nextButton.hidden = view === last;
  nextButton.textContent = view === 0 ? "Start" : view === last - 1 ? "Finish" : "Next";
  nextButton.disabled = onStep && !done(view);
  nextButton.title = nextButton.disabled ? "Pass this step's check first." : "";
  body.scrollTop = 0;
  renderSkip();
}

function showResult(passed: boolean, output: string, hint: string | null): void {
  result.hidden = false;
  result.dataset.passed = String(passed);
  const heading = document.createElement("p");
  heading.className = "lab-result-title";
  heading.textContent = passed ? "Passed" : "Not yet";
  const parts: HTMLElement[] = [heading];
  if (output.trim()) {
    const pre = document.createElement("pre");
    pre.className = "lab-output";
    pre.textContent = output;
    parts.push(pre);
  }
  if (!passed && hint) {
    const box = document.createElement("div");
    box.className = "lab-hint";
    box.innerHTML = `<strong>Hint</strong> ${hint}`;  // rendered and sanitised by the server
    parts.push(box);
  }
  result.replaceChildren(...parts);
}

// -- code blocks: Copy and Run ----------------------------------------------------------------

function decorate(root: HTMLElement): void {
  for (const pre of root.querySelectorAll<HTMLPreElement>("pre.lab-code")) {
    const code = pre.querySelector("code")?.textContent ?? "";
    const bar = document.createElement("div");
    bar.className = "lab-code-bar";
    const copy = button("Copy", "Copy to the clipboard", async () => {
      await copyText(code);
      copy.textContent = "Copied";
      window.setTimeout(() => (copy.textContent = "Copy"), 1500);
    });
    bar.append(copy);
    if (pre.dataset.run !== undefined) {
      const target = pre.dataset.run || firstInstanceName();
      const interrupt = pre.dataset.interrupt === "1";
      const run = button(interrupt ? `Stop & run on ${target}` : `Run on ${target}`,
        interrupt ? `Press Ctrl-C in ${target}'s terminal, then type this there` : `Type this into ${target}'s terminal`,
        () => void runIn(target, code, interrupt));
      run.classList.add("lab-run");
      bar.append(run);
    }
    pre.before(bar);
  }
  for (const code of root.querySelectorAll<HTMLElement>("code.lab-run-inline[data-run]")) {
    const target = code.dataset.run || firstInstanceName();
    const interrupt = code.dataset.interrupt === "1";
    code.tabIndex = 0;
    code.setAttribute("role", "button");
    code.title = interrupt ? `Press Ctrl-C in ${target}'s terminal, then type this there` : `Type this into ${target}'s terminal`;
    const run = () => void runIn(target, code.textContent ?? "", interrupt);
    code.addEventListener("click", run);
    code.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        run();
      }
    });
  }
  for (const code of root.querySelectorAll<HTMLElement>("code.lab-copy")) {
    code.tabIndex = 0;
    code.setAttribute("role", "button");
    code.title = "Copy to the clipboard";
    code.addEventListener("click", async () => {
      await copyText(code.textContent ?? "");
      code.dataset.copied = "1";
      window.setTimeout(() => delete code.dataset.copied, 1500);
    });
  }
}

/** Type the page's onopen blocks into their terminals, the first time this
 * session shows the page (remembered in the browser, so a reload or going
 * back does not type them again). */
function typeOnOpen(root: HTMLElement, page: number): void {
  root.querySelectorAll<HTMLPreElement>("pre.lab-code[data-onopen]").forEach((pre, index) => {
    const key = `pg-lab-onopen:${sid}:${page}:${index}`;
    try {
      if (window.localStorage.getItem(key)) return;
      window.localStorage.setItem(key, "1");
    } catch {
      // No storage (a private window's quota): typed again after a reload.
    }
    const target = pre.dataset.run || firstInstanceName();
    void runIn(target, pre.querySelector("code")?.textContent ?? "", pre.dataset.interrupt === "1");
  });
}

function button(label: string, title: string, action: () => void): HTMLButtonElement {
  const element = document.createElement("button");
  element.type = "button";
  element.className = "btn btn-small";
  element.textContent = label;
  element.title = title;
  element.addEventListener("click", action);
  return element;
}

async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard permission (plain http): the old way.
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

function firstInstanceName(): string {
  return session.instances[0]?.hostname ?? "node1";
}

async function instanceNamed(name: string): Promise<Instance | undefined> {
  let found = session.instances.find((i) => i.hostname === name && i.state !== "failed");
  if (!found) {
    session = await api<Session>("GET", `/api/sessions/${encodeURIComponent(sid)}/`);
    found = session.instances.find((i) => i.hostname === name && i.state !== "failed");
  }
  return found;
}

/** Show the instance's terminal (session.ts connects it) and type into it. */
async function runIn(name: string, code: string, interrupt: boolean): Promise<void> {
  try {
    const instance = await instanceNamed(name);
    if (!instance) {
      showResult(false, `This session has no instance named ${name}.`, null);
      return;
    }
    document.querySelector<HTMLButtonElement>(`#instances [data-iid="${instance.id}"] .instance-pick`)?.click();
    const client = await waitFor(() => {
      const candidate = window.playgroundTerminals?.[instance.id];
      return candidate && candidate.state === "live" ? candidate : null;
    }, 60_000);
    if (!client) {
      showResult(false, `${name}'s terminal is not connected yet; try again in a moment.`, null);
      return;
    }
    if (interrupt) client.term.input("\x03", true);
    // Typed as keys, line by line: Enter after each line, as a person would.
    const lines = code.replace(/\n+$/, "").split("\n");
    client.term.input(lines.join("\r") + "\r", true);
    client.focus();
  } catch (failure) {
    showResult(false, describe(failure), null);
  }
}

function waitFor<T>(probe: () => T | null | undefined, timeout: number): Promise<T | null> {
  return new Promise((resolve) => {
    const deadline = Date.now() + timeout;
    const tick = () => {
      const value = probe();
      if (value) resolve(value);
      else if (Date.now() > deadline) resolve(null);
      else window.setTimeout(tick, 100);
    };
    tick();
  });
}

// -- port placeholders -------------------------------------------------------------------------

function fillPorts(root: HTMLElement): void {
  for (const element of root.querySelectorAll<HTMLElement>("[data-port]")) {
    const [name, port] = element.dataset.port!.split(":");
    const instance = session.instances.find((i) => i.hostname === name);
    const base = instance?.ports.find((p) => String(p.port) === port)?.url;
    // A path after the port ({{url node1 80}}/api) goes after the port's URL.
    const path = element.dataset.portPath ?? "";
    const url = base && path ? base.replace(/\/$/, "") + (path.startsWith("/") ? path : `/${path}`) : base;
    if (element instanceof HTMLAnchorElement) {
      if (url) element.href = url;
      element.title = url ? url : `Port ${port} of ${name} is not open yet.`;
      element.classList.toggle("lab-port-closed", !url);
    } else {
      element.textContent = url ?? `port ${port} of ${name} (not open yet)`;
    }
  }
}

// -- checks ---------------------------------------------------------------------------------------

/** Check the step on view. `auto`: the player's own check (auto_check labs),
 * quiet unless it passes; it says so to the server, which then does not count
 * its failures as the learner's (nor flag them stuck in a class). */
async function check(auto = false): Promise<void> {
  if (view < 1 || view > lab.steps.length || checking) return;
  const step = lab.steps[view - 1];
  checking = true;
  checkButton.disabled = true;
  checkButton.classList.add("busy");
  try {
    const answer = await api<CheckResult>("POST", `/api/sessions/${encodeURIComponent(sid)}/check/`,
      auto ? { step: step.number, auto: true } : { step: step.number });
    progress = answer.progress;
    if (!auto || answer.passed) {
      render();
      showResult(answer.passed, answer.output, answer.hint);
    }
  } catch (failure) {
    if (!auto) showResult(false, describe(failure), null);
    // Automatic checks share the learner's rate limit: leave room for the learner's own checks and commands.
    else if (failure instanceof ApiError && failure.status === 429) autoPause = (failure.retryAfter ?? 10) * 1000;
  } finally {
    checking = false;
    checkButton.classList.remove("busy");
    checkButton.disabled = setupBusy;
  }
}

const AUTO_CHECK_MS = 5000;
let autoTimer: number | undefined;
/** How long the next automatic check waits after a 429 (ms), else 0. */
let autoPause = 0;

function scheduleAutoCheck(): void {
  window.clearTimeout(autoTimer);
  if (!lab.auto_check) return;
  const delay = Math.max(AUTO_CHECK_MS, autoPause);
  autoPause = 0;
  autoTimer = window.setTimeout(async () => {
    // A step without a check ("Done") is the learner's to finish.
    if (!document.hidden && view >= 1 && view <= lab.steps.length && lab.steps[view - 1].has_check
        && !done(view) && !setupBusy) {
      await check(true);
    }
    scheduleAutoCheck();
  }, delay);
}

// -- skipping to a step ----------------------------------------------------------------------------

/** Why skipping to step `to` is not allowed ("step 3 has no solution"), or "". */
function skipBlocker(to: number): string {
  for (const step of lab.steps) {
    if (step.number >= to) break;
    if (!done(step.number) && step.skip_blocker) return step.skip_blocker;
  }
  return "";
}

function renderSkip(): void {
  const current = progress.current;
  // Offered where the lab (or one of its steps) allows skipping, and some later step is left.
  const offered = (lab.skippable || lab.steps.some((s) => s.skip_blocker === null))
    && current !== null && current < lab.steps.length;
  skipBar.hidden = !offered;
  if (!offered) return;
  const wanted = Number(skipSelect.value) > current! ? Number(skipSelect.value) : current! + 1;
  skipSelect.replaceChildren(...lab.steps.filter((s) => s.number > current!).map((s) =>
    new Option(`step ${s.number}`, String(s.number), false, s.number === wanted)));
  const to = Number(skipSelect.value);
  const why = skipBlocker(to);
  skipButton.textContent = `Skip to step ${to}`;
  skipButton.disabled = Boolean(why) || skipping || setupBusy;
  skipButton.title = why ? `Cannot skip: ${why}.` : `Run the solutions of the steps before step ${to} that are not done, then their checks`;
  skipWhy.textContent = why ? `(${why})` : "";
}

function showSkip(skip: Skip | null): void {
  skipStatus.hidden = !skip;
  if (!skip) return;
  skipStatus.dataset.state = skip.state;
  const line = Object.assign(document.createElement("p"), {
    textContent: skip.by === "instructor" && skip.state !== "failed" ? `Your instructor: ${skip.message}` : skip.message,
  });
  line.className = "lab-skip-message";
  const parts: HTMLElement[] = [line];
  if (skip.state === "failed" && skip.output.trim()) {
    parts.push(Object.assign(document.createElement("pre"), { className: "lab-output", textContent: skip.output }));
  }
  skipStatus.replaceChildren(...parts);
}

async function skipTo(to: number): Promise<void> {
  skipButton.disabled = true;
  try {
    const answer = await api<{ skip: Skip }>("POST", `/api/sessions/${encodeURIComponent(sid)}/skip/`, { step: to });
    showSkip(answer.skip);
    skipping = true;
    void followSkip();
  } catch (failure) {
    showSkip({ state: "failed", to, by: "learner", message: describe(failure), output: "" });
    renderSkip();
  }
}

/** The last skip job seen, so that one that ended while nobody looked (an
 * instructor's fast-forward) moves the page on once. */
let lastSkip = "";

/** Look at the session's skip job: while it runs, again every second; when it
 * ended, take the progress it left and go to the learner's current step. */
async function followSkip(initial = false): Promise<void> {
  let state: SessionLab;
  try {
    state = await api<SessionLab>("GET", `/api/sessions/${encodeURIComponent(sid)}/lab/`);
  } catch {
    if (skipping) window.setTimeout(() => void followSkip(), 3000);
    return;
  }
  const { skip } = state;
  const seen = JSON.stringify(skip);
  const changed = seen !== lastSkip;
  lastSkip = seen;
  const busy = skip !== null && (skip.state === "queued" || skip.state === "running");
  // On load, an earlier skip's outcome is old news: only one still running is shown.
  if (initial && !busy) return;
  if (changed) showSkip(skip);
  if (busy) {
    skipping = true;
    renderSkip();
    checkButton.disabled = true;
    window.setTimeout(() => void followSkip(), 1000);
    return;
  }
  const ended = skipping || changed;
  skipping = false;
  if (ended || JSON.stringify(state.progress) !== JSON.stringify(progress)) {
    progress = state.progress;
    if (skip?.state === "done" && ended) view = progress.current ?? lab.steps.length + 1;
    render();
  }
}

skipSelect.addEventListener("change", () => renderSkip());
skipButton.addEventListener("click", () => void skipTo(Number(skipSelect.value)));

// -- set-up -----------------------------------------------------------------------------------------

async function followSetup(): Promise<void> {
  let state: SessionLab;
  try {
    state = await api<SessionLab>("GET", `/api/sessions/${encodeURIComponent(sid)}/lab/`);
  } catch {
    window.setTimeout(() => void followSetup(), 5000);
    return;
  }
  const { setup } = state;
  setupBusy = setup.state === "pending" || setup.state === "running";
  setupStrip.hidden = setup.state === "none" || setup.state === "done";
  setupStrip.dataset.state = setup.state;
  if (setupBusy) {
    setupStrip.textContent = "Setting up the lab... the checks wait for it.";
    window.setTimeout(() => void followSetup(), 1500);
  } else if (setup.state === "failed") {
    setupStrip.replaceChildren(
      Object.assign(document.createElement("p"), { textContent: "The lab's set-up failed; some steps may not work." }),
      Object.assign(document.createElement("pre"), { className: "lab-output", textContent: setup.output }),
    );
  }
  checkButton.disabled = setupBusy || checking || skipping || Boolean(checkButton.hidden);
  renderSkip();
}

// -- navigation ----------------------------------------------------------------------------------

backButton.addEventListener("click", () => {
  view = Math.max(0, view - 1);
  render();
});
nextButton.addEventListener("click", () => {
  if (view >= 1 && view <= lab.steps.length && !done(view)) return;
  const next = view + 1;
  view = next <= lab.steps.length && !unlocked(next) ? view : next;
  render();
});
checkButton.addEventListener("click", () => void check());

async function refreshSession(): Promise<void> {
  try {
    session = await api<Session>("GET", `/api/sessions/${encodeURIComponent(sid)}/`);
    fillPorts(body);
  } catch {
    // session.ts shows what went wrong with the session itself.
  }
}

async function main(): Promise<void> {
  try {
    lab = await api<Lab>("GET", `/api/labs/${encodeURIComponent(slug)}/`);
  } catch (failure) {
    body.textContent = `The lab could not be loaded: ${describe(failure)}`;
    return;
  }
  progress = lab.progress;
  // Resume where the learner is: the intro for a newcomer, else the current step.
  if (progress.finished) view = lab.steps.length + 1;
  else if (progress.completed.length > 0 && progress.current) view = progress.current;
  render();
  await followSetup();
  // A skip already running (a reload), or one an instructor starts later.
  await followSkip(true);
  window.setInterval(() => {
    if (!skipping && !document.hidden) void followSkip();
  }, 10_000);
  scheduleAutoCheck();
  window.setInterval(() => void refreshSession(), 15_000);
}

void main();
