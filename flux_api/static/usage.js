// flux-api usage page: plain JavaScript, no build step. The server draws the charts
// (GET v1/usage/view answers HTML with inline SVG); this script only fetches it with the key
// saved in this browser (the playground's), inserts it, and shows its times in local time.
"use strict";

const REFRESH_MS = 60 * 1000;

function showKeyState(message) {
  $("key-state").textContent =
    message ||
    (apiKey()
      ? "Key saved in this browser (shared with the playground). Forget removes it."
      : "No key saved yet. It is kept only in this browser, shared with the playground.");
  $("api-key").value = "";
  $("api-key").placeholder = apiKey() ? "•••••••• (saved)" : "the service's API_KEY or METRICS_KEY";
}

function showState(text, isError) {
  $("usage-state").textContent = text;
  $("usage-state").classList.toggle("error", Boolean(isError));
}

/** Times arrive in UTC; a person reads them in their own zone (the UTC one stays as a tooltip). */
function localTimes(root) {
  for (const element of root.querySelectorAll("time[datetime]")) {
    const moment = new Date(element.getAttribute("datetime"));
    if (Number.isNaN(moment.getTime())) continue;
    element.title = element.textContent;
    // A moment on another day than today (a parked account returns at midnight) says which.
    const otherDay = moment.toDateString() !== new Date().toDateString();
    const options = { hour: "2-digit", minute: "2-digit" };
    element.textContent = otherDay
      ? moment.toLocaleString([], { weekday: "short", ...options })
      : moment.toLocaleTimeString([], options);
  }
}

async function load() {
  if (!apiKey()) {
    $("usage").replaceChildren();
    showState("Enter the service's API key above to see its usage.");
    $("api-key").focus();
    return;
  }
  showState("Loading…");
  let response;
  try {
    response = await fetch("v1/usage/view", {
      headers: { Authorization: `Bearer ${apiKey()}` },
      cache: "no-store",
    });
  } catch (error) {
    showState("The service could not be reached. Refresh to try again.", true);
    return;
  }
  if (response.status === 401) {
    $("usage").replaceChildren();
    showKeyState("The saved key was refused.");
    $("api-key").placeholder = "the service's API_KEY or METRICS_KEY";
    showState("This key was refused (401). Enter the service's API_KEY or METRICS_KEY above and Save.", true);
    $("api-key").focus();
    return;
  }
  if (!response.ok) {
    showState(await messageOf(response), true);
    return;
  }
  const fragment = new DOMParser().parseFromString(await response.text(), "text/html");
  localTimes(fragment.body);
  $("usage").replaceChildren(...fragment.body.childNodes);
  const now = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  showState(`Updated at ${now}; every minute while open. Times are in your zone.`);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  localStorage.setItem(KEY_STORE, key);
  showKeyState();
  load();
});
$("forget-key").addEventListener("click", () => {
  localStorage.removeItem(KEY_STORE);
  showKeyState();
  load();
});
$("refresh").addEventListener("click", load);
setInterval(() => {
  if (document.visibilityState === "visible" && apiKey()) load();
}, REFRESH_MS);

showKeyState();
load();
