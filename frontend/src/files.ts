// Files on the session page: files dropped onto a terminal pane go into the
// current directory of that instance's shell (PUT .../files/?name=, sent with
// XMLHttpRequest so the upload shows its progress), and a small form downloads
// a file by path (GET .../files/?path=, an attachment).

import { ApiError, csrfToken, describe } from "./api";

export type Notify = (text: string, kind: "error" | "info" | "message") => void;

export interface FileTarget {
  sessionId: string;
  instanceId: string;
  hostname: string;
}

function filesUrl(target: FileTarget, query: string): string {
  return `/api/sessions/${encodeURIComponent(target.sessionId)}/instances/${encodeURIComponent(target.instanceId)}/files/?${query}`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MiB`;
}

/** PUT one file into the shell's current directory; resolves to its absolute path. */
export function uploadToCwd(target: FileTarget, file: File, onProgress: (percent: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("PUT", filesUrl(target, `name=${encodeURIComponent(file.name)}`));
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("Content-Type", "application/octet-stream");
    request.withCredentials = true;
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(Math.floor((event.loaded / event.total) * 100));
    });
    request.addEventListener("error", () => reject(new ApiError(0, "network", "The playground did not answer.", null)));
    request.addEventListener("load", () => {
      let payload: { path?: string; error?: { code?: string; message?: string } } | null = null;
      try {
        payload = JSON.parse(request.responseText);
      } catch {
        payload = null;
      }
      if (request.status === 201 && payload?.path) {
        resolve(payload.path);
        return;
      }
      const retry = Number.parseInt(request.getResponseHeader("Retry-After") ?? "", 10);
      reject(new ApiError(
        request.status,
        payload?.error?.code ?? `http_${request.status}`,
        payload?.error?.message ?? `The playground answered ${request.status} ${request.statusText}.`,
        Number.isNaN(retry) ? null : retry,
      ));
    });
    request.send(file);
  });
}

/** Upload the files one after the other, telling the person how each goes. */
export async function uploadFiles(target: FileTarget, files: File[], maxBytes: number, notify: Notify): Promise<void> {
  for (const file of files) {
    if (maxBytes > 0 && file.size > maxBytes) {
      notify(`${file.name} is ${formatBytes(file.size)}: files larger than ${formatBytes(maxBytes)} cannot be uploaded.`, "error");
      continue;
    }
    notify(`Uploading ${file.name} 0%`, "message");
    try {
      const path = await uploadToCwd(target, file, (percent) => notify(`Uploading ${file.name} ${percent}%`, "message"));
      notify(`${file.name} → ${path}`, "info");
    } catch (error) {
      notify(`Could not upload ${file.name} to ${target.hostname}: ${describe(error)}`, "error");
    }
  }
}

function carriesFiles(event: DragEvent): boolean {
  return Array.from(event.dataTransfer?.types ?? []).includes("Files");
}

/** Let files be dropped on ``element`` (a terminal pane) to upload them. */
export function enableDrop(element: HTMLElement, target: () => FileTarget | null, maxBytes: number, notify: Notify): void {
  let depth = 0;
  element.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth += 1;
    element.classList.add("drop-target");
  });
  element.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  element.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) element.classList.remove("drop-target");
  });
  element.addEventListener("drop", (event) => {
    const files = Array.from(event.dataTransfer?.files ?? []);
    if (files.length === 0) return;
    event.preventDefault();
    event.stopPropagation();
    depth = 0;
    element.classList.remove("drop-target");
    const where = target();
    if (!where) {
      notify("This instance is not running: files cannot be uploaded to it.", "error");
      return;
    }
    void uploadFiles(where, files, maxBytes, notify);
  });
}

/** The "Download a file" form: opens the file of the selected instance as an attachment. */
export function enableDownload(form: HTMLFormElement, input: HTMLInputElement, target: () => FileTarget | null, notify: Notify): void {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const where = target();
    const path = input.value.trim();
    if (!where) {
      notify("Select a running instance to download a file from.", "error");
      return;
    }
    if (!path.startsWith("/") || path.endsWith("/")) {
      notify("Give the absolute path of a file, e.g. /root/notes.txt.", "error");
      return;
    }
    // Fetched, then saved from memory: an error (no such file) becomes a
    // notice instead of a downloaded JSON file. Files are at most the size limit.
    void (async () => {
      const url = filesUrl(where, `path=${encodeURIComponent(path)}`);
      let blob: Blob;
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (!response.ok) {
          let message = `The playground answered ${response.status}.`;
          try {
            message = (await response.json())?.error?.message ?? message;
          } catch {
            /* not JSON */
          }
          notify(`Could not download ${path}: ${message}`, "error");
          return;
        }
        blob = await response.blob();
      } catch {
        notify("The playground did not answer. Check your connection and try again.", "error");
        return;
      }
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = path.split("/").pop() || "file";
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    })();
  });
}
