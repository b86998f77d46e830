"""The starts of Open WebUI's default task templates (see flux_api/conversation/tasks.py for the
release they were checked against), rendered as Open WebUI renders them: {{MESSAGES:END:n}}
becomes the last n messages as "ROLE: content" lines, and for the background tasks (title, tags,
follow-ups) the <details> blocks and markdown images of the messages are removed first. And the
answer read as Open WebUI's parsers read it.
"""

import json


def read_json(answer: str):
    """As most of Open WebUI's readers do: from the first "{" to the last "}"."""
    return json.loads(answer[answer.find("{") : answer.rfind("}") + 1])


def read_json_from_last_brace(answer: str):
    """As its image-prompt and retrieval-query readers do: from the last "{" to the last "}"."""
    return json.loads(answer[answer.rfind("{") : answer.rfind("}") + 1])


def read_both_ways(answer: str):
    parsed = read_json(answer)
    assert read_json_from_last_brace(answer) == parsed
    return parsed


# A chat with this service as background tasks see it: the reply's image link is removed.
BACKGROUND_HISTORY = """USER: a red fox sleeping in deep snow at dusk 16:9
ASSISTANT: 🎨 Original Prompt: a red fox sleeping in deep snow at dusk 16:9
💬 Prompt Generation Model: Original Prompt
🌐 Prompt Used: a red fox sleeping in deep snow at dusk
📐 Image Specifications: 1344x768
🌟 Image generation successful!"""

# The chat as the image-prompt task sees it: the whole request, the new user message last, which
# may span lines and hold braces.
IMAGE_CHAT_HISTORY = """SYSTEM: You draw what the user describes.
USER: a red fox sleeping in deep snow at dusk
ASSISTANT: 🎨 Original Prompt: a red fox sleeping in deep snow at dusk
🌟 Image generation successful!

![Generated image](https://flux.example/image/2f9c.jpg)
USER: now the same fox in a {spring} meadow,
  with   cherry blossoms falling"""


def history(messages: str) -> str:
    return f"### Chat History:\n<chat_history>\n{messages}\n</chat_history>"


TITLE_TASK = """### Task:
Generate a concise title summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
- Keep it short: 2-4 words is best.
- Do not use emojis, quotation marks, or special formatting.
### Output:
JSON format: { "title": "your concise title here" }
### Examples:
- { "title": "Stock Trends" },
- { "title": "Chocolate Chip Cookies" },
""" + history(BACKGROUND_HISTORY)

# The title template of earlier releases, still in use where an admin saved it.
OLD_TITLE_TASK = """### Task:
Generate a concise, 3-5 word title with an emoji summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
### Output:
JSON format: { "title": "your concise title here" }
""" + history(BACKGROUND_HISTORY)

TAGS_TASK = """### Task:
Generate 1-3 broad tags categorizing the main themes of the chat history, along with 1-3 more specific subtopic tags.

### Guidelines:
- Start with high-level domains (e.g. Science, Technology, Philosophy, Arts, Politics, Business, Health, Sports, Entertainment, Education)
- If content is too short (less than 3 messages) or too diverse, use only ["General"]

### Output:
JSON format: { "tags": ["tag1", "tag2", "tag3"] }

""" + history(BACKGROUND_HISTORY)

FOLLOW_UP_TASK = """### Task:
Suggest 3-5 relevant follow-up questions or prompts that the user might naturally ask next in this conversation as a **user**, based on the chat history, to help continue or deepen the discussion.
### Guidelines:
- Write all follow-up questions from the user’s point of view, directed to the assistant.
- Response must be a JSON object with a "follow_ups" key containing an array of strings, no extra text or formatting.
### Output:
JSON format: { "follow_ups": ["Question 1?", "Question 2?", "Question 3?"] }
""" + history(BACKGROUND_HISTORY)

IMAGE_PROMPT_TASK = """### Task:
Generate a detailed prompt for am image generation task based on the given language and context. Describe the image as if you were explaining it to someone who cannot see it. Include relevant details, colors, shapes, and any other important elements.

### Guidelines:
- Be descriptive and detailed, focusing on the most important aspects of the image.

### Output:
Strictly return in JSON format:
{
    "prompt": "Your detailed description here."
}

""" + history(IMAGE_CHAT_HISTORY)

QUERIES_TASK = (
    """### Task:
Analyze the chat history to determine the necessity of generating search queries, in the given language. By default, **prioritize generating 1-3 broad and relevant search queries** unless it is absolutely certain that no additional information is required.

### Guidelines:
- If and only if it is entirely certain that no useful results can be retrieved by a search, return: { "queries": [] }.
- Today's date is: 2025-06-01.

### Output:
Strictly return in JSON format: 
{
  "queries": ["query1", "query2"]
}

"""
    + history(IMAGE_CHAT_HISTORY)
    + "\n"
)

AUTOCOMPLETE_TASK = (
    """### Task:
You are an autocompletion system. Continue the text in `<text>` based on the **completion type** in `<type>` and the given language.  

### **Instructions**:
5. If unsure, return: `{ "text": "" }`.  

### **Output Rules**:
- Respond only in JSON format: `{ "text": "<your_completion>" }`.

---
### Context:
<chat_history>
"""
    + BACKGROUND_HISTORY
    + """
</chat_history>
<type>General</type>  
<text>a lighthouse on a cliff at</text>  
#### Output:
"""
)

DOCUMENT_SUGGESTIONS_TASK = """### Task:
Generate 3-5 insightful questions a user would naturally want to ask about the provided document content, to help them explore and understand its key topics, concepts, and details.
### Output:
JSON format: { "questions": ["Question 1?", "Question 2?", "Question 3?"] }
### Document Content:
<document>
Tide tables for the harbour, June: high water 06:12 and 18:40.
</document>"""

EMOJI_TASK = """Your task is to reflect the speaker's likely facial expression through a fitting emoji. Interpret emotions from the message and reflect their facial expression using fitting, diverse emojis (e.g., 😊, 😢, 😡, 😱).

Message: ```that fox picture is wonderful, thank you!```"""

MOA_TASK = '''You have been provided with a set of responses from various models to the latest user query: "a red fox in the snow"

Your task is to synthesize these responses into a single, high-quality response.

Responses from models: """🎨 Original Prompt: a red fox in the snow"""

"""Here is a fox in the snow."""'''
