// flux-api playground: plain JavaScript, no build step, no framework.
//
// It talks to the same API as any client: GET v1/models, and POST v1/chat/completions with
// stream: true, read with fetch and a stream reader (EventSource cannot send the Authorization
// header). URLs are relative, so the page works under any prefix and behind https. The API key
// and a gallery of recent images live in this browser's localStorage, never in the page.
"use strict";

const KEY_STORE = "flux-api.key";
const GALLERY_STORE = "flux-api.gallery";
const GALLERY_MAX = 30;
const $ = (id) => document.getElementById(id);
const EXPIRATION_MS = Number(document.body.dataset.imageExpiration) * 1000;

// ---- the API key ------------------------------------------------------------------------

const apiKey = () => localStorage.getItem(KEY_STORE) || "";
const authHeaders = () => ({ Authorization: `Bearer ${apiKey()}` });

function showKeyState() {
  $("key-state").textContent = apiKey()
    ? "Key saved in this browser. Forget removes it."
    : "No key saved yet. It is kept only in this browser.";
  $("api-key").value = "";
  $("api-key").placeholder = apiKey() ? "•••••••• (saved)" : "the service's API_KEY";
}

/** Keep the key typed in the field, if any: Save does it, and so does Generate, since a person
 * who pasted the key and pressed Generate means it to be used. */
function keepTypedKey() {
  const key = $("api-key").value.trim();
  if (!key) return false;
  localStorage.setItem(KEY_STORE, key);
  showKeyState();
  loadModels();
  return true;
}

function saveKey(event) {
  event.preventDefault();
  if (keepTypedKey()) hideError();
}

function forgetKey() {
  localStorage.removeItem(KEY_STORE);
  showKeyState();
}

// ---- errors -----------------------------------------------------------------------------

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function hideError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

/** The API's own message from an error answer (OpenAI's shape), or a plain description. */
async function messageOf(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (ignored) {
    // not JSON: fall through
  }
  return `The service answered ${response.status} ${response.statusText}.`;
}

// ---- models -----------------------------------------------------------------------------

async function loadModels() {
  if (!apiKey()) return;
  let response;
  try {
    response = await fetch("v1/models", { headers: authHeaders() });
  } catch (error) {
    return; // the generate button reports an unreachable service
  }
  if (!response.ok) {
    showError(await messageOf(response));
    return;
  }
  const { data } = await response.json();
  const select = $("model");
  const chosen = select.value;
  select.replaceChildren(
    ...data.map((model, index) => {
      const label = index === 0 ? `${model.id} (default)` : model.id;
      return new Option(label, model.id, false, model.id === chosen);
    }),
  );
}

// ---- generating -------------------------------------------------------------------------

/** The menu's ratio: "" for none (1:1, or the ratio the prompt asks for), or null when the
 * custom one is malformed. */
function chosenRatio() {
  const preset = $("ratio").value;
  if (preset !== "custom") return preset;
  const custom = $("custom-ratio").value.trim();
  return /^\d{1,4}\s*:\s*\d{1,4}$/.test(custom) ? custom.replace(/\s+/g, "") : null;
}

/** Say which ratio Generate will use, and where it comes from. */
function showRatioUsed() {
  const chosen = chosenRatio();
  const typed = parseRatio($("prompt").value).ratio;
  let text;
  if (chosen === null) text = "none yet: write the custom ratio as W:H, such as 5:4.";
  else if (!chosen) text = typed ? `${typed}, from the prompt.` : "1:1.";
  else if (typed) text = `${chosen}, from the menu (the ${typed} in the prompt is left out).`;
  else text = `${chosen}, from the menu.`;
  // A status region is read out when it changes: keystrokes that change nothing stay quiet.
  if ($("ratio-used").textContent !== `Ratio used: ${text}`) {
    $("ratio-used").textContent = `Ratio used: ${text}`;
  }
}

/** Read an SSE body frame by frame: each content piece goes to `onPiece` as it arrives. */
async function readStream(response, onPiece) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const result = { text: "", model: "", facts: null, error: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return result;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice(6))
        .join("\n");
      if (!data || data === "[DONE]") continue; // keep-alive comments carry no data
      const payload = JSON.parse(data);
      if (payload.error) {
        result.error = payload.error;
        continue;
      }
      result.model = payload.model || result.model;
      // The finish chunk carries the reply's facts as data: nothing is read out of the wording.
      if (payload.flux_api) result.facts = payload.flux_api;
      const piece = payload.choices && payload.choices[0] && payload.choices[0].delta.content;
      if (piece) {
        result.text += piece;
        onPiece(piece);
      }
    }
  }
}

function addProgress(piece) {
  for (const line of piece.split("\n")) {
    // The image itself and the failure line have places of their own.
    if (!line.trim() || line.startsWith("![") || line.startsWith("❌")) continue;
    const item = document.createElement("li");
    item.textContent = line;
    $("progress").append(item);
  }
}

function setBusy(busy) {
  $("generate").disabled = busy;
  $("generate").textContent = busy ? "Generating…" : "Generate";
  $("result").setAttribute("aria-busy", String(busy));
}

async function generate(event) {
  event.preventDefault();
  hideError();
  const prompt = $("prompt").value.trim();
  const ratio = chosenRatio();
  keepTypedKey();
  if (!apiKey()) return fail("Enter the service's API key first.", "api-key");
  if (!prompt || (ratio && !parseRatio(prompt).text)) {
    return fail("Write a prompt first: describe the image you want.", "prompt");
  }
  if (ratio === null) return fail("Write the custom ratio as W:H, such as 5:4.", "custom-ratio");

  setBusy(true);
  $("idle").hidden = true;
  $("figure").hidden = true;
  $("progress").replaceChildren();
  try {
    const response = await fetch("v1/chat/completions", {
      method: "POST",
      headers: { ...authHeaders(), "Content-Type": "application/json" },
      body: JSON.stringify({
        model: $("model").value,
        stream: true,
        messages: [{ role: "user", content: withRatio(prompt, ratio) }],
      }),
    });
    if (!response.ok) return showError(await messageOf(response));
    const result = await readStream(response, addProgress);
    if (result.error) return showError(result.error.message);
    const image = describe(result, prompt);
    if (!image) return showError("The reply named no image: is the service up to date?");
    showImage(image);
  } catch (error) {
    showError(`The service could not be reached (${error.message}). Try again in a moment.`);
  } finally {
    setBusy(false);
  }
}

function fail(message, focusId) {
  showError(message);
  $(focusId).focus();
}

/** The image, for the figure and the gallery, from the reply's facts (its flux_api field);
 * null when they name no stored image. */
function describe(result, prompt) {
  const facts = result.facts || {};
  if (!facts.image_url) return null;
  // The key is the last segment of the image URL's path (/image/<key>), read as a URL.
  const key = new URL(facts.image_url, location.href).pathname.split("/").pop();
  if (!/^[A-Za-z0-9_-]+$/.test(key)) return null;
  return {
    key,
    url: facts.image_url,
    prompt,
    used: facts.prompt || "",
    size: facts.size || "",
    model: result.model,
    expiresAt: Date.now() + EXPIRATION_MS,
  };
}

/** Markdown for an image: the alt text may not end the brackets early or span lines. */
function markdownOf(image) {
  const alt = image.prompt.replace(/\s+/g, " ").replace(/[\\[\]]/g, "\\$&");
  return `![${alt}](${image.url})`;
}

function showImage(image) {
  // Shown from a relative path, so it loads however the service is reached; the URL the
  // service gave (what other clients see) is the one copied.
  $("image").src = `image/${image.key}`;
  $("image").alt = image.prompt;
  $("image-size").textContent = image.size;
  $("image-model").textContent = image.model;
  $("image-prompt").textContent = image.used;
  $("download").href = `image/${image.key}`;
  $("download").download = `flux-${image.key.slice(0, 8)}`;
  $("copy-url").onclick = () => copy(image.url, $("copy-url"));
  $("copy-markdown").onclick = () => copy(markdownOf(image), $("copy-markdown"));
  $("figure").hidden = false;
  remember(image);
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (error) {
    // Clipboard API refused (plain http, permissions): the old way still works.
    const area = Object.assign(document.createElement("textarea"), { value: text });
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => (button.textContent = label), 1500);
}

// ---- the gallery ------------------------------------------------------------------------

function gallery() {
  try {
    const items = JSON.parse(localStorage.getItem(GALLERY_STORE) || "[]");
    return Array.isArray(items) ? items : [];
  } catch (error) {
    return [];
  }
}

function remember(image) {
  const items = [image, ...gallery().filter((item) => item.key !== image.key)];
  localStorage.setItem(GALLERY_STORE, JSON.stringify(items.slice(0, GALLERY_MAX)));
  renderGallery();
}

function timeLeft(expiresAt) {
  const minutes = Math.floor((expiresAt - Date.now()) / 60000);
  if (minutes >= 120) return `${Math.floor(minutes / 60)} h left`;
  return minutes >= 1 ? `${minutes} min left` : "less than a minute left";
}

function renderGallery() {
  const items = gallery(); // newest first
  $("gallery-empty").hidden = items.length > 0;
  $("gallery").replaceChildren(
    ...items.map((item) => {
      const entry = document.createElement("li");
      const expired = item.expiresAt <= Date.now();
      entry.className = expired ? "expired" : "";
      if (expired) {
        const tile = document.createElement("div");
        tile.className = "tile";
        tile.textContent = "Expired";
        entry.append(tile);
      } else {
        const link = Object.assign(document.createElement("a"), { href: `image/${item.key}` });
        const img = Object.assign(document.createElement("img"), {
          src: `image/${item.key}`,
          alt: item.prompt,
          loading: "lazy",
        });
        link.append(img);
        entry.append(link);
      }
      const caption = document.createElement("p");
      caption.textContent = `${expired ? "expired" : timeLeft(item.expiresAt)} · ${item.size}`;
      const title = Object.assign(document.createElement("p"), { className: "prompt" });
      title.textContent = item.prompt;
      entry.append(title, caption);
      return entry;
    }),
  );
}

// ---- wiring -----------------------------------------------------------------------------

$("key-form").addEventListener("submit", saveKey);
$("forget-key").addEventListener("click", forgetKey);
$("generate-form").addEventListener("submit", generate);
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    $("generate-form").requestSubmit();
  }
});
$("ratio").addEventListener("change", () => {
  const custom = $("ratio").value === "custom";
  $("custom-ratio-field").hidden = !custom;
  if (custom) $("custom-ratio").focus();
  showRatioUsed();
});
$("prompt").addEventListener("input", showRatioUsed);
$("custom-ratio").addEventListener("input", showRatioUsed);
$("clear-gallery").addEventListener("click", () => {
  localStorage.removeItem(GALLERY_STORE);
  renderGallery();
});

showKeyState();
showRatioUsed();
renderGallery();
loadModels();
setInterval(renderGallery, 30000); // time left, and expiry, move on
