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
"remove the tree", 改/换/加/去掉…), "now …", "same …", "but …", "with …", "without …",
"more/less …", "too …", a comparative ("darker"), a pronoun that points back followed by what is
wrong with it ("it's too dark"); or when it names the earlier image anywhere ("instead", "a
version", "of it", "this picture", "should be", 把它, 这张, 变成…). A message that asks for a new
picture ("a new picture of …", "another one", "make a …", "draw …", 画一只…, 换一张) or simply
describes one ("a lighthouse on a cliff", "it is a sunny day in paris") is not a change. Only the
first `CUE_TEXT_CHARS` characters are read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

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


def _listed(text: str) -> tuple[str, ...]:
    """The phrases of a comma-separated list."""
    return tuple(phrase.strip() for phrase in text.split(",") if phrase.strip())


def _words(*phrases: str) -> str:
    """An alternation of whole words or phrases, longest first so a phrase beats its first word."""
    return "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in sorted(phrases, key=len)[::-1])


# Said before the request itself: "Nice! Now make it blue", "ok, can you add a hat".
FILLERS = _listed(
    "ok, okay, alright, all right, great, good, nice, cool, awesome, perfect, beautiful, lovely, "
    "amazing, wow, hmm, hm, yes, yeah, yep, nope, nah, thanks, thank you, thx, please, pls, plz, "
    "kindly, hey, hi, so, well, i like it, i love it, love it, looks good, not bad, good job, "
    "nice work, can you, could you, would you, will you, can u, could u, would you mind, "
    "i want you to, i'd like you to, i would like you to, i need you to, let's, lets, just, "
    "maybe, actually, then"
)
# At the start, always a change: "add a hat", "remove the tree", "zoom out".
CHANGE_VERBS = _listed(
    "change, turn, add, remove, replace, recolor, recolour, brighten, darken, lighten, crop, "
    "zoom, swap, put, place, move, delete, erase, fill, rotate, flip, enlarge, shrink, widen, "
    "extend, expand, sharpen, fix, adjust, convert, transform, increase, decrease, reduce, "
    "tweak, edit, modify, alter, keep, use, switch, take out, get rid of, colorize, colourise, "
    "desaturate, saturate, invert, straighten, tilt, resize, insert, hide, include, exclude, "
    "retouch, clean up"
)
# A change unless a new thing follows: "make the sky purple", "make her smile"; not "make a cat".
MAKE_VERBS = _listed("make, give")
NEW_OBJECTS = _listed("a, an, some, another, one, two, three, four, me, us, new")
# A change when what follows points back: "paint it black", "color the sky red".
TOUCH_VERBS = _listed("paint, color, colour")
POINTING = _listed("it, its, them, him, her, his, this, that, these, those, the, everything, all")
# A new picture unless "it"/"them"/"this"/"that" follows: "draw a dog"; "draw it at night".
CREATE_VERBS = _listed(
    "draw, create, generate, render, imagine, design, illustrate, sketch, produce, picture, "
    "visualize, visualise, show me, i want, i'd like, i would like, i need, let me see"
)
BACK_PRONOUNS = _listed("it, them, this, that")
# A verb followed by these is a noun: "drop of water", "crop circles", "turn of the century".
NOUN_FOLLOWERS = _listed("of, circle, circles, top, tops")
# Words that start a follow-up on their own: "now at night", "same but wider", "with a hat".
# After now, no, also, plus, and, a request for a new picture is still one ("now draw a cat").
LEADS = _listed(
    "now, no, also, plus, and, same, the same, but, instead, with, without, more, less, fewer, "
    "too, what if, as a, as an, zoomed in, zoomed out, in black and white, in grayscale, "
    "in greyscale, in sepia, in monochrome, in color, in colour"
)
RESTARTING_LEADS = _listed("now, no, also, plus, and")
COMPARATIVES = _listed(
    "darker, brighter, lighter, bigger, larger, smaller, wider, narrower, taller, shorter, "
    "closer, farther, further, warmer, cooler, colder, softer, sharper, happier, sadder, "
    "scarier, cuter, calmer, simpler, busier, cleaner, moodier, higher, lower, longer, thicker, "
    "thinner, redder, bluer, greener, dimmer, clearer, older, younger"
)
INTENSIFIERS = _listed("a bit, a little, a lot, slightly, much, even, way, far, somewhat")
COMPARATIVE_WORDS = 4  # "darker" asks for a change; "older man fishing at dawn" describes one
# A pronoun at the start, followed by what is wrong with the picture: "it's too dark".
PRONOUN_SUBJECTS = _listed("it, its, they, this, that, these, those, she, he")
ABOUT_IT = _listed(
    "should, needs, need, must, could, can, looks, look, seems, is too, 's too, are too, "
    "'re too, is a bit, isn't, is not, doesn't, does not, but, too, again, in, with, without, "
    "as, now, please, one"
)
# Anywhere in the message: it speaks of the earlier picture.
BACK_REFERENCES = (
    r"\binstead\b",
    r"\bversions?\b",
    r"\bsame\s+(?:but|image|picture|photo|one|scene|style)\b",
    r"\b(?:of|from)\s+(?:it|this|that|them)\b",
    (
        r"\b(?:this|that|previous|last|earlier|above|original|your|same)\s+"
        r"(?:image|picture|photo|pic|drawing|painting|render|result|one)\b(?!\s+of\b)"
    ),
    r"\bthe\s+(?:image|picture|photo|pic|drawing|painting|render|result)\b(?!\s+of\b)",
    r"\b(?:should|must|has\s+to|have\s+to|needs\s+to|need\s+to)\s+(?:be|have|look|get|wear)\b",
    rf"\b(?:{_words(*COMPARATIVES)})\s+(?:one|version)\b",
    r"^(?:can|could|would|will)\s+(?:it|they|this|that|she|he)\s+(?:be|have|look)\b",
    r"^the\s+\w+(?:\s+\w+)?\s+(?:is|are|looks?|seems?)\s+(?:too|a\s+bit|not)\b",
)
# The whole message names a style and nothing else: "black and white", "in anime style".
STYLE_ONLY = (
    r"(?:in\s+)?(?:black\s+and\s+white|b&w|grayscale|greyscale|sepia|monochrome)",
    r"(?:in\s+)?(?:an?\s+|the\s+)?(?:[\w'&-]+\s+){1,3}style",
)
# Anywhere: the person asks for a new picture, which beats every other cue.
NEW_PICTURE = (
    (
        r"\b(?:new|another|different|fresh)\s+"
        r"(?:picture|image|photo|one|drawing|painting|pic|illustration|render)\b"
    ),
    r"\banother\s+one\b",
    r"\bsomething\s+(?:else|different)\b",
    r"\bstart\s+over\b",
    r"\bfrom\s+scratch\b",
)
# Chinese, in this order: a new picture asked for; pointing back; drawing something; a change.
ZH_NEW_PICTURE = r"新的?一张|新图|另一张|换一张|再来一张|重新画一张|重新生成一张"
ZH_BACK_REFERENCES = (
    r"[把将让给使]它|这张|那张|这幅|那幅|上一张|上张|刚才|刚刚|原图|原来的|"
    r"(?<![一张幅])图片|图中|图里"
)
ZH_POLITE = r"(?:请|麻烦|帮我|给我|能不能|能否|可以|可不可以|你能|再|然后|那就|好的?|[,，。!！\s])*"
ZH_CREATE = r"(?:画|生成|创建|创作|来|做|设计|绘制)(?:一|个|张|幅|只|条|座|位|些|两|几)"
# The exclusions are nouns that start with a change verb: 加州, 太阳, 变色龙, 将军, 别墅…
ZH_CHANGE_START = (
    r"改(?!装)|换|加(?!州|拿大|油|勒比|湿器)|添|删|变(?!色龙)|调(?!酒|色板)|"
    r"放大(?!镜)|缩小|裁(?!缝)|旋转(?!木马|楼梯)|翻转|让|把|将(?!军)|更(?!衣)|"
    r"稍微|有点|太(?!阳|空|极|平|湖|太)|不要|别(?!墅|致|针)|同样|一样|现在|但是|"
    r"不过|还是|它|[暗亮大小多少宽窄]一[点些]"
)
ZH_CHANGE_ANYWHERE = (
    r"变成|改成|换成|改为|换为|变为|调成|调[亮暗大小]|弄成|去掉|去除|删掉|删除|"
    r"移除|加上|添加|不要|更多|更少|[更再][^,，。]{0,4}[一点些]"
)

_PUNCTUATION = " \t\r\n,.!?;:~-—–…\"'“”‘’()[]"
_FILLER = re.compile(rf"(?:{_words(*FILLERS)})\b[\s,.!?;:~—–-]*")
_NEW = re.compile("|".join(NEW_PICTURE))
_BACK = re.compile("|".join(BACK_REFERENCES))
_STYLE_ONLY = re.compile("|".join(STYLE_ONLY))
_NEXT = r"\b[\s,:]*(?P<next>[\w']*)"
_CHANGE = re.compile(rf"(?:{_words(*CHANGE_VERBS)}){_NEXT}")
_MAKE = re.compile(rf"(?:{_words(*MAKE_VERBS)}){_NEXT}")
_TOUCH = re.compile(rf"(?:{_words(*TOUCH_VERBS)}){_NEXT}")
_CREATE = re.compile(rf"(?:{_words(*CREATE_VERBS)}){_NEXT}")
_LEAD = re.compile(rf"(?P<lead>{_words(*LEADS)})\b[\s,:-]*(?P<rest>.*)", re.DOTALL)
_COMPARATIVE = re.compile(rf"(?:(?:{_words(*INTENSIFIERS)})\s+)?(?:{_words(*COMPARATIVES)})\b")
_PRONOUN_SUBJECT = re.compile(
    rf"(?:{_words(*PRONOUN_SUBJECTS)})(?:\s+|(?='))(?:{_words(*ABOUT_IT)})\b"
)
_VERB_ON_PRONOUN = re.compile(
    rf"\b(?:{_words(*CHANGE_VERBS, *MAKE_VERBS, *TOUCH_VERBS, *CREATE_VERBS)}|do|redo|try|set|"
    rf"blur|want|prefer|like)\s+(?:it|them)\b(?!\s+of\b)"
)
_ZH_NEW = re.compile(ZH_NEW_PICTURE)
_ZH_BACK = re.compile(ZH_BACK_REFERENCES)
_ZH_CREATE = re.compile(ZH_POLITE + ZH_CREATE)
_ZH_CHANGE_START = re.compile(ZH_POLITE + f"(?:{ZH_CHANGE_START})")
_ZH_CHANGE_ANYWHERE = re.compile(ZH_CHANGE_ANYWHERE)
_CJK = re.compile(r"[\u3400-\u9fff]")
_SENTENCE_END = re.compile(r"[.!?;\n。]")


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


def _asks_in_english(text: str) -> bool:
    if not text or _NEW.search(text):
        return False
    if _BACK.search(text) or _STYLE_ONLY.fullmatch(text):
        return True
    first_sentence = _SENTENCE_END.split(text, 1)[0]
    opening = _opening(text)
    if opening is not None:
        return opening
    if lead := _LEAD.match(text):
        if lead["lead"] in RESTARTING_LEADS:
            return _opening(_without_fillers(lead["rest"])) is not False
        return True
    if _COMPARATIVE.match(text) and len(first_sentence.split()) <= COMPARATIVE_WORDS:
        return True
    return bool(_PRONOUN_SUBJECT.match(text) or _VERB_ON_PRONOUN.search(first_sentence))


def _opening(text: str) -> bool | None:
    """What the verb the message starts with says: a change, a new picture, or nothing."""
    if (verb := _CHANGE.match(text)) and verb["next"] not in NOUN_FOLLOWERS:
        return True
    if (verb := _MAKE.match(text)) and verb["next"] not in NOUN_FOLLOWERS:
        return verb["next"] not in NEW_OBJECTS
    if verb := _TOUCH.match(text):
        return verb["next"] in POINTING
    if verb := _CREATE.match(text):
        return verb["next"] in BACK_PRONOUNS
    return None


def _asks_in_chinese(text: str) -> bool:
    if _ZH_NEW.search(text):
        return False
    if _ZH_BACK.search(text):
        return True
    if _ZH_CREATE.match(text):
        return False
    return bool(_ZH_CHANGE_START.match(text) or _ZH_CHANGE_ANYWHERE.search(text))
