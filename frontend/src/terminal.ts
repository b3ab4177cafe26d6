// The terminal client: one xterm.js terminal bound to one instance's terminal
// WebSocket (docs/api.md, "Terminal WebSocket").
//
// Binary frames carry the bytes, JSON text frames the control messages. The
// client acknowledges output as xterm has parsed it, so a fast program (`yes`)
// runs at the pace of the screen instead of filling memory, and reconnects by
// itself with exponential back-off when the connection drops.

import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { WebglAddon } from "@xterm/addon-webgl";

/** Clients send a long paste as several frames of at most this size. */
const MAX_FRAME = 64 * 1024;
/** Acknowledge once this much output is parsed, or ACK_DELAY_MS after the last write. */
const ACK_EVERY = 64 * 1024;
const ACK_DELAY_MS = 40;
const PING_EVERY_MS = 25_000;
/** A connection that answers no ping within this time is taken for dead. */
const PONG_TIMEOUT_MS = 15_000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 20_000;

const FONT_KEY = "playground.terminal.fontSize";
export const FONT_MIN = 9;
export const FONT_MAX = 28;
const FONT_DEFAULT = 14;

/** Close codes after which reconnecting cannot help. */
const FINAL_CLOSES: Record<number, string> = {
  4401: "You are signed out. Reload the page to sign in again.",
  4403: "You may not use this terminal.",
  4404: "This instance no longer exists, or it is not yours.",
  4410: "This session is over.",
};
/** Close codes worth a retry, with what the person should know. */
const RETRY_CLOSES: Record<number, string> = {
  4429: "Too much input or too many connections right now.",
  1009: "A message was too large for the terminal.",
  1011: "The terminal hit an internal error.",
  1012: "The server restarted.",
};

export type ServerStatus = "provisioning" | "running" | "reconnecting" | "exited" | "session_over";
export type Phase = "connecting" | "live" | "waiting" | "over";

export interface TerminalCallbacks {
  /** The server's `status` events. */
  onStatus?(state: ServerStatus): void;
  /** The server's `expiry` events. */
  onExpiry?(expiresAt: string): void;
  /** The session ended (status `session_over` or close 4410). */
  onSessionOver?(): void;
  /** Who may type now (`control` events): the owner or a class's instructor. */
  onControl?(by: "owner" | "instructor"): void;
  /** A message from the class's instructor (`message` events). */
  onMessage?(text: string, from: string): void;
  /** The connection changed phase; `text` says why, for the person. */
  onPhase?(phase: Phase, text: string): void;
}

export interface TerminalOptions extends TerminalCallbacks {
  /** `instance.terminal`, e.g. `/ws/instances/<iid>/terminal/`. */
  path: string;
  /** The instance's hostname, for messages. */
  name: string;
  /** `instructor`: a class's instructor watching a learner's terminal, who
   * types only after taking over and never resizes it. Default `owner`. */
  role?: "owner" | "instructor";
}

const encoder = new TextEncoder();

export function savedFontSize(): number {
  const saved = Number.parseInt(localStorage.getItem(FONT_KEY) ?? "", 10);
  return Number.isNaN(saved) ? FONT_DEFAULT : Math.min(FONT_MAX, Math.max(FONT_MIN, saved));
}

export function saveFontSize(size: number): number {
  const clamped = Math.min(FONT_MAX, Math.max(FONT_MIN, Math.round(size)));
  try {
    localStorage.setItem(FONT_KEY, String(clamped));
  } catch {
    // Private windows may refuse storage; the size still applies to this page.
  }
  return clamped;
}

export class TerminalClient {
  readonly term: Terminal;
  private readonly fit = new FitAddon();
  private readonly overlay: HTMLElement;
  private readonly overlayText: HTMLElement;
  private readonly overlayButton: HTMLButtonElement;
  private ws: WebSocket | null = null;
  /** Bumped on each connection, so late write callbacks of an old one are ignored. */
  private generation = 0;
  private connectedBefore = false;
  private attempt = 0;
  private retryAfter = 0;
  private lastError = "";
  private unacked = 0;
  private ackTimer: number | undefined;
  private pingTimer: number | undefined;
  private pongDeadline: number | undefined;
  private reconnectTimer: number | undefined;
  private countdownTimer: number | undefined;
  private resizeFrame: number | undefined;
  private readonly resizeObserver: ResizeObserver;
  private phase: Phase = "connecting";
  private disposed = false;
  private webgl: WebglAddon | null = null;

  constructor(
    private readonly host: HTMLElement,
    private readonly options: TerminalOptions,
  ) {
    this.term = new Terminal({
      fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, "Liberation Mono", monospace',
      fontSize: savedFontSize(),
      cursorBlink: true,
      scrollback: 5000,
      allowProposedApi: false,
      theme: {
        background: "#151a21",
        foreground: "#dde3ea",
        cursor: "#7dd3c0",
        cursorAccent: "#151a21",
        selectionBackground: "#3b4a5c",
        black: "#1f252d",
        red: "#f28b82",
        green: "#8fd19e",
        yellow: "#f2cc8f",
        blue: "#8ab4f8",
        magenta: "#d7aefb",
        cyan: "#7dd3c0",
        white: "#dde3ea",
        brightBlack: "#6b7785",
        brightRed: "#f6aea9",
        brightGreen: "#b3e2bd",
        brightYellow: "#f7dcae",
        brightBlue: "#aecbfa",
        brightMagenta: "#e6c9fc",
        brightCyan: "#a7e3d6",
        brightWhite: "#ffffff",
      },
    });

    const screen = document.createElement("div");
    screen.className = "term-screen";
    this.overlay = document.createElement("div");
    this.overlay.className = "term-overlay";
    this.overlay.setAttribute("role", "status");
    this.overlayText = document.createElement("p");
    this.overlayButton = document.createElement("button");
    this.overlayButton.type = "button";
    this.overlayButton.className = "btn btn-small";
    this.overlayButton.textContent = "Reconnect now";
    this.overlayButton.hidden = true;
    this.overlayButton.addEventListener("click", () => this.reconnectNow());
    this.overlay.append(this.overlayText, this.overlayButton);
    host.append(screen, this.overlay);

    this.term.loadAddon(this.fit);
    this.term.loadAddon(
      new WebLinksAddon((event, uri) => {
        event.preventDefault();
        const opened = window.open(uri, "_blank", "noopener,noreferrer");
        if (opened) opened.opener = null;
      }),
    );
    this.term.open(screen);
    this.useWebgl();
    this.term.attachCustomKeyEventHandler((event) => this.onKey(event));
    this.term.onData((data) => this.sendInput(encoder.encode(data)));
    // Non-UTF-8 input (some mouse reports): one char per byte.
    this.term.onBinary((data) => this.sendInput(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)));
    this.term.onResize(({ cols, rows }) => this.sendControl({ type: "resize", cols, rows }));

    this.resizeObserver = new ResizeObserver(() => this.scheduleFit());
    this.resizeObserver.observe(host);
    window.addEventListener("online", this.onOnline);

    this.connect();
  }

  // -- public ------------------------------------------------------------------

  /** Fit the terminal to its box (only while it is visible). */
  fitNow(): void {
    if (this.disposed || this.host.clientWidth < 20 || this.host.clientHeight < 20) return;
    try {
      this.fit.fit();
    } catch {
      // Fitting a terminal that is being laid out can throw; the observer retries.
    }
  }

  setFontSize(size: number): void {
    this.term.options.fontSize = size;
    this.fitNow();
  }

  focus(): void {
    this.term.focus();
  }

  /** The whole buffer as text, one line per row, wrapped rows joined (for tests and copy). */
  text(): string {
    const buffer = this.term.buffer.active;
    const lines: string[] = [];
    for (let y = 0; y < buffer.length; y++) {
      const line = buffer.getLine(y);
      if (!line) continue;
      const text = line.translateToString(true);
      if (line.isWrapped && lines.length) lines[lines.length - 1] += text;
      else lines.push(text);
    }
    return lines.join("\n");
  }

  get state(): Phase {
    return this.phase;
  }

  /** Close for good: the instance was deleted, or the page goes. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.clearTimers();
    this.closeSocket(1000);
    this.resizeObserver.disconnect();
    window.removeEventListener("online", this.onOnline);
    this.term.dispose();
  }

  /** Stop reconnecting and show why; the terminal's text stays readable. */
  end(text: string): void {
    this.clearTimers();
    this.closeSocket(1000);
    this.setPhase("over", text);
  }

  // -- connection -------------------------------------------------------------

  private connect(): void {
    if (this.disposed) return;
    this.clearTimers();
    const generation = ++this.generation;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.options.path}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.unacked = 0;
    this.retryAfter = 0;
    this.lastError = "";
    this.setPhase(
      this.connectedBefore ? "waiting" : "connecting",
      this.connectedBefore ? "Reconnecting…" : `Connecting to ${this.options.name}…`,
    );

    ws.onopen = () => {
      if (generation !== this.generation) return;
      if (this.connectedBefore) {
        // The server replays the recent output: start from a clean screen so
        // nothing shows twice. RIS goes through the write queue, after any
        // output of the old connection still being parsed.
        this.term.write("\x1bc");
      }
      this.connectedBefore = true;
      this.sendControl({ type: "ack", bytes: 0 });
      this.sendSize();
      this.setPhase("live", "");
      this.pingTimer = window.setInterval(() => this.ping(), PING_EVERY_MS);
    };
    ws.onmessage = (event) => {
      if (generation !== this.generation) return;
      this.pongDeadline = undefined;
      if (typeof event.data === "string") this.onControl(event.data);
      else this.onOutput(new Uint8Array(event.data as ArrayBuffer), generation);
    };
    ws.onclose = (event) => {
      if (generation !== this.generation) return;
      this.onClosed(event.code, event.reason);
    };
  }

  private onOutput(bytes: Uint8Array, generation: number): void {
    // Output means the connection works: the next drop starts the back-off anew.
    this.attempt = 0;
    const size = bytes.byteLength;
    this.term.write(bytes, () => {
      if (generation === this.generation) this.rendered(size);
    });
  }

  private onControl(raw: string): void {
    let message: { type?: string; [key: string]: unknown };
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    switch (message.type) {
      case "status":
        this.onStatus(message.state as ServerStatus);
        break;
      case "expiry":
        if (typeof message.expires_at === "string") this.options.onExpiry?.(message.expires_at);
        break;
      case "control": {
        // The owner's page: when an instructor takes over, typing here is off.
        // An instructor's page: typing is on only while they have taken over.
        const by = message.by === "instructor" ? "instructor" : "owner";
        const instructor = this.options.role === "instructor";
        const readOnly = instructor ? by !== "instructor" : by === "instructor";
        this.term.options.disableStdin = readOnly;
        this.host.classList.toggle("read-only", readOnly);
        this.host.title = readOnly
          ? instructor
            ? "Read-only: take over to type in the learner's terminal."
            : "Your instructor is typing in this terminal."
          : "";
        this.options.onControl?.(by);
        break;
      }
      case "message":
        if (typeof message.text === "string") {
          this.options.onMessage?.(message.text, typeof message.from === "string" ? message.from : "");
        }
        break;
      case "replay":
        // This playground's server announces each replay (on connect, and
        // when a connection that fell behind gets the current screen instead
        // of what it missed): start from a clean screen so nothing shows twice.
        this.term.write("\x1bc");
        break;
      case "error":
        this.lastError = typeof message.message === "string" ? message.message : "";
        this.retryAfter = typeof message.retry_after === "number" ? message.retry_after : 0;
        break;
      case "pong":
      default:
        break;
    }
  }

  private onStatus(state: ServerStatus): void {
    this.options.onStatus?.(state);
    switch (state) {
      case "provisioning":
        this.setPhase("waiting", `Starting ${this.options.name}…`);
        break;
      case "running":
        this.attempt = 0;
        this.setPhase("live", "");
        // A size sent before the shell was attached may have had nowhere to go.
        this.sendSize();
        break;
      case "reconnecting":
        this.setPhase("waiting", `Reattaching to ${this.options.name}…`);
        break;
      case "exited":
        this.end(`The shell of ${this.options.name} has exited.`);
        this.showButton("Reconnect");
        break;
      case "session_over":
        this.end("This session is over.");
        this.options.onSessionOver?.();
        break;
    }
  }

  private onClosed(code: number, reason: string): void {
    this.ws = null;
    this.clearTimers();
    if (this.disposed || this.phase === "over") return;
    if (code === 4410) {
      this.end(FINAL_CLOSES[code]);
      this.options.onSessionOver?.();
      return;
    }
    if (code in FINAL_CLOSES) {
      this.end(this.lastError || FINAL_CLOSES[code]);
      if (code !== 4404) this.showButton("Try again");
      return;
    }
    // A 4429's error event says which limit (input too fast, too many connections).
    const why = (code === 4429 && this.lastError) ||
      (RETRY_CLOSES[code] ?? (this.lastError || reason || "The connection was lost."));
    let delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    delay = delay * (0.8 + Math.random() * 0.4);
    if (code === 4429 && this.retryAfter) delay = Math.max(delay, this.retryAfter * 1000);
    this.attempt += 1;
    this.scheduleReconnect(why, delay);
  }

  private scheduleReconnect(why: string, delay: number): void {
    const at = Date.now() + delay;
    const show = () => {
      const seconds = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      this.setPhase("waiting", `${why} Reconnecting${seconds ? ` in ${seconds} s` : ""}…`);
      this.showButton("Reconnect now");
    };
    show();
    this.countdownTimer = window.setInterval(show, 1000);
    this.reconnectTimer = window.setTimeout(() => this.connect(), delay);
  }

  private reconnectNow(): void {
    this.attempt = 0;
    this.closeSocket(1000);
    this.connect();
  }

  private readonly onOnline = (): void => {
    if (this.phase === "waiting" && !this.ws) this.reconnectNow();
  };

  private closeSocket(code: number): void {
    const ws = this.ws;
    this.ws = null;
    this.generation++; // its late events are ignored from now on
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(code);
  }

  private ping(): void {
    if (this.pongDeadline !== undefined && Date.now() > this.pongDeadline) {
      // No answer for a whole ping period: the connection is dead without
      // having closed (a suspended laptop, a dropped route). Start over.
      this.closeSocket(1000);
      this.onClosed(1006, "The connection stopped answering.");
      return;
    }
    this.sendControl({ type: "ping" });
    this.pongDeadline ??= Date.now() + PONG_TIMEOUT_MS;
  }

  private clearTimers(): void {
    window.clearInterval(this.pingTimer);
    window.clearTimeout(this.reconnectTimer);
    window.clearInterval(this.countdownTimer);
    window.clearTimeout(this.ackTimer);
    this.pingTimer = this.reconnectTimer = this.countdownTimer = this.ackTimer = undefined;
    this.pongDeadline = undefined;
  }

  // -- sending ------------------------------------------------------------------

  private sendControl(message: object): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private sendInput(bytes: Uint8Array<ArrayBuffer>): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.term.options.disableStdin) return;
    for (let start = 0; start < bytes.byteLength; start += MAX_FRAME) {
      ws.send(bytes.subarray(start, start + MAX_FRAME));
    }
  }

  private sendSize(): void {
    this.fitNow();
    if (this.options.role === "instructor") return; // the learner's window decides
    this.sendControl({ type: "resize", cols: this.term.cols, rows: this.term.rows });
  }

  /** A class's instructor takes the keyboard of the learner's terminal, or gives it back. */
  takeOver(take: boolean): void {
    this.sendControl({ type: take ? "takeover" : "release" });
  }

  /** xterm parsed `size` bytes of output: acknowledge them, in batches. */
  private rendered(size: number): void {
    this.unacked += size;
    if (this.unacked >= ACK_EVERY) {
      this.flushAck();
    } else if (this.ackTimer === undefined) {
      this.ackTimer = window.setTimeout(() => this.flushAck(), ACK_DELAY_MS);
    }
  }

  private flushAck(): void {
    window.clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    if (this.unacked > 0) {
      this.sendControl({ type: "ack", bytes: this.unacked });
      this.unacked = 0;
    }
  }

  // -- screen ---------------------------------------------------------------------

  private scheduleFit(): void {
    if (this.resizeFrame !== undefined) return;
    this.resizeFrame = requestAnimationFrame(() => {
      this.resizeFrame = undefined;
      this.fitNow();
    });
  }

  private useWebgl(): void {
    try {
      const webgl = new WebglAddon();
      webgl.onContextLoss(() => {
        // The GPU went away (driver reset, too many contexts): xterm falls back
        // to its DOM renderer once the addon is gone.
        webgl.dispose();
        this.webgl = null;
      });
      this.term.loadAddon(webgl);
      this.webgl = webgl;
    } catch {
      this.webgl = null; // no WebGL2 here: the DOM renderer draws instead
    }
  }

  get renderer(): "webgl" | "dom" {
    return this.webgl ? "webgl" : "dom";
  }

  private setPhase(phase: Phase, text: string): void {
    this.phase = phase;
    this.host.dataset.phase = phase;
    this.overlay.classList.toggle("visible", phase !== "live");
    this.overlay.classList.toggle("over", phase === "over");
    this.overlayText.textContent = text;
    this.overlayButton.hidden = true;
    this.options.onPhase?.(phase, text);
  }

  private showButton(label: string): void {
    this.overlayButton.textContent = label;
    this.overlayButton.hidden = false;
  }

  // -- keyboard: copy and paste ------------------------------------------------

  private onKey(event: KeyboardEvent): boolean {
    const ctrlShift = event.ctrlKey && event.shiftKey && !event.altKey && !event.metaKey;
    if (ctrlShift && event.code === "KeyC") {
      if (event.type === "keydown") {
        event.preventDefault(); // Chromium's Ctrl+Shift+C opens the inspector
        void this.copySelection();
      }
      return false;
    }
    const shiftInsert = event.shiftKey && !event.ctrlKey && !event.altKey && !event.metaKey && event.key === "Insert";
    if ((ctrlShift && event.code === "KeyV") || shiftInsert) {
      // The browser pastes into xterm's text area by itself for these keys
      // (a `paste` event that xterm handles, no permission needed). Where it
      // does not, read the clipboard ourselves.
      if (event.type === "keydown") this.pasteUnlessBrowserDoes();
      return false;
    }
    return true;
  }

  private async copySelection(): Promise<void> {
    const text = this.term.getSelection();
    if (!text) return;
    try {
      await navigator.clipboard.writeText(text);
      return;
    } catch {
      // No async clipboard (plain http on another host): the old way.
    }
    const scratch = document.createElement("textarea");
    scratch.value = text;
    scratch.style.position = "fixed";
    scratch.style.opacity = "0";
    document.body.append(scratch);
    scratch.select();
    document.execCommand("copy");
    scratch.remove();
    this.term.focus();
  }

  private pasteUnlessBrowserDoes(): void {
    const textarea = this.term.textarea;
    let pasted = false;
    const seen = () => (pasted = true);
    textarea?.addEventListener("paste", seen, { once: true, capture: true });
    window.setTimeout(async () => {
      textarea?.removeEventListener("paste", seen, { capture: true });
      if (pasted || !navigator.clipboard?.readText) return;
      try {
        const text = await navigator.clipboard.readText();
        if (text) this.term.paste(text);
      } catch {
        // Permission refused: nothing to paste.
      }
    }, 80);
  }
}
