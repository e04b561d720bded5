"""The Runs tab's *Evaluate* section: the base and the tuned model answer the same prompts, scored on the
references, as a queued job; its estimate before Start, its progress, the comparison table, the chart, both answers
side by side and the results as a download.

Every handler takes the run id the browser sent and hands it to the run service's evaluations (`RunService.evals`),
which check that the caller owns the run; a file to evaluate on is an upload, kept in the caller's own folder.
"""

from __future__ import annotations

import os
from typing import Any

import gradio as gr

from trainer.runs.service import (
    AccessError,
    BenchmarkSettings,
    EvalSettings,
    EvalView,
    JudgeSettings,
    RunService,
    RunState,
    without_server_paths,
)
from trainer.ui.context import AppContext, caller, download_folder, plain
from trainer.ui.form import labelled

SOURCES = [("the run's held-out rows", "held-out"), ("a file I upload", "file"), ("a Hub dataset", "dataset")]
SUMMARY_COLUMNS = ["metric", "base", "tuned", "change"]
ROW_COLUMNS = ["prompt", "reference", "base", "tuned", "chrF base", "chrF tuned"]
BENCH_COLUMNS = ["task", "metric", "base", "tuned", "change"]
JUDGE_COLUMNS = ["prompt", "tuned shown first: verdict", "reason", "base shown first: verdict", "reason "]


def _whole(value: Any) -> Any:
    """A form number as an int when it is a whole number (anything else is left for the settings to refuse)."""
    whole = isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
    return int(value) if whole else value


def settings_of(source: str, dataset: str | None, split: str | None, rows: Any, max_new_tokens: Any) -> EvalSettings:
    """The evaluation the form asks for (a file's path is never taken from the browser: see `Evaluations.start`)."""
    return EvalSettings(
        source=source,
        path=(dataset or "").strip() or None if source == "dataset" else None,
        split=(split or "").strip() or "test",
        rows=_whole(rows),
        max_new_tokens=_whole(max_new_tokens),
    )


def bench_choices() -> list[tuple[str, str]]:
    """The offered lm-eval tasks and what each measures."""
    from trainer.evaluation.benchmarks import TASKS

    return list(TASKS.items())


def judge_settings(model: str | None, rubric: str | None, rows: Any, price: Any) -> JudgeSettings:
    """The judge the form asks for (an empty price: unknown)."""
    known = isinstance(price, (int, float)) and not isinstance(price, bool)
    price = float(price) if known else None
    return JudgeSettings((model or "").strip(), rubric or "", _whole(rows), usd_per_million_tokens=price)


def status_markdown(
    service: RunService, view: EvalView, votes: dict[str, Any] | None = None, judged: dict[str, Any] | None = None
) -> str:
    """Where the run's evaluation is: queued, answering (n of N prompts), finished with its headline, or why not;
    the blind votes' tally and the judge's."""
    from trainer.evaluation.metrics import judge_text, tally_text
    from trainer.evaluation.report import headline

    job, status, lines = view.job, view.status, []
    if job is not None:
        if job.status == RunState.QUEUED:
            lines.append(f"**Evaluation queued** · {service.waiting_note(job) or ''}")
        elif job.status == RunState.RUNNING:
            done, total = status.get("phase_steps") or (0, 0)
            phase = status.get("phase") or "starting"
            answered = f" · {done} of {total} prompts answered" if phase == "answering" and total else ""
            lines.append(f"**Evaluating** · {phase}…{answered}")
        elif job.status != RunState.SUCCEEDED:
            lines.append(f"**Last evaluation {job.status}**")
        if job.error and job.status != RunState.SUCCEEDED:
            lines.append(labelled(without_server_paths(job.error)))
    if view.summary is not None:
        lines.append(headline(view.summary))
    elif job is None:
        lines.append("Not evaluated yet: pick the prompts and press **Evaluate**.")
    if votes and votes.get("votes"):
        lines.append(f"**Blind votes:** {plain(tally_text(votes))}.")
    if judged:
        stopped = "" if judged.get("complete", True) else " (stopped early)"
        lines.append(f"**Judge:** {plain(judge_text(judged['summary'], judged['model']))}{stopped}.")
    return "\n\n".join(lines)


def judge_table(judged: dict[str, Any] | None) -> list[list[str]] | None:
    """Each judged pair: the prompt, and the verdict with its reason in each order."""
    if not judged:
        return None
    rows = []
    for pair in judged.get("pairs", []):
        cells = [pair["prompt"]]
        for judgment in pair["judgments"]:
            cells += [judgment["verdict"], judgment["reason"]]
        rows.append(cells)
    return rows


def share_markdown(token: str | None, request: gr.Request | None) -> str:
    """The run's vote link for its owner to send (empty when it is not shared)."""
    if not token:
        return ""
    host = os.environ.get("SPACE_HOST")  # a Space's public address; locally, the address this page was opened at
    if host:
        base = f"https://{host}/"
    else:
        url = getattr(request, "url", None)
        base = f"{url.scheme}://{url.netloc}{url.path}" if url is not None else ""
    return (
        f"**Vote link:** `{base}?vote={token}` · signed-in people who open it vote on this run's evaluation "
        "(its prompts and both answers, as A and B; nothing else of the run), once per prompt."
    )


def not_started(what: str, exc: Exception) -> str:
    """A refused job's problems (a RefusedRun's each, else the error), labelled, as Markdown."""
    problems = getattr(exc, "problems", None) or [str(exc)]
    return f"**{what} not started:**\n" + "\n".join(f"- {labelled(without_server_paths(p))}" for p in problems)


class EvalPanel:
    """The Evaluate section's handlers (public methods the page's events call, and tests call by name)."""

    def __init__(self, ctx: AppContext):
        self.service = ctx.service
        self.on_gpu = ctx.on_gpu

    @staticmethod
    def show_eval_source(source: str) -> list[Any]:
        """The file box for a file, the dataset and split boxes for a Hub dataset."""
        return [gr.update(visible=source == "file"), *[gr.update(visible=source == "dataset")] * 2]

    def estimate_eval(self, run_id, source, dataset, split, rows, max_new_tokens, profile: gr.OAuthProfile | None):
        """What the evaluation will cost, before Evaluate: prompts, tokens at most, and the time."""
        settings = settings_of(source, dataset, split, rows, max_new_tokens)
        if problems := settings.problems():
            return "\n".join(f"- {labelled(p)}" for p in problems)
        try:
            return self.service.evals.estimate(caller(profile), run_id, settings, self.on_gpu).markdown()
        except (AccessError, ValueError) as exc:
            return labelled(str(exc))

    def evaluate(
        self,
        run_id,
        source,
        upload,
        dataset,
        split,
        rows,
        max_new_tokens,
        profile: gr.OAuthProfile | None,
        oauth: gr.OAuthToken | None,
    ):
        """Queue the evaluation of the caller's run (refused with every problem named, before any GPU time)."""
        settings = settings_of(source, dataset, split, rows, max_new_tokens)
        who = caller(profile, oauth)
        try:
            job = self.service.evals.start(who, run_id, settings, upload=upload, on_gpu=self.on_gpu)
        except (AccessError, ValueError) as exc:
            return not_started("Evaluation", exc)
        return f"**Evaluation queued** (job #{job.id}): the progress shows here."

    def cancel_eval(self, run_id, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        """Cancel the caller's run's evaluation that is queued or running (what was answered is kept)."""
        try:
            self.service.evals.cancel(caller(profile, oauth), run_id)
        except (AccessError, ValueError) as exc:
            gr.Warning(str(exc))
            return gr.skip()
        return "**Cancelling the evaluation**: the batch in hand ends, and the prompts answered so far are kept."

    def refresh_eval(self, run_id, seen: dict, profile: gr.OAuthProfile | None, request: gr.Request | None = None):
        """Re-read the run's evaluation; send nothing when it has not changed since this browser tab last drew it."""
        from trainer.evaluation.benchmarks import benchmark_table
        from trainer.evaluation.metrics import comparison
        from trainer.evaluation.report import row_table

        who = caller(profile)
        try:
            run = self.service.find(who, run_id)
        except AccessError:
            none, off = gr.update(value=None, visible=False), gr.update(interactive=False)
            return ["", "", none, none, none, none, none, off, off, {}]
        token = self.service.votes.shared(who, run)
        stamp = [run.id, token, *self.service.evals.stamp(who, run)]  # a few stats: polled every second
        if seen.get("stamp") == stamp:
            return [gr.skip()] * 9 + [seen]
        view = self.service.evals.view(who, run)
        votes = self.service.votes.counts(run)
        judged = self.service.evals.judgments(who, run)
        benchmarks = self.service.evals.benchmark_results(who, run)
        chart = self.service.evals.chart(who, run) if view.summary else None
        summary = comparison(view.summary) if view.summary else None
        return [
            status_markdown(self.service, view, votes, judged),
            share_markdown(token, request),
            gr.update(value=summary, visible=summary is not None),
            gr.update(value=chart, visible=chart is not None),
            gr.update(value=row_table(view.rows) if view.rows else None, visible=bool(view.rows)),
            gr.update(value=judge_table(judged), visible=judged is not None),
            gr.update(value=benchmark_table(benchmarks) if benchmarks else None, visible=benchmarks is not None),
            gr.update(interactive=view.active),
            gr.update(interactive=view.summary is not None),
            {"stamp": stamp},
        ]

    def estimate_judge(self, run_id, model, rubric, rows, price, profile: gr.OAuthProfile | None):
        """The judge's calls, tokens and cost before it starts."""
        settings = judge_settings(model, rubric, rows, price)
        if problems := settings.problems():
            return "\n".join(f"- {labelled(p)}" for p in problems)
        try:
            return self.service.evals.judge_estimate(caller(profile), run_id, settings).markdown(settings.model)
        except (AccessError, ValueError) as exc:
            return labelled(str(exc))

    def judge(self, run_id, model, rubric, rows, price, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        """Queue the judging of the caller's evaluated run, on their own Hugging Face account."""
        try:
            job = self.service.evals.judge(caller(profile, oauth), run_id, judge_settings(model, rubric, rows, price))
        except (AccessError, ValueError) as exc:
            problems = getattr(exc, "problems", None) or [str(exc)]
            return "**Judge not started:**\n" + "\n".join(f"- {labelled(p)}" for p in problems)
        return f"**Judging queued** (job #{job.id}): the verdicts show here."

    def run_benchmarks(self, run_id, tasks, limit, profile: gr.OAuthProfile | None, oauth: gr.OAuthToken | None):
        """Queue lm-eval's tasks on the caller's trained run, the base and the tuned model alike."""
        settings = BenchmarkSettings(tasks=list(tasks or []), limit=_whole(limit))
        try:
            job = self.service.evals.benchmarks(caller(profile, oauth), run_id, settings, on_gpu=self.on_gpu)
        except (AccessError, ValueError) as exc:
            problems = getattr(exc, "problems", None) or [str(exc)]
            return "**Benchmarks not started:**\n" + "\n".join(f"- {labelled(p)}" for p in problems)
        return f"**Benchmarks queued** (job #{job.id}): both models answer the same rows; the results show here."

    def share_votes(self, run_id, profile: gr.OAuthProfile | None, request: gr.Request | None = None):
        """Make (or show again) the vote link of the caller's own evaluated run."""
        try:
            return share_markdown(self.service.votes.share(caller(profile), run_id), request)
        except (AccessError, ValueError) as exc:
            gr.Warning(str(exc))
            return gr.skip()

    def unshare_votes(self, run_id, profile: gr.OAuthProfile | None):
        """End the vote link of the caller's own run (the votes cast stay)."""
        try:
            self.service.votes.unshare(caller(profile), run_id)
        except (AccessError, ValueError) as exc:
            gr.Warning(str(exc))
            return gr.skip()
        return "Vote link ended: it no longer opens."

    def download_eval(self, run_id, profile: gr.OAuthProfile | None):
        """The caller's run's evaluation results (results.json, summary.json, chart.png) as a zip."""
        try:
            run = self.service.find(caller(profile), run_id)
            into = download_folder("eval-") / f"run-{run.id}-eval"
            archive = self.service.evals.archive(caller(profile), run.id, into)
        except (AccessError, ValueError) as exc:
            gr.Warning(str(exc))
            return gr.update(value=None, visible=False)
        return gr.update(value=archive, visible=True)


def build(ctx: AppContext, picker: gr.Dropdown, timer: gr.Timer, save_file_js: str) -> EvalPanel:
    """The Evaluate section (an accordion) and its wiring: the estimate follows the form, the timer the results."""
    panel = EvalPanel(ctx)
    defaults = EvalSettings()
    with gr.Accordion("Evaluate: base vs tuned on the same prompts", open=False, elem_id="eval-section") as section:
        with gr.Row():
            source = gr.Radio(SOURCES, value="held-out", label="Prompts", elem_id="eval-source", scale=2)
            rows = gr.Number(defaults.rows, label="At most this many prompts", precision=0, elem_id="eval-rows")
            max_new = gr.Number(
                defaults.max_new_tokens, label="Answer length (tokens)", precision=0, elem_id="eval-max-new-tokens"
            )
        with gr.Row():
            upload = gr.File(label="Prompt file (chat rows with replies)", elem_id="eval-file", visible=False)
            dataset = gr.Textbox(
                label="Hub dataset ID", placeholder="user/name", elem_id="eval-dataset", visible=False
            )
            split = gr.Textbox(defaults.split, label="Split", elem_id="eval-split", visible=False)
        estimate = gr.Markdown(elem_id="eval-estimate")
        with gr.Row():
            start = gr.Button("Evaluate", elem_id="eval-start", variant="primary", scale=0, min_width=120)
            cancel = gr.Button("Cancel evaluation", elem_id="eval-cancel", scale=0, min_width=160, interactive=False)
            download = gr.Button("Download results (.zip)", elem_id="eval-download", scale=0, min_width=190)
        status = gr.Markdown(elem_id="eval-status")
        with gr.Row():
            share = gr.Button("Share for blind votes", elem_id="share-votes", scale=0, min_width=190)
            unshare = gr.Button("End the vote link", elem_id="unshare-votes", scale=0, min_width=170)
        link = gr.Markdown(elem_id="share-link")
        with gr.Row():
            summary = gr.Dataframe(
                headers=SUMMARY_COLUMNS, label="Base vs tuned", elem_id="eval-summary", visible=False
            )
            chart = gr.Image(label="Scores", elem_id="eval-chart", type="pil", interactive=False, visible=False)
        table = gr.Dataframe(
            headers=ROW_COLUMNS,
            label="Every prompt, both answers",
            elem_id="eval-table",
            wrap=True,
            visible=False,
            column_widths=["16%", "22%", "22%", "22%", "9%", "9%"],
        )
        judged = gr.Dataframe(
            headers=JUDGE_COLUMNS, label="The judge's verdicts", elem_id="judge-table", wrap=True, visible=False
        )
        benchmarks = gr.Dataframe(
            headers=BENCH_COLUMNS, label="Benchmarks (lm-evaluation-harness)", elem_id="bench-table", visible=False
        )
        with gr.Accordion("Standard benchmarks: what else did it learn or forget?", open=False):
            with gr.Row():
                bench_tasks = gr.CheckboxGroup(
                    [(f"{name}: {what}", name) for name, what in bench_choices()],
                    value=BenchmarkSettings().tasks,
                    label="Tasks (lm-evaluation-harness)",
                    elem_id="bench-tasks",
                    scale=3,
                )
                bench_limit = gr.Number(BenchmarkSettings().limit, label="Rows of each task", precision=0)
            bench_start = gr.Button("Run benchmarks", elem_id="bench-start", scale=0, min_width=150)
        judge_title = "Judge the answers with a model (on your Hugging Face account)"
        with gr.Accordion(judge_title, open=False) as judge_section:
            with gr.Row():
                judge_model = gr.Textbox(JudgeSettings().model, label="Judge model", elem_id="judge-model", scale=3)
                judge_rows = gr.Number(JudgeSettings().rows, label="At most this many pairs", precision=0)
                judge_price = gr.Number(None, label="Your provider's price, $ per million tokens (optional)")
            judge_rubric = gr.Textbox(JudgeSettings().rubric, label="Rubric", lines=3, elem_id="judge-rubric")
            judge_estimate = gr.Markdown(elem_id="judge-estimate")
            judge_start = gr.Button("Judge", elem_id="judge-start", scale=0, min_width=110)
        archive = gr.File(label="evaluation (.zip)", visible=False, elem_id="eval-zip")
        seen = gr.State({})
    form = [picker, source, dataset, split, rows, max_new]
    source.change(panel.show_eval_source, source, [upload, dataset, split], queue=False)
    for trigger in (section.expand, source.change, rows.change, max_new.change, dataset.blur):  # not per run pick
        trigger(panel.estimate_eval, form, estimate, queue=False, show_progress="hidden")
    start.click(panel.evaluate, [picker, source, upload, dataset, split, rows, max_new], status)
    cancel.click(panel.cancel_eval, picker, status)
    outputs = [status, link, summary, chart, table, judged, benchmarks, cancel, download, seen]
    bench_start.click(panel.run_benchmarks, [picker, bench_tasks, bench_limit], status)
    judge_form = [picker, judge_model, judge_rubric, judge_rows, judge_price]
    for trigger in (judge_section.expand, judge_model.blur, judge_rows.change, judge_price.change, judge_rubric.blur):
        trigger(panel.estimate_judge, judge_form, judge_estimate, queue=False, show_progress="hidden")
    judge_start.click(panel.judge, judge_form, status)
    share.click(panel.share_votes, picker, link, queue=False)
    unshare.click(panel.unshare_votes, picker, link, queue=False)
    for trigger in (timer.tick, picker.change):
        trigger(panel.refresh_eval, [picker, seen], outputs, queue=False, show_progress="hidden")
    download.click(panel.download_eval, picker, archive).then(None, archive, None, js=save_file_js)
    return panel
