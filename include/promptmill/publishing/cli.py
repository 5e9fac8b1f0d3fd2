"""``promptmill publish``; the main cli.py calls :func:`add_commands` and then ``args.handler(args, engine, settings)``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from promptmill.choices import SPLIT_KEYS
from promptmill.publishing.errors import PublishError
from promptmill.publishing.settings import PublishSettings

if TYPE_CHECKING:
    from promptmill.publishing.publish import PublishResult


def add_commands(subparsers: argparse._SubParsersAction, common_parent: argparse.ArgumentParser | None = None) -> None:
    parents = [common_parent] if common_parent is not None else []
    parser = subparsers.add_parser(
        "publish",
        parents=parents,
        help="publish the labeled prompts as versioned train/test files",
        description="Write the kept, labeled prompts as a new versioned folder (original and modern formats, "
        "JSONL, Parquet, manifest, dataset card) under the destination and point LATEST at it. A row's split "
        "never changes; near-identical prompts stay on one side (a new row tied to both is held out); when "
        "nothing changed since the last publication no new version is made.",
        epilog="examples:\n  promptmill publish\n  promptmill publish --out s3://my-bucket/prompts --test-ratio 0.1",
    )
    parser.add_argument("--out", metavar="URI", help=PublishSettings.option_help(
        "out_uri", "destination root: a path, file://, memory://, s3://, ...", default="<data folder>/published"))
    parser.add_argument("--test-ratio", type=float, metavar="R", help=PublishSettings.option_help(
        "test_ratio", "share of rows in the test split"))
    parser.add_argument("--split-key", choices=SPLIT_KEYS, help=PublishSettings.option_help(
        "split_key", "prompt: near-identical prompts stay on one side; description: rows sharing a description too"))
    parser.add_argument("--include-no-object", action=argparse.BooleanOptionalAction, default=None,
                        help=PublishSettings.option_help(
                            "include_no_object", "also publish the prompts labeled _no_object (nothing concrete "
                            "to describe)"))
    parser.add_argument("--one-per-cluster", action=argparse.BooleanOptionalAction, default=None,
                        help=PublishSettings.option_help(
                            "one_per_cluster", "keep one row (the earliest posted) per cluster of near-identical "
                            "prompts"))
    parser.add_argument("--retention", type=int, metavar="N", help=PublishSettings.option_help(
        "retention", "keep the N newest publications (0 = all)"))
    parser.add_argument("--label-version", metavar="VERSION", help=PublishSettings.option_help(
        "label_version", "publish this label version", default="the current one"))
    if common_parent is None or "--json" not in common_parent._option_string_actions:
        parser.add_argument("--json", action="store_true",
                            help="print the result as one JSON object on one line (default: text)")
    parser.set_defaults(handler=handle_publish)


def settings_from_args(args: argparse.Namespace, data_dir: Any = None) -> PublishSettings:
    return PublishSettings.from_env(
        data_dir=data_dir,
        out_uri=getattr(args, "out", None),
        test_ratio=getattr(args, "test_ratio", None),
        split_key=getattr(args, "split_key", None),
        include_no_object=getattr(args, "include_no_object", None),
        one_per_cluster=getattr(args, "one_per_cluster", None),
        retention=getattr(args, "retention", None),
        label_version=getattr(args, "label_version", None),
    )


def describe(result: PublishResult) -> str:
    counts = result.counts
    if result.status == "empty":
        return f"nothing to publish: no labeled prompt of label version {result.label_version}"
    head = "unchanged" if result.unchanged else "published"
    lines = [
        f"{head}: {result.version}",
        f"rows: {counts.get('train', 0):,} train, {counts.get('test', 0):,} test, {counts.get('total', 0):,} total"
        + (f" ({counts['no_object']:,} _no_object)" if counts.get("no_object") else ""),
        f"path: {result.uri}",
    ]
    if counts.get("held_out"):
        lines.append(f"held out: {counts['held_out']:,} (near-identical to published rows of both sides)")
    if counts.get("one_per_cluster_removed"):
        lines.append(f"left out by --one-per-cluster: {counts['one_per_cluster_removed']:,}")
    if result.removed:
        lines.append(f"removed by retention: {', '.join(result.removed)}")
    return "\n".join(lines)


def labeled_versions_hint(engine: Engine, result: PublishResult) -> str:
    """For "nothing to publish": the label versions that do have labels (e.g. a run with another --model), and how
    to publish them; empty when there are none."""
    import sqlalchemy as sa

    from promptmill.labeling.tables import label_versions, labels

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(labels.c.version, label_versions.c.model, sa.func.count())
            .join(label_versions, label_versions.c.version == labels.c.version, isouter=True)
            .where(labels.c.status == "ok", labels.c.version != result.label_version)
            .group_by(labels.c.version, label_versions.c.model)
            .order_by(sa.func.count().desc())
        ).all()
    if not rows:
        return ""
    version, model, count = rows[0]
    return (f"labels exist for label version {version}" + (f" (model {model})" if model else "") + f": {count:,}; "
            "publish them with PROMPTMILL_LABEL_MODEL set to the model they were labeled with (as for "
            f"`promptmill label`), or --label-version {version}")


def handle_publish(args: argparse.Namespace, engine: Engine, settings: Any = None) -> int:
    try:
        publish_settings = settings_from_args(args, data_dir=getattr(settings, "data_dir", None))
    except ValueError as exc:  # a bad option or PROMPTMILL_PUBLISH_* value: a usage error
        print(f"promptmill: error: {exc}", file=sys.stderr)
        return 2
    try:
        # Imported here: the writers (pandas, pyarrow) would add half a second to every other command.
        from promptmill.publishing.publish import publish

        result = publish(engine, publish_settings)
    except PublishError as exc:
        print(f"promptmill: error: {exc}", file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"promptmill: warning: {warning}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(result.as_dict(), default=str))
    else:
        print(describe(result))
    if result.status == "empty" and (hint := labeled_versions_hint(engine, result)):
        print(f"promptmill publish: {hint}", file=sys.stderr)
    return 0
