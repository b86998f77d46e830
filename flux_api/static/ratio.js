// The service's ratio rule (flux_api/sizes.py parse_ratio), so the page can show which ratio a
// prompt asks for and let its menu replace it. tests/test_playground.py checks both agree.
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

/** Split a prompt into { text, ratio }: the last `--ar W:H`, or else the ratio ending the
 * prompt (bracketed or followed by punctuation); only that one is removed. ratio is "W:H" or
 * null. */
function parseRatio(prompt) {
  const flags = [...prompt.matchAll(AR_FLAG)];
  if (flags.length) {
    const match = flags[flags.length - 1];
    const before = prompt.slice(0, match.index).trimEnd();
    const after = prompt.slice(match.index + match[0].length).trim();
    const joint = before && after && !".,;!?。，；！？)]）】".includes(after[0]) ? " " : "";
    return { text: (before + joint + after).replace(DANGLING, "").trim(), ratio: ratioOf(match) };
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
