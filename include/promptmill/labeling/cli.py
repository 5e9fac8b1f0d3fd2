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


def add_commands(subparsers: argparse._SubParsersAction, common_parent: argparse.ArgumentParser | None = None) -> None:
    parents = [common_parent] if common_parent is not None else []
    has_json = common_parent is not None and "--json" in common_parent._option_string_actions

    label = subparsers.add_parser("label", parents=parents, help="label pending prompts through an OpenAI-compatible API")
    _add_run_options(label, has_json)
    label.add_argument("--limit", type=int, help="label at most N prompts")
    label.add_argument("--max-usd", type=float, help="stop taking new requests once this run spent this much")
    label.add_argument("--concurrency", type=int, help="requests in flight at once")
    label.add_argument("--mode", choices=LABEL_MODES, help="sync (Chat Completions) or batch (Batch API, half price)")
    label.add_argument("--service-tier", choices=SERVICE_TIERS, help="e.g. flex (half price, slower) in sync mode")
    label.add_argument("--base-url", help="OpenAI-compatible server (default: OPENAI_BASE_URL or api.openai.com)")
    label.add_argument("--price-input", type=float, metavar="USD",
                       help="the model's input price per 1M tokens (default: the price table; a model it does not "
                            "know costs $0, e.g. a local one)")
    label.add_argument("--price-output", type=float, metavar="USD", help="the model's output price per 1M tokens")
    label.add_argument("--retry-failed", action="store_true",
                       help="send the prompts labeled `failed` (for the current label version) again, from scratch")
    label.set_defaults(handler=handle_label)

    evaluate = subparsers.add_parser(
        "evaluate-labels", parents=parents, help="score the labeling settings on a gold set before paying for the store",
        description="Label the prompts of a gold set (CSV or TSV with 'prompt' and 'description' columns) with the "
                    "current or given settings, without touching the store's prompts, and report the agreement with "
                    "the gold descriptions, tokens and cost per 1,000 prompts. The result is stored per label "
                    "version and shown on the dataset page.",
    )
    _add_run_options(evaluate, has_json)
    evaluate.add_argument("--gold", type=Path, required=True, metavar="FILE", help="the gold set (CSV or TSV)")
    evaluate.add_argument("--limit", type=int, help="evaluate on the first N pairs only")
    evaluate.add_argument("--concurrency", type=int, help="requests in flight at once")
    evaluate.add_argument("--base-url", help="OpenAI-compatible server (default: OPENAI_BASE_URL or api.openai.com)")
    evaluate.add_argument("--price-input", type=float, metavar="USD", help="the model's input price per 1M tokens")
    evaluate.add_argument("--price-output", type=float, metavar="USD", help="the model's output price per 1M tokens")
    evaluate.set_defaults(handler=handle_evaluate)

    est = subparsers.add_parser("estimate", parents=parents, help="pending count and estimated tokens and cost")
    _add_run_options(est, has_json)
    est.add_argument("--limit", type=int, help="estimate for at most N prompts")
    est.add_argument("--mode", choices=LABEL_MODES)
    est.add_argument("--service-tier", choices=SERVICE_TIERS)
    est.set_defaults(handler=handle_estimate)


def _add_run_options(parser: argparse.ArgumentParser, has_json: bool) -> None:
    parser.add_argument("--model", help="model name (part of the label version)")
    parser.add_argument("--pack-size", type=int, help="prompts per request (default 25)")
    if not has_json:
        parser.add_argument("--json", action="store_true", help="print one JSON object")


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
    from promptmill.progress import Progress

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

        def progress(p: Progress) -> None:
            if not getattr(args, "json", False):
                print(p.line(), file=sys.stderr, flush=True)

        summary = label_pending(engine, settings, client_config, progress=progress)
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
