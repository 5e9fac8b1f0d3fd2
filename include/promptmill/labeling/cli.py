"""``promptmill label`` and ``promptmill estimate``; the main cli.py calls ``add_commands``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from promptmill.choices import LABEL_MODES, SERVICE_TIERS
from promptmill.labeling.settings import LabelSettings

# The client stack (openai, httpx2) is imported by the handlers only: `promptmill --help` and the other
# commands start without it.

log = logging.getLogger("promptmill.labeling")


CONNECTION = ("The server: OPENAI_API_KEY (none needed for a local server) and OPENAI_BASE_URL or --base-url "
              "(default: https://api.openai.com/v1; a local OpenAI-compatible server such as vLLM, Ollama, llama.cpp "
              "or LM Studio works the same).")


def add_commands(subparsers: argparse._SubParsersAction, common_parent: argparse.ArgumentParser | None = None) -> None:
    parents = [common_parent] if common_parent is not None else []
    has_json = common_parent is not None and "--json" in common_parent._option_string_actions
    default_model = LabelSettings.model_fields["model"].default

    label = subparsers.add_parser(
        "label", parents=parents, help="label pending prompts through an OpenAI-compatible API",
        description="Label every kept prompt that has no label of the current label version (the model and the "
        f"instructions; default model {default_model}), several per request, committing each answer with its cost. "
        "Safe to stop and run again: nothing committed is sent again, and a run right after a crash takes over what "
        "the dead run held. " + CONNECTION,
        epilog="examples:\n  OPENAI_API_KEY=sk-... promptmill label --max-usd 5\n"
               "  OPENAI_BASE_URL=http://127.0.0.1:11434/v1 promptmill label --model llama3.1:8b\n"
               "  promptmill label --mode batch   # the Batch API: half price, answers within 24 h",
    )
    _add_run_options(label, has_json)
    label.add_argument("--limit", type=int, metavar="N", help=LabelSettings.option_help(
        "limit", "label at most N prompts in this run", default="all pending"))
    label.add_argument("--max-usd", type=float, metavar="USD", help=LabelSettings.option_help(
        "max_usd", "never spend more than this in this run (each request checked at its worst case first)",
        default="no cap"))
    _add_client_options(label)
    label.add_argument("--mode", choices=LABEL_MODES, help=LabelSettings.option_help(
        "mode", "sync (Chat Completions) or batch (the Batch API, half price)"))
    label.add_argument("--service-tier", choices=SERVICE_TIERS, help=LabelSettings.option_help(
        "service_tier", "e.g. flex (half price, slower) in sync mode"))
    label.add_argument("--retry-failed", action="store_true",
                       help="send the prompts labeled `failed` (for the current label version) again, from scratch "
                            "(default: off)")
    label.set_defaults(handler=handle_label)

    evaluate = subparsers.add_parser(
        "evaluate-labels", parents=parents, help="score the labeling settings on a gold set before paying for the store",
        description="Label the prompts of a gold set (CSV or TSV with 'prompt' and 'description' columns) with the "
                    "current or given settings, without touching the store's prompts, and report the agreement with "
                    "the gold descriptions, tokens and cost per 1,000 prompts. The result is stored per label "
                    "version and shown on the dataset page. " + CONNECTION,
        epilog="example:\n  promptmill evaluate-labels --gold gold.tsv --model gpt-6-luna-mini",
    )
    _add_run_options(evaluate, has_json)
    evaluate.add_argument("--gold", type=Path, required=True, metavar="FILE", help="the gold set (CSV or TSV)")
    evaluate.add_argument("--limit", type=int, metavar="N", help="evaluate on the first N pairs only (default: all)")
    _add_client_options(evaluate)
    evaluate.set_defaults(handler=handle_evaluate)

    est = subparsers.add_parser(
        "estimate", parents=parents, help="pending count and estimated tokens and cost",
        description="How many prompts are pending for the current (or given) label version, and what labeling "
        "them would take: requests, input tokens counted offline on the real request bodies, output tokens from "
        "the ledger's measured average, and the cost at each price tier. Sends nothing.",
        epilog="examples:\n  promptmill estimate\n  promptmill estimate --model gpt-6-luna-mini --json",
    )
    _add_run_options(est, has_json)
    est.add_argument("--limit", type=int, metavar="N", help="estimate for at most N prompts (default: all pending)")
    est.add_argument("--mode", choices=LABEL_MODES, help=LabelSettings.option_help("mode", "sync or batch"))
    est.add_argument("--service-tier", choices=SERVICE_TIERS, help=LabelSettings.option_help(
        "service_tier", "e.g. flex"))
    est.add_argument("--price-input", type=float, metavar="USD", help=LabelSettings.option_help(
        "price_input", "the model's input price per 1M tokens", default="the price table's"))
    est.add_argument("--price-output", type=float, metavar="USD", help=LabelSettings.option_help(
        "price_output", "the model's output price per 1M tokens", default="the price table's"))
    est.set_defaults(handler=handle_estimate)


def _add_run_options(parser: argparse.ArgumentParser, has_json: bool) -> None:
    parser.add_argument("--model", help=LabelSettings.option_help("model", "model name (part of the label version)"))
    parser.add_argument("--pack-size", type=int, metavar="N", help=LabelSettings.option_help(
        "pack_size", "prompts per request"))
    if not has_json:
        parser.add_argument("--json", action="store_true",
                            help="print the result as one JSON object on one line (default: text)")


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, metavar="N", help=LabelSettings.option_help(
        "concurrency", "requests in flight at once (the first request of a run always goes alone)"))
    parser.add_argument("--base-url", metavar="URL", help="OpenAI-compatible server (default: $OPENAI_BASE_URL, "
                        "else https://api.openai.com/v1)")
    parser.add_argument("--price-input", type=float, metavar="USD", help=LabelSettings.option_help(
        "price_input", "the model's input price per 1M tokens",
        default="the price table's; a model it does not know, e.g. a local one, costs $0"))
    parser.add_argument("--price-output", type=float, metavar="USD", help=LabelSettings.option_help(
        "price_output", "the model's output price per 1M tokens", default="the price table's"))


def settings_from_args(args: argparse.Namespace) -> LabelSettings:
    overrides = {
        name: getattr(args, name, None)
        for name in ("model", "pack_size", "limit", "max_usd", "concurrency", "mode", "service_tier", "price_input",
                     "price_output")
    }
    return LabelSettings.from_env(**overrides)


def _print(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, default=str))
    else:
        print(human)


def _fail(args: argparse.Namespace, command: str, error: Exception, code: int) -> int:
    """One line on stderr (and the error as JSON with --json); ``code`` 2 for usage, 1 for everything else."""
    if getattr(args, "json", False):
        print(json.dumps({"error": str(error)}))
    print(f"promptmill {command}: {error}", file=sys.stderr)
    return code


def handle_label(args: argparse.Namespace, engine: Engine, settings: object = None) -> int:
    from promptmill.labeling.client import ClientConfig
    from promptmill.labeling.contract import ContractError
    from promptmill.labeling.errors import LabelingError
    from promptmill.labeling.pricing import PriceError
    from promptmill.labeling.runner import label_pending

    try:
        settings = settings_from_args(args)
        client_config = ClientConfig.from_env(base_url=getattr(args, "base_url", None))
    except ValueError as exc:  # a bad flag or PROMPTMILL_LABEL_* value: how the command was called
        return _fail(args, "label", exc, 2)
    try:
        if getattr(args, "retry_failed", False):
            from promptmill.labeling.ledger import forget_failures, resolve_version

            with engine.begin() as conn:
                again = forget_failures(conn, resolve_version(settings).version)
            print(f"{again:,} failed prompts are pending again", file=sys.stderr)
        if settings.mode == "batch":
            from promptmill.labeling.batch_mode import run_batch_mode

            result = run_batch_mode(engine, settings, client_config)
            _print(args, result, f"batch mode: labeled {result['labeled']:,} prompts ({result['failed']:,} failed), "
                                 f"spend ${result['spend_usd']:.4f}, {result['released']:,} pending again")
            return 0

        # Progress lines come from the labeler's own log (stderr, once each; -q silences them).
        summary = label_pending(engine, settings, client_config)
    except (LabelingError, ContractError, PriceError, ValueError) as exc:  # the server, the files, the data
        return _fail(args, "label", exc, 1)
    result = summary.as_dict()
    _print(args, result, summary_line(summary))
    return 0


def summary_line(summary: Any) -> str:
    """What a sync run did and, honestly, what it left: pending prompts and why."""
    line = (f"labeled {summary.labeled:,} prompts ({summary.no_object:,} _no_object, {summary.failed:,} failed) in "
            f"{summary.requests:,} requests, {summary.tokens:,} tokens, ${summary.spend_usd:.4f}; "
            f"stopped: {summary.stopped_by}")
    if summary.budget_note:
        line += f" ({summary.budget_note})"
    for note in summary.fallbacks:
        line += f"; {note}"
    if summary.taken_from_dead_runs:
        line += f"; took over {summary.taken_from_dead_runs:,} prompts claimed by a run that died"
    if summary.pending_left:
        held = summary.held_by_live_runs
        line += (f"; {summary.pending_left:,} still pending"
                 + (f" ({held:,} being sent by another run that is still running)" if held else ""))
    return line


def handle_evaluate(args: argparse.Namespace, engine: Engine, settings: object = None) -> int:
    from promptmill.labeling.client import ClientConfig
    from promptmill.labeling.contract import ContractError
    from promptmill.labeling.errors import LabelingError
    from promptmill.labeling.evaluate import GoldSetError, evaluate_labels, read_gold
    from promptmill.labeling.pricing import PriceError

    try:
        settings = settings_from_args(args)
        client_config = ClientConfig.from_env(base_url=getattr(args, "base_url", None))
        gold = read_gold(args.gold)
    except GoldSetError as exc:
        return _fail(args, "evaluate-labels", exc, 1)
    except ValueError as exc:
        return _fail(args, "evaluate-labels", exc, 2)
    try:
        result = evaluate_labels(engine, settings, client_config, gold, limit=args.limit)
    except (LabelingError, ContractError, PriceError) as exc:
        return _fail(args, "evaluate-labels", exc, 1)

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    _print(
        args,
        result,
        f"{result['model']} (version {result['label_version']}) on {result['gold']}, {result['prompts']:,} prompts: "
        f"exact match {pct(result['exact_match'])}, token F1 {pct(result['token_f1'])}, _no_object precision "
        f"{pct(result['no_object_precision'])} recall {pct(result['no_object_recall'])}, "
        f"{result['unanswered']:,} unanswered; {result['tokens_per_1k_prompts']:,} tokens and "
        f"${result['usd_per_1k_prompts']:.4f} per 1,000 prompts"
        + "".join(f"; {note}" for note in result["fallbacks"]),
    )
    return 0


def handle_estimate(args: argparse.Namespace, engine: Engine, settings: object = None) -> int:
    from promptmill.labeling.contract import ContractError
    from promptmill.labeling.estimate import estimate
    from promptmill.labeling.pricing import PriceError

    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        return _fail(args, "estimate", exc, 2)
    try:
        result = estimate(engine, settings)
    except (ContractError, PriceError, ValueError) as exc:
        return _fail(args, "estimate", exc, 1)
    _print(
        args,
        result,
        f"{result['pending']} prompts pending for {result['model']} (version {result['label_version']}): "
        f"{result['requests']} requests, ~{result['input_tokens']} input + ~{result['output_tokens']} output tokens "
        f"({result['tokens_per_prompt']} per prompt), ~${result['cost_usd']:.4f} "
        f"(flex ${result['cost_usd_by_tier']['flex']:.4f}, batch ${result['cost_usd_by_tier']['batch']:.4f})",
    )
    return 0
