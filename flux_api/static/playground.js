// flux-api playground: plain JavaScript, no build step, no framework.
//
// It talks to the same API as any client: GET v1/models, and POST v1/chat/completions with
// stream: true, read with fetch and a stream reader (EventSource cannot send the Authorization
// header); with images attached, POST v1/images/edits (multipart, as the openai SDK sends it).
// URLs are relative, so the page works under any prefix and behind https. The API key (kept by
// common.js, shared with the usage page) and a gallery of recent images live in this browser's
// localStorage, never in the page.
"use strict";

const GALLERY_STORE = "flux-api.gallery";
const GALLERY_MAX = 30;
const EXPIRATION_MS = Number(document.body.dataset.imageExpiration) * 1000;
const EDIT_MODEL = document.body.dataset.editModel || "";
const MAX_IMAGES = 4; // FLUX.2 takes up to 4 reference images

// ---- the API key ------------------------------------------------------------------------

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
  abilities.clear();
  select.replaceChildren(
    ...data.map((model, index) => {
      abilities.set(model.id, model.flux_api || {});
      let label = index === 0 ? `${model.id} (default)` : model.id;
      if (model.flux_api && model.flux_api.text_to_image === false) label += " (edits only)";
      return new Option(label, model.id, false, model.id === chosen);
    }),
  );
  showModelUsed();
}

/** What each listed model can do (its flux_api field): text_to_image, edits, max_input_images. */
const abilities = new Map();

/** The model that will edit `count` images: the chosen one if it edits that many, else the
 * service's EDIT_MODEL (flux_api/model_choice.py edit_model decides the same way). */
function editModelFor(chosen, count) {
  const can = abilities.get(chosen);
  if (can && can.edits && can.max_input_images >= count) return chosen;
  return EDIT_MODEL || chosen;
}

/** Under the model menu while images are attached: which model edits them. */
function showModelUsed() {
  const line = $("model-used");
  if (!attached.length) {
    line.hidden = true;
    line.textContent = "";
    return;
  }
  const chosen = $("model").value;
  const used = editModelFor(chosen, attached.length);
  const text =
    used === chosen
      ? `Edits with ${used}.`
      : `The chosen model does not edit ${plural(attached.length, "image")}: ${used} edits them.`;
  line.hidden = false;
  if (line.textContent !== text) line.textContent = text;
}

const plural = (count, noun) => `${count} ${noun}${count === 1 ? "" : "s"}`;

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
  else if (!chosen && attached.length) {
    text = typed
      ? `the first image's shape (the ${typed} ending the prompt is not read when editing: choose it in the menu).`
      : "the first image's shape.";
  } else if (!chosen) text = typed ? `${typed}, from the prompt.` : "1:1.";
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

function setBusy(busy, editing = false) {
  $("generate").disabled = busy;
  $("generate").textContent = busy ? (editing ? "Editing…" : "Generating…") : "Generate";
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
  if (attached.length) return edit(prompt, ratio);

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

/** Edit the attached images with the prompt: POST v1/images/edits, the Images API's answer. */
async function edit(prompt, ratio) {
  const size = ratio ? sizeForRatio(ratio) : "";
  if (size === null) {
    return fail(`Aspect ratio ${ratio} is not usable: choose one from 1:4 to 4:1.`, "ratio");
  }
  const images = attached.slice();
  const model = editModelFor($("model").value, images.length);
  const text = ratio ? parseRatio(prompt).text : prompt; // the menu's ratio replaces a typed one
  const form = new FormData();
  for (const { file } of images) form.append("image[]", file, file.name);
  form.append("prompt", text);
  form.append("model", $("model").value);
  if (size) form.append("size", size);
  form.append("response_format", "url");

  setBusy(true, true);
  $("idle").hidden = true;
  $("figure").hidden = true;
  $("progress").replaceChildren();
  addProgress(`Editing ${plural(images.length, "image")}…`);
  try {
    const response = await fetch("v1/images/edits", {
      method: "POST",
      headers: authHeaders(), // the browser writes the multipart Content-Type and boundary
      body: form,
    });
    if (!response.ok) return showError(await messageOf(response));
    const answer = await response.json();
    const first = answer.data && answer.data[0];
    const image = first && imageAt(first.url, {
      prompt,
      used: first.revised_prompt || text,
      size: answer.size || "",
      model,
    });
    if (!image) return showError("The answer named no image: is the service up to date?");
    addProgress(`🖌️ Edited with ${model}: ${image.size}.`);
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
  return imageAt(facts.image_url, {
    prompt,
    used: facts.prompt || "",
    size: facts.size || "",
    model: result.model,
  });
}

/** The image stored at `url` (/image/<key>) with its facts; null when it names none. */
function imageAt(url, facts) {
  if (typeof url !== "string" || !url) return null;
  // The key is the last segment of the image URL's path (/image/<key>), read as a URL.
  const key = new URL(url, location.href).pathname.split("/").pop();
  if (!/^[A-Za-z0-9_-]+$/.test(key)) return null;
  return { key, url, ...facts, expiresAt: Date.now() + EXPIRATION_MS };
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
  if (minutes >= 2880) return `${Math.floor(minutes / 1440)} days left`;
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
      if (!expired) {
        const button = Object.assign(document.createElement("button"), {
          type: "button",
          className: "small",
          textContent: "Edit",
        });
        // Named with its image, so a list of "Edit" buttons can be told apart by ear.
        button.setAttribute("aria-label", `Edit this image: ${item.prompt}`);
        button.addEventListener("click", () => attachStored(item.key, button));
        entry.append(button);
      }
      return entry;
    }),
  );
}

// ---- images to edit ----------------------------------------------------------------------
//
// Up to MAX_IMAGES files, from the file picker, a drop, or a gallery image's Edit button. The
// service judges each file by its bytes (a 400 naming `image` otherwise), so the page sends
// what it is given. Previews are drawn on a canvas from the file's own bytes
// (createImageBitmap): the page's Content-Security-Policy allows images from the service only
// (img-src 'self'), which a blob: or data: URL is not.

/** The attached images, in the order sent (image 0 first): { file, preview }. */
let attached = [];

function attach(files) {
  hideError();
  const room = Math.max(0, MAX_IMAGES - attached.length);
  for (const file of files.slice(0, room)) attached.push({ file, preview: previewOf(file) });
  renderAttachments();
  const refused = files.length - Math.min(files.length, room);
  if (refused) {
    showError(
      `At most ${MAX_IMAGES} images can be edited at once: ` +
        `${refused === 1 ? "1 file was" : `${refused} files were`} not added. ` +
        "Remove an image to add another.",
    );
  }
}

/** A canvas showing the file, drawn once it is decoded; a plain tile when it cannot be. */
function previewOf(file) {
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  createImageBitmap(file)
    .then((bitmap) => {
      const scale = Math.min(1, 256 / Math.max(bitmap.width, bitmap.height));
      canvas.width = Math.max(1, Math.round(bitmap.width * scale));
      canvas.height = Math.max(1, Math.round(bitmap.height * scale));
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      bitmap.close();
      canvas.classList.add("drawn");
    })
    .catch(() => {
      const tile = Object.assign(document.createElement("div"), { className: "tile" });
      tile.textContent = "No preview";
      tile.setAttribute("role", "img");
      tile.setAttribute("aria-label", canvas.getAttribute("aria-label") + " (no preview)");
      const entry = attached.find((item) => item.preview === canvas);
      if (entry) entry.preview = tile;
      canvas.replaceWith(tile);
    });
  return canvas;
}

function renderAttachments() {
  const list = $("attachments");
  list.hidden = attached.length === 0;
  list.replaceChildren(
    ...attached.map((item, index) => {
      const entry = document.createElement("li");
      const name = `image ${index}: ${item.file.name || "unnamed"}`;
      item.preview.setAttribute("aria-label", name);
      const caption = Object.assign(document.createElement("p"), { textContent: name });
      const remove = Object.assign(document.createElement("button"), {
        type: "button",
        className: "small",
        textContent: "Remove",
      });
      remove.setAttribute("aria-label", `Remove ${name}`);
      remove.addEventListener("click", () => detach(index));
      entry.append(item.preview, caption, remove);
      return entry;
    }),
  );
  showRatioUsed();
  showModelUsed();
}

function detach(index) {
  attached.splice(index, 1);
  renderAttachments();
  hideError();
  // Focus stays in the list (the next image's Remove), else returns to the file picker.
  const buttons = $("attachments").querySelectorAll("button");
  (buttons[Math.min(index, buttons.length - 1)] || $("edit-images")).focus();
}

/** A stored image (a gallery entry) as a file to edit, fetched from this service. */
async function attachStored(key, button) {
  hideError();
  if (attached.length >= MAX_IMAGES) {
    return showError(`At most ${MAX_IMAGES} images can be edited at once: remove one first.`);
  }
  button.disabled = true;
  try {
    const response = await fetch(`image/${key}`);
    if (!response.ok) return showError(await messageOf(response));
    const blob = await response.blob();
    const extension = (blob.type.split("/")[1] || "png").replace("jpeg", "jpg");
    attach([new File([blob], `flux-${key.slice(0, 8)}.${extension}`, { type: blob.type })]);
    $("prompt").focus(); // next: say how to change it
  } catch (error) {
    showError(`The image could not be fetched (${error.message}).`);
  } finally {
    button.disabled = false;
  }
}

/** Files dropped on the zone; an image dragged from this page's gallery comes as its URL. */
function dropped(event) {
  event.preventDefault();
  $("drop-zone").classList.remove("over");
  const files = [...event.dataTransfer.files];
  if (files.length) return attach(files);
  const lines = (event.dataTransfer.getData("text/uri-list") || "").split(/\r?\n/);
  const link = lines.find((line) => line.trim() && !line.startsWith("#"));
  let url;
  try {
    url = new URL((link || "").trim(), location.href);
  } catch (error) {
    return; // not a URL: nothing to add
  }
  if (!link) return;
  const key = url.pathname.split("/").pop();
  const here = new URL("image/", location.href);
  if (url.origin === here.origin && url.pathname === here.pathname + key && /^[\w-]+$/.test(key)) {
    attachStored(key, $("edit-images"));
  } else {
    showError("Only image files, or images from this page's gallery, can be dropped here.");
  }
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
$("model").addEventListener("change", showModelUsed);
$("edit-images").addEventListener("change", (event) => {
  attach([...event.target.files]);
  event.target.value = ""; // the same file may be picked again after a Remove
});
$("drop-zone").addEventListener("dragover", (event) => {
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  $("drop-zone").classList.add("over");
});
$("drop-zone").addEventListener("dragleave", (event) => {
  if (!$("drop-zone").contains(event.relatedTarget)) $("drop-zone").classList.remove("over");
});
$("drop-zone").addEventListener("drop", dropped);
$("clear-gallery").addEventListener("click", () => {
  localStorage.removeItem(GALLERY_STORE);
  renderGallery();
});

showKeyState();
showRatioUsed();
renderGallery();
loadModels();
// Time left, and expiry, move on; not while a gallery control has the focus (it would lose it).
setInterval(() => $("gallery").contains(document.activeElement) || renderGallery(), 30000);
