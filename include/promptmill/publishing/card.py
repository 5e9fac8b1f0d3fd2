"""README.md of a publication: a short dataset card (Hugging Face-style YAML metadata, fields, counts, how it was
made, the quality report).

Deterministic like the data files: it names the version but not the moment or the run (those are in the manifest).
"""

from __future__ import annotations

from typing import Any

from promptmill.publishing.report import report_lines

# The prompts are Discord messages: their authors' rights and Discord's terms apply, so no open licence is claimed.
LICENSE = "other"
LICENSE_NOTE = (
    "`other`: the prompts are Discord messages written by the channels' users; Discord's terms and their authors'"
    " rights apply to them, and the descriptions were written by a language model under its provider's terms."
    " Check both before redistributing or training on this dataset."
)

# the columns of train/test .jsonl and .parquet with their Hugging Face `datasets` dtypes (formats.parquet_schema)
FEATURES = [
    ("id", "string"),
    ("prompt", "string"),
    ("description", "string"),
    ("no_object", "bool"),
    ("split", "string"),
    ("channel_id", "string"),
    ("channel_name", "string"),
    ("username_hash", "string"),
    ("posted_at", "timestamp[us, tz=UTC]"),
    ("args", "string"),
    ("label_version", "string"),
]

_FIELDS = [
    ("id", "first 16 hex of SHA-256 of the prompt: stable across publications"),
    ("prompt", "the cleaned, deduplicated Stable Diffusion prompt"),
    ("description", "what the picture shows, written by the labeling model (null for `_no_object` rows)"),
    ("no_object", "true when the model found no distinguishable object (only with --include-no-object)"),
    ("split", "train or test (never changes once published, see below)"),
    ("channel_id, channel_name", "the Discord channel the prompt was posted in"),
    ("username_hash", "{username_hash}"),
    ("posted_at", "when the kept message was posted (UTC, ISO 8601)"),
    ("args", "the bot arguments of the generation (JSON object; JSON text in Parquet)"),
    ("label_version", "the label version (model + instructions) the description comes from"),
]

_FILES = [
    ("train_strings.txt, test_strings.txt", "`[BOS]<description> = <prompt><endoftext>` concatenated, no separator"),
    ("train_strings.csv, val_strings.csv", r"one column `text`: `<description></s><prompt><\|endoftext\|>`; "
     "`val_strings.csv` is the test split under the original script's name"),
    ("result.csv", "`prompt,image_description`, as the original labeling script wrote it"),
    ("train.jsonl, test.jsonl", "one JSON record per row, every field above"),
    ("train.parquet, test.parquet", "the same records, typed (zstd)"),
    ("manifest.json", "version, counts, settings, label versions, store watermark, the quality report, SHA-256 and"
                      " size of every file"),
]


def metadata_lines(manifest: dict[str, Any]) -> list[str]:
    """The YAML front matter the Hugging Face Hub reads: license, the Parquet files as the default config's
    splits, the features and the split sizes."""
    counts = manifest["counts"]
    size = next(label for limit, label in _SIZES if counts["total"] < limit)
    lines = [
        "---",
        f"license: {LICENSE}",
        "license_name: discord-messages",
        "language:",
        "- en",
        "task_categories:",
        "- text-generation",
        "size_categories:",
        f"- {size}",
        f'pretty_name: "promptmill prompt dataset {manifest["version"]}"',
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path: train.parquet",
        "  - split: test",
        "    path: test.parquet",
        "dataset_info:",
        "  features:",
    ]
    for name, dtype in FEATURES:
        lines += [f"  - name: {name}", f"    dtype: {dtype}" if dtype.isalnum() else f'    dtype: "{dtype}"']
    lines += ["  splits:"]
    for split in ("train", "test"):
        lines += [f"  - name: {split}", f"    num_examples: {counts[split]}"]
    lines.append("---")
    return lines


_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (float("inf"), "n>10M")]


def render_card(manifest: dict[str, Any]) -> str:
    counts = manifest["counts"]
    settings = manifest["settings"]
    labels = manifest["label_versions"]
    label_lines = [
        f"- `{lv['version']}`" + (f": model `{lv['model']}`, instructions SHA-256 `{lv['instructions_sha256'][:12]}`"
                                  if lv.get("model") else "")
        for lv in labels
    ]
    together = (
        "near-identical prompts (normalised indel similarity >= 0.9)"
        if settings["split_key"] == "prompt"
        else "near-identical prompts (normalised indel similarity >= 0.9) and rows sharing a normalised description"
    )
    clusters = counts.get("clusters") or {}
    leakage = counts.get("leakage") or {}
    lines = [
        *metadata_lines(manifest),
        "",
        f"# promptmill prompt dataset {manifest['version']}",
        "",
        "Stable Diffusion prompts collected from Discord bot channels, cleaned and deduplicated, each paired with a",
        "short description of the pictured object written by a language model.",
        "",
        "## Counts",
        "",
        "| split | rows | string-format rows |",
        "| --- | ---: | ---: |",
        f"| train | {counts['train']:,} | {counts['strings']['train']:,} |",
        f"| test | {counts['test']:,} | {counts['strings']['test']:,} |",
        f"| total | {counts['total']:,} | {counts['strings']['train'] + counts['strings']['test']:,} |",
        "",
        f"`_no_object` rows included: {counts['no_object']:,}"
        + ("" if settings["include_no_object"] else " (excluded by default)") + ".",
    ]
    excluded = counts.get("excluded_from_strings") or {}
    if excluded:
        detail = ", ".join(f"{reason} {n:,}" for reason, n in excluded.items())
        lines.append(f"Left out of the string formats only: {detail}.")
    lines += ["", "## Files", "", "| file | content |", "| --- | --- |"]
    lines += [f"| {name} | {text} |" for name, text in _FILES]
    lines += ["", "## Fields", "", "| field | meaning |", "| --- | --- |"]
    hashed = (
        "HMAC-SHA256 of the Discord username with the publisher's secret key (never the name itself)"
        if settings.get("username_hash") == "hmac-sha256"
        else "plain SHA-256 of the Discord username: the publisher set no key, so anyone with a list of names can "
             "tell whose it is"
    )
    lines += [f"| {name} | {text.format(username_hash=hashed)} |" for name, text in _FIELDS]
    lines += [
        "",
        "## How it was made",
        "",
        "Discord exports -> bot message parsing -> the original cleaning rules -> exact and near-duplicate removal",
        "-> one label per distinct prompt and label version -> this publication.",
        "",
        f"Split: {together} are on one side; a published row never changes side. A group of such rows with no",
        f"published row takes the side of a SHA-256 of its first row's key (test below {settings['test_ratio']}).",
        f"Held out of both sides (near-identical to published rows of both): {counts.get('held_out', 0):,}. "
        f"Clusters of near-identical prompts: {clusters.get('clusters', 0):,} ({clusters.get('rows', 0):,} rows, "
        f"{clusters.get('cross_user', 0):,} across users)"
        + (f"; one row kept per cluster ({counts.get('one_per_cluster_removed', 0):,} left out)"
           if settings.get("one_per_cluster") else "") + ".",
        f"Test rows with a near-identical train row: {leakage.get('test_rows_with_near_identical_train_row', 0):,} "
        f"({leakage.get('share', 0.0):.2%}, as the MinHash LSH finds them).",
        f"Rows are ordered by `id`. Usernames: {settings['username_hash']}.",
        "",
        "Label versions:",
        *label_lines,
        "",
        "Check a download against `manifest.json` (SHA-256 and size of every file).",
        "",
        "## License",
        "",
        LICENSE_NOTE,
        "",
    ]
    if manifest.get("quality"):
        lines += [*report_lines(manifest["quality"]), ""]
    return "\n".join(lines)
