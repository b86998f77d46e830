"""Follow-ups edit the last image: which earlier image a chat holds, and whether a message asks
to change it.

The earlier image is the most recent link to this service's `/image/<key>` (any host, or no host)
in an assistant message before the last user message, whatever shape the client sends the history
in: a plain string (Open WebUI, NextChat, LibreChat's custom endpoints), a list of
`{"type": "text"}` parts (LibreChat's OpenAI endpoint), or `image_url` parts (NextChat's DALL·E
replies). A link in a user's own message is not an earlier image. Only the last
`HISTORY_MESSAGES` messages, and of their text the last `HISTORY_CHARS` characters, are read.

Without the optimizer, a message asks for a change when, after greetings and praise ("nice!",
"ok,", "can you") are set aside, it starts with a change verb ("make the sky purple", "add a hat",
改/换/加/去掉…; not a noun phrase: "use case diagram", "move-in day"), "same …", "but …",
"with …", "no people", "too dark", "more/less …", a short comparative ("darker"), a pronoun that
points back with what is wrong ("it's too dark"), "now/what about …" unless a new subject follows
("now at night", not "now a cat on a sofa"), "and/also/plus" with a thing or a change ("and a
moon"); or when it names the earlier image ("instead", "a darker version", "of it", "this
picture", 把它, 这张, 变成…), or its first clause says what the picture should be ("the sky should
be purple", "i want the sky purple"; not "a man who needs to wear a mask"). A message that asks
for a new picture ("another one", "make a …", "draw …", 画一只…, 换一张) or describes one ("a
lighthouse on a cliff", "the picture shows a knight") is not a change, nor is anything unsure:
a wrong edit is billed. Only the first `CUE_TEXT_CHARS` characters are read; cue words are in
followup_cues.py.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from flux_api.conversation import followup_cues as cues
from flux_api.conversation.followup_cues import words

HISTORY_MESSAGES = 32  # what a client can send is unbounded; an image worth editing is recent
HISTORY_CHARS = 65_536  # read from the end back: our reply ends with its link
MESSAGE_PARTS = 64
CUE_TEXT_CHARS = 1_000

_OWN_IMAGE = re.compile(
    r"/image/(?P<key>[A-Za-z0-9_-]{16,64})(?=$|[\s)\]>\"'`?#,;!]|\.(?:\s|$))"
    r"(?:[?#][^\s()<>\[\]\"'`]*)?"
)
_URL_DELIMITERS = " \t\r\n()<>\"'`"  # not [ ]: an IPv6 host has them
_URL_END = ".,;:!?"  # the sentence's, not the link's
_URL_START = re.compile(r"https?://[^/\s]+(?:/\S*)?")
_URL_START_BACK = 2_048


@dataclass(frozen=True)
class EarlierImage:
    key: str  # the store key
    url: str  # as it appeared in the message


def earlier_image(messages: list) -> EarlierImage | None:
    """The most recent image of this service in an assistant message before the last user one."""
    if not isinstance(messages, list):
        return None
    recent = messages[-HISTORY_MESSAGES:]
    users = [i for i, m in enumerate(recent) if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return None
    unread = HISTORY_CHARS
    for message in reversed(recent[: users[-1]]):
        if not (isinstance(message, dict) and message.get("role") == "assistant"):
            continue
        for segment in reversed(_segments(message.get("content"))):
            tail = segment[max(0, len(segment) - unread) :]
            if found := _last_own_image(tail):
                return found
            unread -= len(tail)
            if unread <= 0:
                return None
    return None


def _segments(content: object) -> list[str]:
    """The texts and image URLs of a message's content, in order."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    segments = []
    for part in content[-MESSAGE_PARTS:]:
        if not isinstance(part, dict):
            continue
        value = part.get("image_url") if part.get("type") == "image_url" else part.get("text")
        if isinstance(value, dict):  # {"url": …}, or the Assistants API's {"value": …}
            value = value.get("url", value.get("value"))
        if isinstance(value, str):
            segments.append(value)
    return segments


def _last_own_image(text: str) -> EarlierImage | None:
    for match in reversed(list(_OWN_IMAGE.finditer(text))):
        before = text[max(0, match.start() - _URL_START_BACK) : match.start()]
        start = max(before.rfind(c) for c in _URL_DELIMITERS) + 1
        host = before[start:].lstrip("[")  # a markdown link's text: [http://…]
        if not host or _URL_START.fullmatch(host):
            return EarlierImage(match["key"], host + match.group().rstrip(_URL_END))
    return None


_PUNCTUATION = " \t\r\n,.!?;:~-—–…\"'“”‘’()[]"
_FILLER = re.compile(rf"(?:{words(*cues.FILLERS)})\b[\s,.!?;:~—–-]*")
_NEW = re.compile("|".join(cues.NEW_PICTURE))
_BACK = re.compile("|".join(cues.BACK_REFERENCES))
_MODAL = re.compile(cues.MODALS)
_DESCRIBED_SUBJECT = re.compile(rf"\b(?:{words(*cues.DESCRIBED_SUBJECT)})\b")
_STYLE_ONLY = re.compile("|".join(cues.STYLE_ONLY))
# A verb joined by a hyphen is part of a word ("move-in day", "make-up artist"), not a verb.
_NEXT = r"\b(?!-)[\s,:]*(?P<next>[\w']*)(?:\s+(?P<after>[\w']*))?"
_CHANGE = re.compile(rf"(?:{words(*cues.CHANGE_VERBS)}){_NEXT}")
_MAKE = re.compile(rf"(?:{words(*cues.MAKE_VERBS)}){_NEXT}")
_TOUCH = re.compile(rf"(?:{words(*cues.TOUCH_VERBS)}){_NEXT}")
_CREATE = re.compile(rf"(?:{words(*cues.CREATE_VERBS)}){_NEXT}")
_LEAD = re.compile(
    rf"(?P<lead>{words(*cues.LEADS)})\b(?!-)(?P<gap>[\s,:-]*)(?P<rest>.*)", re.DOTALL
)
_QUANTITY = re.compile(rf"(?:{words(*cues.QUANTITIES)})\b")
_NO_CLAUSES = re.compile(r"(?:no\s+[^,.;!?\n]*(?:[,.;!?\n]+\s*|$))+")
_COMPARATIVE = re.compile(
    rf"(?:(?:{words(*cues.INTENSIFIERS)})\s+)?(?:{words(*cues.COMPARATIVES)})\b"
)
_PRONOUN_SUBJECT = re.compile(
    rf"(?:{words(*cues.PRONOUN_SUBJECTS)})(?:\s+|(?='))(?:{words(*cues.ABOUT_IT)})\b"
)
_VERB_ON_PRONOUN = re.compile(
    rf"\b(?:{words(*cues.CHANGE_VERBS, *cues.MAKE_VERBS, *cues.TOUCH_VERBS, *cues.CREATE_VERBS)}"
    rf"|do|redo|try|set|blur|want|prefer|like)\s+(?:it|them|the\s+(?:image|picture|photo|pic))"
    rf"\b(?!\s+of\b)"
)
_ZH_NEW = re.compile(cues.ZH_NEW_PICTURE)
_ZH_BACK = re.compile(cues.ZH_BACK_REFERENCES)
_ZH_CREATE = re.compile(cues.ZH_POLITE + cues.ZH_CREATE)
_ZH_CHANGE_START = re.compile(cues.ZH_POLITE + f"(?:{cues.ZH_CHANGE_START})")
_ZH_CHANGE_ANYWHERE = re.compile(cues.ZH_CHANGE_ANYWHERE)
_CJK = re.compile(r"[\u3400-\u9fff]")
_SENTENCE_END = re.compile(r"[.!?;\n。]")
_CLAUSE_END = re.compile(r"[,.!?;:\n。，]")


def asks_for_change(text: str) -> bool:
    """Whether a message asks to change the previous image, by the cues above (no optimizer)."""
    if not isinstance(text, str):
        return False
    text = unicodedata.normalize("NFKC", text[:CUE_TEXT_CHARS]).lower()
    text = text.replace("’", "'").replace("‘", "'").strip(_PUNCTUATION)
    if _CJK.search(text) and _asks_in_chinese(text):
        return True
    return _asks_in_english(_without_fillers(text))


def _without_fillers(text: str) -> str:
    while (match := _FILLER.match(text)) and match.end():
        text = text[match.end() :]
    return text


def _asks_in_english(text: str, nested: bool = False) -> bool:
    if not text or _NEW.search(text):
        return False
    first_clause = _CLAUSE_END.split(text, 1)[0]
    if _BACK.search(text) or _STYLE_ONLY.fullmatch(text) or _modal_about_it(first_clause):
        return True
    first_sentence = _SENTENCE_END.split(text, 1)[0]
    opening = _opening(text)
    if opening is not None:
        return opening
    short = len(first_clause.split()) <= cues.SHORT_CLAUSE_WORDS
    if (lead := _LEAD.match(text)) and (said := _after_lead(lead, short, nested)) is not None:
        return said
    if _COMPARATIVE.match(text) and len(first_sentence.split()) <= cues.SHORT_CLAUSE_WORDS:
        return True
    return bool(_PRONOUN_SUBJECT.match(text) or _VERB_ON_PRONOUN.search(first_sentence))


def _modal_about_it(clause: str) -> bool:
    """Whether the clause says what the picture should be, not what a new subject is like."""
    modal = _MODAL.search(clause)
    return modal is not None and not _DESCRIBED_SUBJECT.search(clause, 0, modal.start())


def _after_lead(lead: re.Match, short: bool, nested: bool) -> bool | None:
    """What a message that starts with a lead word says; None: read it as if it had none."""
    word, rest = lead["lead"], _without_fillers(lead["rest"])
    if word == "no":
        if lead["gap"].strip() or not rest:  # "no, a fox": an answer, then the message
            return None if nested else _asks_in_english(rest, nested=True)
        listed = "no " + lead["rest"]  # "no cars, no people", then perhaps the rest
        clauses = _NO_CLAUSES.match(listed)
        assert clauses is not None  # it matches any text that starts with "no "
        rest = _without_fillers(listed[clauses.end() :])
        return not rest or (not nested and _asks_in_english(rest, nested=True))
    if word == "too" and _QUANTITY.match(rest):
        return short
    if word in cues.SCENE_LEADS:
        return _opening(rest) is not False and _first_word(rest) not in cues.NEW_OBJECTS
    if word in cues.ADDING_LEADS:
        if (opening := _opening(rest)) is not None or _first_word(rest) in cues.NEW_OBJECTS:
            return opening is not False
        return None if nested else _asks_in_english(rest, nested=True)
    return True


def _first_word(text: str) -> str:
    return text.split(None, 1)[0] if text.strip() else ""


def _opening(text: str) -> bool | None:
    """What the verb the message starts with says: a change, a new picture, or nothing."""
    if (verb := _CHANGE.match(text)) and not _is_noun_phrase(verb):
        return True
    if (verb := _MAKE.match(text)) and not _is_noun_phrase(verb):
        return verb["next"] not in cues.NEW_OBJECTS
    if verb := _TOUCH.match(text):
        return verb["next"] in cues.POINTING
    if verb := _CREATE.match(text):
        return verb["next"] in cues.BACK_PRONOUNS
    return None


def _is_noun_phrase(verb: re.Match) -> bool:
    """Whether the verb starts a noun phrase ("crop circles", "put a spell on you")."""
    if verb["next"] in cues.ARTICLES:
        return verb["after"] in cues.NOUN_FOLLOWERS
    return verb["next"] in cues.NOUN_FOLLOWERS


def _asks_in_chinese(text: str) -> bool:
    if _ZH_NEW.search(text):
        return False
    if _ZH_BACK.search(text):
        return True
    if _ZH_CREATE.match(text):
        return False
    return bool(_ZH_CHANGE_START.match(text) or _ZH_CHANGE_ANYWHERE.search(text))
