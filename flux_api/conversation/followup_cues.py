"""The words and phrases followups.py reads a message's intent by, English and Chinese."""

from __future__ import annotations

import re


def _listed(text: str) -> tuple[str, ...]:
    """The phrases of a comma-separated list."""
    return tuple(phrase.strip() for phrase in text.split(",") if phrase.strip())


def words(*phrases: str) -> str:
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
# After a verb (or its article), these make it a noun phrase: "drop of water", "crop circles",
# "use case diagram", "keep calm poster", "put a spell on you".
NOUN_FOLLOWERS = _listed("of, circle, circles, top, tops, case, cases, calm, spell")
ARTICLES = _listed("a, an, the")
# Words that start a follow-up on their own: "now at night", "same but wider", "with a hat".
LEADS = _listed(
    "now, no, also, plus, and, same, the same, but, instead, with, without, more, less, fewer, "
    "too, what if, what about, how about, as a, as an, zoomed in, zoomed out, "
    "in black and white, in grayscale, in greyscale, in sepia, in monochrome, in color, in colour"
)
# After these, a new subject ("now a cat on a sofa", "what about a dog") is a new picture;
# anything else ("now at night", "what about with snow") is a change.
SCENE_LEADS = _listed("now, what about, how about")
# After these, a new thing ("and a lighthouse", "plus a scarf") or a change is a change; anything
# else is read as if the lead were not there ("plus size model on runway").
ADDING_LEADS = _listed("also, plus, and")
# "too many clouds" complains; "too many cooks in a kitchen" describes: a quantity after "too" is
# a change only in a short first clause, like a comparative.
QUANTITIES = _listed("many, much, few, little")
COMPARATIVES = _listed(
    "darker, brighter, lighter, bigger, larger, smaller, wider, narrower, taller, shorter, "
    "closer, farther, further, warmer, cooler, colder, softer, sharper, happier, sadder, "
    "scarier, cuter, calmer, simpler, busier, cleaner, moodier, higher, lower, longer, thicker, "
    "thinner, redder, bluer, greener, dimmer, clearer, older, younger"
)
INTENSIFIERS = _listed("a bit, a little, a lot, slightly, much, even, way, far, somewhat")
SHORT_CLAUSE_WORDS = 4  # "darker" asks for a change; "older man fishing at dawn" describes one
# A pronoun at the start, followed by what is wrong with the picture: "it's too dark".
PRONOUN_SUBJECTS = _listed("it, its, they, this, that, these, those, she, he")
ABOUT_IT = _listed(
    "should, needs, need, must, could, can, looks, look, seems, is too, 's too, are too, "
    "'re too, is a bit, isn't, is not, doesn't, does not, but, too, again, in, with, without, "
    "as, now, please, one"
)
# "i want the sky purple": a wish for a part of the picture to be otherwise.
WISHES = _listed("i want, i'd like, i would like, i need, i prefer")
COLOURS = _listed(
    "red, orange, yellow, green, blue, purple, pink, brown, black, white, gray, grey, gold, "
    "golden, silver"
)
OTHERWISE = (*COLOURS, *COMPARATIVES, "gone", "removed", "to be")
# The picture's subject as a description, not a complaint: "the picture shows a knight".
DEPICTS = _listed(
    "of, show, shows, showing, depict, depicts, depicting, feature, features, featuring, "
    "portray, portrays, portraying"
)
# "it should be night" asks; "a man who needs to wear a mask" and "a knight must be brave"
# describe: a modal asks only in the first clause, with none of these before it.
DESCRIBED_SUBJECT = _listed("who, whom, whose, which, that, a, an")
MODALS = r"\b(?:should|must|has\s+to|have\s+to|needs\s+to|need\s+to)\s+(?:be|have|look|get|wear)\b"
_PICTURE = r"(?:image|picture|photo|pic|drawing|painting|render|result)"
# Anywhere in the message: it speaks of the earlier picture.
BACK_REFERENCES = (
    r"\binstead\b",
    r"\bversions?\b(?!\s+of\b)",  # not "a chibi version of batman"
    r"\bsame\s+(?:but|image|picture|photo|one|scene|style)\b",
    # "more of it", "a copy of this, in red"; not "a photo of that famous bridge"
    (
        r"\b(?:of|from)\s+(?:it|this|that|them)\b(?=\s*(?:$|[^\w\s]|(?:but|with|without|in|at|"
        r"as|and|please|again|instead|now|only|too|more|less)\b))"
    ),
    (
        rf"\b(?:this|that|previous|last|earlier|above|original|your|same)\s+(?:{_PICTURE}|one)\b"
        rf"(?!\s+(?:{words(*DEPICTS)})\b)"
    ),
    rf"^the\s+{_PICTURE}\b(?!\s+(?:{words(*DEPICTS)})\b)",
    rf"\b(?:{words(*COMPARATIVES)})\s+(?:one|version)\b",
    r"^(?:can|could|would|will)\s+(?:it|they|this|that|she|he)\s+(?:be|have|look)\b",
    r"^the\s+\w+(?:\s+\w+)?\s+(?:is|are|looks?|seems?)\s+(?:too|a\s+bit|not)\b",
    (
        rf"^(?:{words(*WISHES)})\s+(?:the|her|his|its|their)\s+[\w']+(?:\s+[\w']+)?\s+"
        rf"(?:{words(*OTHERWISE)})\b"
    ),
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
# The exclusions are nouns that start with a change verb: 加州, 加菲猫, 太阳, 变色龙, 变形金刚,
# 调皮, 将军, 别墅…
ZH_CHANGE_START = (
    r"改(?!装|革)|换|加(?!州|拿大|油|勒比|湿器|菲)|添|删|变(?!色龙|形)|调(?!酒|色板|皮)|"
    r"放大(?!镜)|缩小|裁(?!缝)|旋转(?!木马|楼梯)|翻转|让|把|将(?!军)|更(?!衣)|"
    r"稍微|有点|太(?!阳|空|极|平|湖|太)|不要|别(?!墅|致|针)|同样|一样|现在|但是|"
    r"不过|还是|它|[暗亮大小多少宽窄]一[点些]"
)
ZH_CHANGE_ANYWHERE = (
    r"变成|改成|换成|改为|换为|变为|调成|调[亮暗大小]|弄成|去掉|去除|删掉|删除|"
    r"移除|加上|添加|不要|更多|更少|[更再][^,，。]{0,4}[一点些]"
)
