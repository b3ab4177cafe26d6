// A class's instructor looking at one learner's terminals: read-only until
// "Take over", which the learner's page shows; "Give back" (or leaving) ends it.

import { TerminalClient } from "./terminal";

interface Watched {
  id: string;
  hostname: string;
  terminal: string;
}

declare global {
  interface Window {
    playgroundTerminals: Record<string, TerminalClient>;
  }
}

const root = document.getElementById("watch") as HTMLElement;
const instances = JSON.parse(document.getElementById("watch-instances")!.textContent ?? "[]") as Watched[];
const tabs = document.getElementById("watch-tabs") as HTMLElement;
const host = document.getElementById("watch-screen") as HTMLElement;
const takeButton = document.getElementById("take-over") as HTMLButtonElement;
const state = document.getElementById("watch-state") as HTMLElement;

window.playgroundTerminals = {};
let client: TerminalClient | null = null;
let inControl = false;

function show(instance: Watched): void {
  client?.dispose();
  host.replaceChildren();
  inControl = false;
  for (const tab of tabs.querySelectorAll("button")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.iid === instance.id));
  }
  client = new TerminalClient(host, {
    path: instance.terminal,
    name: instance.hostname,
    role: "instructor",
    onControl: (by) => {
      inControl = by === "instructor";
      takeButton.textContent = inControl ? "Give back" : "Take over";
      state.textContent = inControl
        ? "You are typing in the learner's terminal; they see that you took over."
        : "Read-only: you see what the learner sees.";
    },
    onSessionOver: () => {
      state.textContent = "This learner's session is over.";
      takeButton.disabled = true;
    },
  });
  window.playgroundTerminals[instance.id] = client;
  root.dataset.iid = instance.id;
}

for (const instance of instances) {
  const tab = document.createElement("button");
  tab.type = "button";
  tab.className = "btn btn-small";
  tab.textContent = instance.hostname;
  tab.dataset.iid = instance.id;
  tab.addEventListener("click", () => show(instance));
  tabs.append(tab);
}

takeButton.addEventListener("click", () => client?.takeOver(!inControl));

if (instances.length) show(instances[0]);
