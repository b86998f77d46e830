// The service's ratio rule (flux_api/sizes.py parse_ratio), so the page can show which ratio a
// prompt asks for and let its menu replace it. tests/system/test_playground.py checks both agree.
"use strict";

const RATIO_PAIR = "([0-9０-９]{1,5})\\s*[:：]\\s*([0-9０-９]{1,5})";
const AR_FLAG = new RegExp(
  `(?:^|\\s)--(?:ar|aspect)\\s+${RATIO_PAIR}(?=[\\s.,;!?。，；！？)\\]）】]|$)`,
  "gi",
);
const FINAL_RATIO = new RegExp(
  `(?:[(\\[（【]\\s*${RATIO_PAIR}\\s*[)\\]）】]|(?:^|(?<=[\\s,;，；、]))${RATIO_PAIR})` +
    "[\\s.,;!?。，；！？…]*$",
);
const DANGLING = /[\s,;，；、]+$/;

const asciiNumber = (digits) =>
  Number(digits.replace(/[０-９]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0)));

function ratioOf(match) {
  const [width, height] = match.slice(1).filter(Boolean).map(asciiNumber);
  return `${width}:${height}`;
}

/** Split a prompt into { text, ratio }: the last `--ar W:H` (every `--ar` is removed), or
 * else the ratio ending the prompt (bracketed or followed by punctuation), and only that one.
 * ratio is "W:H" or null. */
function parseRatio(prompt) {
  const flags = [...prompt.matchAll(AR_FLAG)];
  if (flags.length) {
    let text = prompt;
    for (const match of flags.reverse()) {
      const before = text.slice(0, match.index).trimEnd();
      const after = text.slice(match.index + match[0].length).trim();
      const joint = before && after && !".,;!?。，；！？)]）】".includes(after[0]) ? " " : "";
      text = (before + joint + after).replace(DANGLING, "").trim();
    }
    return { text, ratio: ratioOf(flags[0]) };
  }
  const match = prompt.match(FINAL_RATIO);
  if (match) {
    return { text: prompt.slice(0, match.index).replace(DANGLING, "").trim(), ratio: ratioOf(match) };
  }
  return { text: prompt.trim(), ratio: null };
}

/** The message to send for a prompt and the menu's ratio ("" for none): a ratio chosen in the
 * menu replaces the one the prompt asks for, so the two never contradict each other. */
function withRatio(prompt, chosen) {
  if (!chosen) return prompt;
  const { text } = parseRatio(prompt);
  const plain = `${text} ${chosen}`;
  // A ratio after an earlier --ar would lose to it: the last --ar always wins.
  return parseRatio(plain).ratio === parseRatio(chosen).ratio ? plain : `${text} --ar ${chosen}`;
}

// The service's size for a ratio (flux_api/sizes.py size_for_ratio), for the Images API's
// `size` field when the page edits images: a preset, or long side 1024 and short side a
// multiple of 64 (rounded half to even, as Python's round does).
const SIZE_PRESETS = {
  "1:1": "1024x1024",
  "1:2": "512x1024",
  "3:2": "768x512",
  "3:4": "768x1024",
  "16:9": "1024x576",
  "9:16": "576x1024",
};

function roundHalfEven(value) {
  const rounded = Math.round(value);
  return Math.abs(value % 1) === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}

/** "WxH" for a ratio "W:H", or null for one the service refuses (a zero side, beyond 4:1). */
function sizeForRatio(ratio) {
  const match = /^(\d+):(\d+)$/.exec(ratio || "");
  if (!match) return null;
  let [width, height] = [Number(match[1]), Number(match[2])];
  if (!width || !height) return null;
  const gcd = (a, b) => (b ? gcd(b, a % b) : a);
  const divisor = gcd(width, height);
  [width, height] = [width / divisor, height / divisor];
  const preset = SIZE_PRESETS[`${width}:${height}`];
  if (preset) return preset;
  const long = Math.max(width, height);
  const short = Math.min(width, height);
  if (long > 4 * short) return null;
  const shortSide = Math.max(256, roundHalfEven((1024 * short) / long / 64) * 64);
  return width >= height ? `1024x${shortSide}` : `${shortSide}x1024`;
}
