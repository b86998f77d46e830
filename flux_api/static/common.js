// What the playground and the usage page share: the API key this browser keeps (one for both
// pages), and how an error answer reads. Loaded before each page's own script.
"use strict";

const KEY_STORE = "flux-api.key";
const $ = (id) => document.getElementById(id);
const apiKey = () => localStorage.getItem(KEY_STORE) || "";

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
