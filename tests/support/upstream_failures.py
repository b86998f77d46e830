"""Every Workers AI failure class the fake can script, with the OpenAI error the service must
answer: tests/system/test_upstream_errors.py checks each answer, tests/system/test_faults.py
injects each through every delivery."""

from tests.support.fakes.workers_ai import Scripted

CASES = [
    # scripted answer, status, code, words the message must contain
    (
        Scripted(
            429, 4006, "AiError: you have used up your daily free allocation of 10,000 neurons"
        ),
        429,
        "insufficient_quota",
        "daily free allocation",
    ),
    (
        Scripted(429, 3036, "AiError: Account limited"),
        429,
        "insufficient_quota",
        "paid plan",
    ),
    (
        Scripted(
            400, 3030, "AiError: Your output has been flagged for potential NSFW content (abc)"
        ),
        400,
        "content_policy_violation",
        "Rephrase",
    ),
    (
        Scripted(400, 7000, "No route for that URI"),
        502,
        "upstream_configuration",
        "CF_ACCOUNT_ID",
    ),
    (Scripted(400, 5007, "No such model"), 502, "upstream_configuration", "FLUX_MODEL"),
    (
        Scripted(400, 5006, "AiError: Bad input: must NOT have additional properties (xyz)"),
        502,
        "upstream_rejected_input",
        "must NOT have additional properties",
    ),
    (Scripted(413, 3006, "Request is too large"), 400, "request_too_large", "too large"),
    (
        Scripted(400, 5004, "AiError: Invalid data type for base64 input: image_b64"),
        502,
        "upstream_rejected_input",
        "base64",
    ),
    (
        Scripted(400, 3030, "AiError: Model input is not valid: missing required input mask_image"),
        502,
        "upstream_rejected_input",
        "mask_image",
    ),
    (
        Scripted(400, 3030, "AiError: Inference failed (r-1)"),
        502,
        "upstream_error",
        "Inference failed",
    ),
    (Scripted(500, 9999, "something new"), 502, "upstream_error", "something new"),
    (Scripted(408, 3007, "timeout"), 504, "upstream_timeout", "did not answer"),
    (Scripted(mode="html"), 502, "upstream_bad_response", "not an image"),
    (Scripted(mode="truncated"), 502, "upstream_bad_response", "not an image"),
    (Scripted(mode="not_image"), 502, "upstream_bad_response", "not an image"),
    (Scripted(mode="half_image"), 502, "upstream_bad_response", "cut off"),
    (Scripted(mode="deep_json"), 502, "upstream_bad_response", "unreadable"),
]
