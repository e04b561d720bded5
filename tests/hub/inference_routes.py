"""An OpenAI-compatible chat-completion route for the local Hub server (tests/hub/server.py): what
`InferenceClient(base_url=...).chat_completion` calls, answered by a deterministic judge.

The judge reads the two answers from the studio's judge prompt ("Answer 1:" / "Answer 2:") and answers as a judge
model would, in JSON: `HubServer.judge_mode` "pirate" (the default) prefers the answer that speaks like a pirate
("Ahoy"), "first" always prefers the answer shown first (a judge with nothing but position bias), "prose" answers in
words instead of JSON. A request without a token is refused (401), as Inference Providers refuse one.
"""

from __future__ import annotations

import re

from .server import ApiError, HubServer, Request, Response, route


def _verdict(mode: str, first: str, second: str) -> str:
    if mode == "first":
        return '{"winner": "1", "reason": "the first answer comes first"}'
    if mode == "prose":
        return "I think the second one is better. Winner: 2."
    a, b = first.startswith("Ahoy"), second.startswith("Ahoy")
    if a == b:
        return '{"winner": "tie", "reason": "both speak alike"}'
    winner = 1 if a else 2
    return f'{{"winner": "{winner}", "reason": "answer {winner} speaks like a pirate, as the reference"}}'


@route("POST", r"/v1/chat/completions")
def chat_completion(hub: HubServer, req: Request) -> Response:
    if req.token is None:
        raise ApiError(401, "Invalid credentials in Authorization header")
    body = req.json()
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    found = re.search(r"Answer 1:\n(.*)\n\nAnswer 2:\n(.*)\Z", user, re.S)
    first, second = found.groups() if found else ("", "")
    mode = getattr(hub, "judge_mode", "pirate")
    call = {"token": req.token, "model": body.get("model"), "first": first}
    hub.judge_calls = [*getattr(hub, "judge_calls", []), call]
    content = _verdict(mode, first, second)
    usage = {"prompt_tokens": len(user) // 4, "completion_tokens": len(content) // 4}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return Response.json(
        {
            "id": f"chatcmpl-{len(hub.judge_calls)}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": usage,
        }
    )
