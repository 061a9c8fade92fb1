"""What the fuzz properties share: bounded, deterministic settings and the
shapes of hostile input (JSON in a provider's vocabulary, chunkings)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Deterministic (the same examples every run, no database): a failure is a
# regression to fix, never a flake; bounded so `make test` stays fast.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Keys and type words of the three wire formats the side parsers read.
KEYS = [
    "type",
    "message",
    "content_block",
    "delta",
    "text",
    "thinking",
    "partial_json",
    "stop_reason",
    "usage",
    "error",
    "choices",
    "content",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "index",
    "finish_reason",
    "reasoning",
    "reasoning_content",
    "response",
    "output",
    "object",
    "status",
    "candidates",
    "parts",
    "thought",
    "functionCall",
    "args",
    "finishReason",
    "promptFeedback",
    "blockReason",
    "usageMetadata",
    "modelVersion",
    "responseId",
    "id",
    "model",
    "input",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "prompt_tokens",
    "completion_tokens",
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "input_tokens_details",
    "output_tokens_details",
    "cached_tokens",
    "reasoning_tokens",
]
TYPES = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "message_delta",
    "message_stop",
    "error",
    "text",
    "tool_use",
    "text_delta",
    "thinking_delta",
    "input_json_delta",
    "response.output_text.delta",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "response.created",
    "output_text",
    "response",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(TYPES)
)
provider_json = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6)
    ),
    max_leaves=24,
)


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """`data` cut at arbitrary points (empty pieces included)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    pieces, last = [], 0
    for cut in cuts:
        pieces.append(data[last:cut])
        last = cut
    pieces.append(data[last:])
    return pieces
