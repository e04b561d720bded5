"""`python -m trainer push`: publish a finished run folder to the Hub (and print how to retry a failed push)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from trainer.config import ConfigError
from trainer.errors import EXIT_PUSH_FAILED
from trainer.runs import folder as rf


def add_command(sub) -> None:
    """The push command."""
    push = sub.add_parser(
        "push",
        help="publish a finished run (adapter + model card) to the Hub; retries a failed push",
        description="Upload a finished run's adapter, tokenizer, config, events, loss curve and model card to a Hub "
        "model repo in one commit. The token comes from HF_TOKEN or `hf auth login`.",
    )
    push.add_argument("run", type=Path, help="the run folder")
    push.add_argument("--repo-id", help="model repo (default: the run's hub.repo_id)")
    push.add_argument("--public", action="store_true", help="create the repo as public (default: private)")
    push.add_argument("--merged", action="store_true", help="also merge the adapter and push <repo-id>-merged")


def push_and_report(run_dir: Path, repo_id: str, private: bool, merged: bool = False) -> int:
    """Push a finished run (and its merged model); print the URLs, or the cause and how to retry (exit code 4)."""
    from trainer.hub import HubError, push_merged, push_run, resolve_token

    token = resolve_token()
    try:
        print(f"pushed to {push_run(run_dir, repo_id, token, private=private)}", flush=True)
        if merged:
            print(f"pushed the merged model to {push_merged(run_dir, repo_id, token, private=private)}", flush=True)
    except HubError as exc:
        retry = push_command(run_dir, repo_id, private, merged)
        print(f"error: trained, push failed: {exc} Retry: {retry}", flush=True)
        return EXIT_PUSH_FAILED
    return 0


def push_command(run_dir: Path, repo_id: str, private: bool, merged: bool = False) -> str:
    """The `push` command that repeats a push, shell-quoted, as the user can paste it: the run folder and every flag
    its config.yaml does not already say (--repo-id, --public, --merged), so it works as printed."""
    from trainer.config import HubConfig, load_yaml

    try:
        hub = load_yaml(Path(run_dir) / rf.CONFIG_FILE).hub
    except ConfigError:
        hub = HubConfig()
    argv = ["python", "-m", "trainer", "push", str(run_dir)]
    if repo_id != hub.repo_id:
        argv += ["--repo-id", repo_id]
    if not private and hub.private:
        argv.append("--public")
    if merged and not hub.push_merged:
        argv.append("--merged")
    return shlex.join(argv)


def command(args: argparse.Namespace) -> int:
    """`push`: publish (or re-publish) a finished run folder to the Hub."""
    from trainer.config import load_yaml

    config = load_yaml(args.run / "config.yaml")
    repo_id = args.repo_id or config.hub.repo_id
    if not repo_id:
        raise ConfigError(["--repo-id: this run has no hub.repo_id. Give one, e.g. --repo-id alice/phi3-pirate."])
    return push_and_report(
        args.run, repo_id, private=not args.public and config.hub.private, merged=args.merged or config.hub.push_merged
    )
