"""Never the Space's token for someone else, by construction: every handler hands a caller's token on only through
`access.hub_token` (their own, or False: no token at all; never None, which huggingface_hub and datasets read as
"use the Space's HF_TOKEN"), or to the job manager, which holds it for that caller's own worker (whose environment
holds no secret of the server's: `workers.worker_environment`). Checked on the handlers' code, trainer/ui/, where a
caller's identity enters; what the Hub then receives is watched in tests/hub/test_space_tokens.py."""

from __future__ import annotations

import ast

from trainer.paths import PROJECT_ROOT

HOLDERS = {"submit", "attach_token", "action"}
"""RunQueue calls that keep the caller's own token for their worker (`action`: Resume through the Runs tab)."""


def token_handoffs(source: str) -> list[tuple[int, str]]:
    """(line, callee) of each call that is given `<something>.token` as an argument."""
    found = []
    for call in ast.walk(ast.parse(source)):
        if not isinstance(call, ast.Call):
            continue
        callee = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "?")
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            if isinstance(arg, ast.Attribute) and arg.attr == "token":
                found.append((call.lineno, callee))
    return found


def test_handlers_hand_a_callers_token_only_to_hub_token_or_the_job_manager():
    bypasses = [
        f"{path.relative_to(PROJECT_ROOT)}:{line} {callee}(... .token ...)"
        for path in sorted((PROJECT_ROOT / "trainer" / "ui").glob("*.py"))
        for line, callee in token_handoffs(path.read_text(encoding="utf-8"))
        if callee not in HOLDERS | {"hub_token"}
    ]
    assert bypasses == [], "pass hub_token(who), never who.token, to anything that reads the Hub"


def test_the_check_sees_a_bypass():
    assert token_handoffs("data.preview(cfg, tok, 9, token=who.token)\nhub_token(who)") == [(1, "preview")]
    assert token_handoffs("check(cfg, True, who.token)") == [(1, "check")]
