"""One registry of models across sources: which spellings name which model, and what is known about it.

Pure: plain tables in, plain tables out (the store glue is `pipeline.aliases`). A *model* is Epoch's
unit (its 'Model' column: "Claude 3.5 Sonnet" covers the June and the October 2024 releases, which share
one training run); a *spelling* is a name as one source writes it (`claude-3-5-sonnet-20241022`,
`claude_3_5_sonnet_20241022`, `Claude 3.5 Sonnet (New)`).

How a spelling finds its model, in this order, and never by a guess:

1. the alias file (`data/raw/aliases.toml`): groups of spellings of one release, optionally naming the model;
2. the same key: lower case, an organisation prefix (`EleutherAI/`) and run settings (`_high`, `_32K`,
   `(Inspect)`) dropped, then every character that is not a letter or digit (`GPT-4 0314` = `gpt-4-0314`);
3. the same key once dates are dropped too (`gpt-4o-2024-08-06` -> GPT-4o): a release of the model, not
   the release itself, so it lends no release date.

A spelling whose key names two models is *ambiguous*; one that names none is *unmatched*: both are listed
with their candidates, and neither borrows anything.
"""

from __future__ import annotations

import functools
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.schema import InputError

# Epoch's grade of a compute estimate -> the factor either way scalegap reads it as (a bound where the
# source publishes none). Epoch describes Confident / Likely / Speculative as increasingly rough estimates;
# the factors 3 / 10 / 30 are this project's reading of those words, stated wherever a bound is used.
CONFIDENCE_FACTOR = {"confident": 3.0, "likely": 10.0, "speculative": 30.0}
# Epoch's 'Model accessibility' -> the registry's four groups.
ACCESS = (("open weights", "open weights"), ("hosted", "hosted"), ("unreleased", "unreleased"), ("api", "API"))
OPEN_WEIGHTS = "open weights"

_ORG_PREFIX = re.compile(r"^[a-z0-9][\w.-]*/")
# Run settings of one model (reasoning effort, thinking budget, harness, packaging, the base checkpoint of a
# model Epoch lists by its plain name): the same model and release.
_SETTING = re.compile(
    r"(?:\s*\((?:x?high|medium|low|minimal|inspect|elicited|retry \d+x|\d+k thinking|thinking[-_ ]\d+k)\)"
    r"|[_-](?:x?high|medium|low|minimal|inspect|elicited|hf|base)"
    r"|[_-]\d+k(?:[_-]thinking)?|[_-]thinking[_-]\d+k)$")
# A full date (2024-08-06, 20241022, (2024-05-13)); a bare 0314 is left alone: 'GPT-4 1106' is GPT-4 Turbo.
_DATE = re.compile(r"[-_ ]?\(?(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\)?(?=$|[-_ )(])")
_META = re.compile(r"^meta[-_ ](?=llama)")
_BETWEEN_DIGITS = re.compile(r"(?<=\d)[^a-z0-9]+(?=\d)")
_PUNCTUATION = re.compile(r"[^a-z0-9]")
_ANY_DATE = re.compile(r"((?:19|20)\d{2})[-_ ]?(0[1-9]|1[0-2])[-_ ]?(0[1-9]|[12]\d|3[01])(?!\d)")


def _stripped(name: str) -> str:
    return _stripped_text(str(name))


# Keys of one spelling are asked for several times in a row (its key, release key, lookup): a small cache
# serves those repeats without holding every spelling of a large source.
@functools.lru_cache(maxsize=1 << 16)
def _stripped_text(name: str) -> str:
    s = name.strip().lower().replace("+", " plus ")
    s = _ORG_PREFIX.sub("", s)
    s = _META.sub("", s)  # Meta-Llama-3.1-70B is Llama 3.1-70B
    s = _ANY_DATE.sub(r"\1\2\3", s)  # one form for a date: 2024-12-17, 2024_12_17 and 20241217 alike
    while True:
        shorter = _SETTING.sub("", s).strip()
        if shorter == s:
            return s
        s = shorter


def _compact(s: str) -> str:
    # a separator between two digits is a decimal point or a version dot ('3.5', '3_5', '3-5' alike), kept as
    # 'p' so that OPT-1.3B and OPT-13B stay apart; every other character that is not a letter or digit goes
    s = _BETWEEN_DIGITS.sub("p", s)
    return _PUNCTUATION.sub("", s)


def key(name: str) -> str:
    """The spelling with case, organisation prefix, run settings and punctuation dropped."""
    return _key_text(str(name))


@functools.lru_cache(maxsize=1 << 16)
def _key_text(name: str) -> str:
    return _compact(_stripped_text(name))


def strict_key(name: str) -> str:
    """Case, punctuation and date format only: how Epoch's own names of one model can differ."""
    s = str(name).strip().lower().replace("+", " plus ")
    return _compact(_ANY_DATE.sub(r"\1\2\3", s))


def base_key(name: str) -> str:
    """`key` with full dates dropped as well (2024-08-06, 20241022): any release of the model."""
    return _compact(_DATE.sub("", _stripped(name)))


def access_group(text) -> str | None:
    """Epoch's accessibility wording -> open weights | API | hosted | unreleased (None when not given)."""
    if not isinstance(text, str) or not text.strip():
        return None
    low = text.lower()
    return next((group for word, group in ACCESS if word in low), None)


def compute_bounds(flop, lo, hi, confidence) -> tuple[float, float, str | None]:
    """(lower, upper, how): the published bounds where given, else the confidence grade's factor."""
    if flop is None or not np.isfinite(flop) or flop <= 0:
        return math.nan, math.nan, None
    lo = float(lo) if lo is not None and np.isfinite(lo) and lo > 0 else math.nan
    hi = float(hi) if hi is not None and np.isfinite(hi) and hi > 0 else math.nan
    if np.isfinite(lo) or np.isfinite(hi):
        return lo, hi, "published bounds"
    factor = CONFIDENCE_FACTOR.get(str(confidence).strip().lower()) if isinstance(confidence, str) else None
    if factor is None:
        return math.nan, math.nan, None
    return flop / factor, flop * factor, f"Epoch grade {confidence}: read as a factor {factor:g} either way"


# ------------------------------------------------------------------------------ the alias file
@dataclass(frozen=True)
class AliasGroup:
    names: tuple[str, ...]       # spellings of one release
    model: str | None = None     # the model they are a release of (optional)
    line: str = ""


@dataclass(frozen=True)
class AliasFile:
    groups: tuple[AliasGroup, ...] = ()
    not_models: frozenset[str] = frozenset()    # keys of names that are no model (METR's human baseline)
    paths: tuple[str, ...] = ()

    def merged(self, other: AliasFile) -> AliasFile:
        return AliasFile(self.groups + other.groups, self.not_models | other.not_models, self.paths + other.paths)


def load_alias_file(path: str | Path) -> AliasFile:
    """Read an alias file: `[[same]] names = [...]` (optionally `model = "..."`) and `not_models = [...]`."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(str(path), f"not a readable TOML alias file ({exc})",
                         'write groups as [[same]] names = ["a", "b"]') from None
    unknown = sorted(set(doc) - {"same", "not_models"})
    if unknown:
        raise InputError(str(path), f"unknown table or key {unknown[0]!r}",
                         "use [[same]] groups (names, model) and not_models = [...]")
    groups = []
    for i, entry in enumerate(doc.get("same", []), start=1):
        where = f"same #{i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("names"), list) or \
                not all(isinstance(n, str) and n.strip() for n in entry["names"]):
            raise InputError(str(path), f"{where}: 'names' must be a list of spellings", 'names = ["a", "b"]',
                             column="names")
        extra = sorted(set(entry) - {"names", "model"})
        if extra:
            raise InputError(str(path), f"{where}: unknown key {extra[0]!r}", "give names and, optionally, model")
        model = entry.get("model")
        if model is not None and not (isinstance(model, str) and model.strip()):
            raise InputError(str(path), f"{where}: 'model' must be a name", 'model = "Claude 3.5 Sonnet"',
                             column="model")
        names = tuple(n.strip() for n in entry["names"])
        if len(names) < 2 and model is None:
            raise InputError(str(path), f"{where}: one spelling and no model says nothing",
                             "list two or more spellings of one release, or name its model")
        groups.append(AliasGroup(names, model.strip() if model else None, where))
    not_models = doc.get("not_models", [])
    if not isinstance(not_models, list) or not all(isinstance(n, str) for n in not_models):
        raise InputError(str(path), "'not_models' must be a list of names", 'not_models = ["human"]')
    return AliasFile(tuple(groups), frozenset(key(n) for n in not_models), (str(path),))


# ------------------------------------------------------------------------------ building the registry
FACT_COLUMNS = ("origin", "name", "version_name", "display_name", "organization", "country", "release_date",
                "train_flop", "train_flop_lo", "train_flop_hi", "confidence", "accessibility", "params")
NAME_COLUMNS = ("source", "name", "release_date", "organization", "train_flop", "train_flop_note",
                "n_observations", "creates")


@dataclass
class Registry:
    models: pd.DataFrame                  # one row per model
    aliases: pd.DataFrame                 # one row per (source, spelling): matched, ambiguous or unmatched
    notes: list[str] = field(default_factory=list)


def origin_rank(origin: str) -> str:
    """Newest first: the date in a source version ('notable_ai_models_2026-02' -> '2026-02')."""
    found = re.findall(r"(\d{4})-(\d{2})(?:-(\d{2}))?", str(origin))
    if not found:
        return "0000-00-00"
    y, m, d = found[-1]
    return f"{y}-{m}-{d or '00'}"


class _Entities:
    """Models and the spellings that name them (canonical names, release ids, display names)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}                      # exact spelling -> model
        self.by_key: dict[str, set[str]] = {}
        self.by_base: dict[str, set[str]] = {}
        self.version_date: dict[str, pd.Timestamp] = {}      # key of a release id -> its date
        self.models: list[str] = []
        self.created: set[str] = set()

    def add_model(self, model: str) -> None:
        if model not in self.names.values() and model not in self.models:
            self.models.append(model)
        self.add_name(model, model)

    def add_name(self, spelling, model: str, date=None) -> None:
        if not isinstance(spelling, str) or not spelling.strip():
            return
        self.names.setdefault(spelling, model)
        k, b = key(spelling), base_key(spelling)
        if k:
            self.by_key.setdefault(k, set()).add(model)
            if date is not None and pd.notna(date):
                self.version_date.setdefault(k, pd.Timestamp(date))
        if b:
            self.by_base.setdefault(b, set()).add(model)

    def lookup(self, spelling: str, k: str | None = None) -> tuple[str, set[str]]:
        """(how, candidate models) for a spelling, by exact name, key (`k`, when known), then key without dates."""
        if spelling in self.names:
            return "same name", {self.names[spelling]}
        k = key(spelling) if k is None else k
        if k in self.by_key:
            return "same key", self.by_key[k]
        b = base_key(spelling)
        if b and b in self.by_base:
            return "same key without dates", self.by_base[b]
        return "", set()


class Builder:
    """The registry built so that a source of millions of spellings is never held whole: the models and the
    alias-file groups come from the facts and Epoch's own spellings (small); every other spelling is matched a
    piece at a time (`match`), into a table where the store's glue (`pipeline.aliases.finish_sql`) gives each
    release its date and each spelling one row; the models' fields then come from the matched rows alone
    (`models`).

    `facts`: FACT_COLUMNS, one row per model (or per release, `version_name`) as an origin publishes it.
    `creating`: NAME_COLUMNS rows of Epoch's own spellings, which found a model when none matches (a release
    Epoch evaluates whose model table is absent from the store). `own_dates`: release dates published for
    spellings outside the observations (METR's release_dates tables)."""

    def __init__(self, facts: pd.DataFrame, creating: pd.DataFrame | None = None,
                 alias_file: AliasFile | None = None, own_dates: dict[str, pd.Timestamp] | None = None) -> None:
        self.alias_file = alias_file or AliasFile()
        self.own_dates = own_dates or {}
        facts = _frame(facts, FACT_COLUMNS)
        for column in ("name", "version_name", "display_name"):  # Epoch's cells carry stray newlines and spaces
            facts[column] = facts[column].where(facts[column].isna(), facts[column].astype(str).str.strip())
        facts = facts[facts["name"].notna() & (facts["name"] != "")].copy()
        facts["rank"] = facts["origin"].map(origin_rank)
        facts = facts.sort_values(["rank", "origin", "name"], ascending=[False, True, True], kind="stable")
        ents = _Entities()
        canonical, first_dates = _merge_epoch_names(facts)
        facts["name"] = facts["name"].map(canonical)
        for model in sorted(set(canonical.values())):
            ents.add_model(model)
        for spelling, model in sorted(canonical.items()):
            if spelling != model:  # a finer Epoch name of the model ('GPT-4 (Mar 2023)'): one of its releases
                ents.add_name(spelling, model, first_dates.get(spelling))
        for row in facts.itertuples(index=False):
            ents.add_name(row.version_name, row.name, row.release_date)
            ents.add_name(row.display_name, row.name)
        creating = _frame(creating, NAME_COLUMNS).sort_values(["source", "name"], kind="stable")
        for row in creating.itertuples(index=False):
            if not ents.lookup(str(row.name))[1] and key(row.name) not in self.alias_file.not_models:
                ents.add_model(str(row.name))
                ents.created.add(str(row.name))
                if pd.notna(row.release_date):
                    ents.version_date.setdefault(key(row.name), pd.Timestamp(row.release_date))
        self.notes: list[str] = []
        self.groups = _resolve_groups(self.alias_file, ents, self.notes)
        self.ents, self.facts = ents, facts
        # the release dates known before any source's spellings: Epoch's, then those published beside them
        self.dates = _release_dates(ents, self.groups, self.own_dates)

    def match(self, names: pd.DataFrame) -> pd.DataFrame:
        """One ROW_COLUMNS row per spelling of `names` (NAME_COLUMNS, and `_ordinal`: which of two rows of one
        spelling counts, the lower). Its release date is its own, else one known before the sources'."""
        ordinal = names["_ordinal"].tolist() if "_ordinal" in names else [0] * len(names)
        names = _frame(names, NAME_COLUMNS)
        # plain values, None where missing: a source may have millions of spellings, each looked at once
        plain = [names[c].astype(object).where(names[c].notna(), None).tolist() for c in NAME_COLUMNS]
        rows = []
        for *values, position in zip(*plain, ordinal, strict=True):
            source, name, date, org, flop, note, n, creates = values
            spelling = str(name)
            out = _match(source, spelling, key(spelling), date, n, self.ents, self.groups, self.alias_file,
                         self.dates, self.own_dates)
            rows.append((*map(out.__getitem__, ALIAS_COLUMNS), bool(creates) if creates is not None else False,
                         int(position), date, org, flop, note, True))
        return _rows_frame(rows)

    def own_rows(self) -> pd.DataFrame:
        """The canonical spellings themselves (the registry's own rows), so every model lists its names."""
        rows = []
        for spelling, model in self.ents.names.items():
            release = _release_key(spelling, self.groups)
            named = spelling != model  # a release or display name takes its release's date; the model's own does not
            rows.append(("registry", spelling, model, "matched",
                         "canonical" if not named else "release or display name of the model", key(spelling),
                         release, self.dates.get(release) if named else None, None, 0, None, None,
                         False, LAST, None, None, None, None, named))
        return _rows_frame(rows)

    def models(self, matched: pd.DataFrame) -> pd.DataFrame:
        """One row per model from the finished rows whose status is 'matched' (`aliases.finish_sql`)."""
        return _models(self.ents, self.facts, matched)


ALIAS_COLUMNS = ("source", "alias", "model", "status", "method", "key", "release_key", "release_date", "candidates",
                 "n_observations", "filled", "note")
# A matched row also carries what `aliases.finish_sql` and `Builder.models` need from its source row: which of two rows
# of one spelling counts (`_ordinal`), the order in which sources date a release (`_creates` first, then source
# and spelling), and the source's own date, organisation and compute.
ROW_COLUMNS = ALIAS_COLUMNS + ("_creates", "_ordinal", "_row_date", "_organization", "_train_flop",
                               "_train_flop_note", "_takes_date")
LAST = 1 << 40  # the registry's own rows yield to a source's row of the same (source, spelling)


def _rows_frame(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    for column in ("release_date", "_row_date"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


MODEL_COLUMNS = ("model", "organization", "country", "release_date", "train_flop", "train_flop_lo", "train_flop_hi",
                 "confidence", "bounds_basis", "accessibility", "accessibility_detail", "params", "n_aliases",
                 "field_sources", "sources")


def names_frame(names: pd.DataFrame | None) -> pd.DataFrame:
    """`names` with every NAME_COLUMNS column, typed (a missing one empty)."""
    return _frame(names, NAME_COLUMNS)


def _frame(frame: pd.DataFrame | None, columns) -> pd.DataFrame:
    frame = pd.DataFrame(columns=list(columns)) if frame is None else frame.copy()
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    frame = frame[list(columns)]
    if "release_date" in frame:
        frame["release_date"] = pd.to_datetime(frame["release_date"], errors="coerce")
    for column in ("train_flop", "train_flop_lo", "train_flop_hi", "params", "n_observations"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _merge_epoch_names(facts: pd.DataFrame) -> tuple[dict[str, str], dict[str, pd.Timestamp]]:
    """Epoch's names of one model across its snapshots -> one canonical name. Names are one model when their
    strict keys are equal or when Epoch files one release under both (the Dec 2025 ECI files gpt-4-0314 under
    'GPT-4', the Mar 2026 one under 'GPT-4 (Mar 2023)'). The canonical name is the shortest (the model rather
    than one release of it), the newest snapshot's on a tie. Also returns each name's own first date."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    # Epoch's own spellings differ only in punctuation or date format when they are one model: run settings
    # are not dropped here (MiniMax-M1-40k and -80k are two models), nor provider prefixes
    by_key: dict[str, str] = {}
    for name in facts["name"]:
        find(name)
        k = strict_key(name)
        if k:
            union(by_key.setdefault(k, name), name)
    releases = facts[facts["version_name"].notna()]
    for release, name in zip(releases["version_name"], releases["name"], strict=True):
        k = strict_key(release)
        if k:
            union(by_key.setdefault(k, name), name)
    order = {name: i for i, name in enumerate(dict.fromkeys(facts["name"]))}  # newest snapshot first
    groups: dict[str, list[str]] = {}
    for name in parent:
        groups.setdefault(find(name), []).append(name)
    canonical = {}
    for members in groups.values():
        best = min(members, key=lambda n: (len(n), order.get(n, 0), n))
        canonical.update(dict.fromkeys(members, best))
    model_level = facts[facts["version_name"].isna() & facts["release_date"].notna()]
    first_dates = model_level.groupby("name")["release_date"].min().to_dict()
    return canonical, first_dates


def _resolve_groups(alias_file: AliasFile, ents: _Entities, notes: list[str]) -> dict[str, tuple[str | None, str, str]]:
    """key of a spelling in the alias file -> (its model or None, how, the release's id)."""
    out: dict[str, tuple[str | None, str, str]] = {}
    for group in alias_file.groups:
        found: set[str] = set()
        for name in group.names:
            how, candidates = ents.lookup(name)
            if how in ("same name", "same key") or len(candidates) == 1:
                found |= candidates
        if group.model:
            _, candidates = ents.lookup(group.model)
            if len(candidates) > 1:
                notes.append(f"alias file {group.line}: model {group.model!r} names {len(candidates)} models")
            model = next(iter(candidates)) if len(candidates) == 1 else group.model
            if not candidates:
                ents.add_model(model)
            found.add(model)
        release = "release:" + key(group.names[0])
        if len(found) > 1:
            notes.append(f"alias file {group.line}: its spellings name several models ({', '.join(sorted(found))})")
            result = (None, "alias file names several models: " + ", ".join(sorted(found)), release)
        elif found:
            result = (next(iter(found)), "alias file", release)
        else:
            result = (None, "alias file group with no model in the registry", release)
        for name in group.names:
            out.setdefault(key(name), result)
    return out


def _release_key(spelling: str, groups: dict, k: str | None = None) -> str:
    k = key(spelling) if k is None else k
    return groups[k][2] if k in groups else "release:" + k


def _release_dates(ents: _Entities, groups: dict, own_dates: dict) -> dict[str, pd.Timestamp]:
    """The date of each release (spellings of one key or one alias-file group) known before the sources' rows:
    Epoch's release dates first, then METR's release-date tables. A date a source gives beside its own rows comes
    after these (`aliases.finish_sql`)."""
    dates: dict[str, pd.Timestamp] = {}
    for spelling in ents.names:
        k = key(spelling)
        if k in ents.version_date:
            dates.setdefault(_release_key(spelling, groups), ents.version_date[k])
    for spelling, date in sorted(own_dates.items()):
        if date is not None and pd.notna(date):
            dates.setdefault(_release_key(spelling, groups), pd.Timestamp(date))
    return dates


def _match(source: str, spelling: str, k: str, date, n_observations, ents: _Entities, groups,
           alias_file: AliasFile, dates: dict, own_dates: dict) -> dict:
    """A spelling's registry row (ALIAS_COLUMNS); `date` and `n_observations` are its source's (None if missing)."""
    release = _release_key(spelling, groups, k)
    own = date if date is not None else own_dates.get(spelling)
    own = pd.Timestamp(own) if own is not None and pd.notna(own) else None
    out = {"source": source, "alias": spelling, "model": None, "status": "unmatched", "method": None,
           "key": k, "release_key": release, "release_date": own if own is not None else dates.get(release),
           "candidates": None, "n_observations": int(n_observations) if n_observations is not None else 0,
           "filled": None, "note": None}
    if k in alias_file.not_models:
        return {**out, "status": "not a model", "method": "alias file (not_models)"}
    if k in groups:
        model, how, _ = groups[k]
        if model is None:
            return {**out, "status": "ambiguous" if "several" in how else "unmatched", "method": how}
        return {**out, "model": model, "status": "matched", "method": how}
    how, candidates = ents.lookup(spelling, k)
    if len(candidates) == 1:
        model = next(iter(candidates))
        if spelling in ents.created:
            how = "Epoch name (no model table entry)"
        return {**out, "model": model, "status": "matched", "method": how}
    if len(candidates) > 1:
        return {**out, "status": "ambiguous", "method": how, "candidates": json.dumps(sorted(candidates))}
    return out


def _models(ents: _Entities, facts: pd.DataFrame, aliases: pd.DataFrame) -> pd.DataFrame:
    """One row per model: each field from the newest Epoch fact that gives it, else from what the sources
    themselves publish beside their rows; `field_sources` says which origin gave which field. `aliases`: the
    matched rows (ROW_COLUMNS), the registry's own included."""
    matched = aliases[(aliases["status"] == "matched") & (aliases["source"] != "registry")]
    seen = pd.DataFrame({
        "origin": matched["source"], "name": matched["alias"], "model": matched["model"],
        "release_date": matched["_row_date"], "organization": matched["_organization"],
        "train_flop": pd.to_numeric(matched["_train_flop"]), "train_flop_note": matched["_train_flop_note"]})
    seen = seen.sort_values(["model", "origin", "name"], kind="stable")
    models = pd.DataFrame({"model": sorted(set(ents.models) | set(matched["model"].dropna()))})
    facts = facts.rename(columns={"name": "model"})
    out = models.copy()
    sources_of: dict[str, dict[str, str]] = {m: {} for m in models["model"]}

    def take(frame: pd.DataFrame, column: str, target: str | None = None, label=None) -> None:
        target = target or column
        values = frame[frame[column].notna()]
        if values[column].dtype == object:
            values = values[values[column].astype(str).str.strip() != ""]
        first = values.drop_duplicates("model")
        if target not in out:
            out[target] = None
        have = out.set_index("model")[target]
        new = first.set_index("model")[column]
        new = new[new.index.isin(have[have.isna()].index)]
        out[target] = have.fillna(new).reindex(out["model"]).to_numpy() if len(new) else have.to_numpy()
        for model, origin in zip(first["model"], first["origin"], strict=True):
            if model in new.index:
                sources_of[model][target] = label(origin) if label else origin

    for column in ("organization", "country", "accessibility", "params"):
        take(facts, column)
    take(seen, "organization")
    # release date: the model's own first date (Epoch's model tables), else its first release, else the
    # earliest date a source gives
    model_level = facts[facts["version_name"].isna()].sort_values("release_date", kind="stable")
    take(model_level, "release_date")
    take(facts.sort_values("release_date", kind="stable"), "release_date", label=lambda o: f"{o} (first release)")
    take(seen.sort_values("release_date", kind="stable"), "release_date", label=lambda o: f"{o} (earliest date given)")
    # compute: the newest Epoch model-table estimate (with its bounds and grade), then the ECI file's, else a
    # figure a source published itself
    # Epoch's model tables (its compute database, with bounds where published) before the ECI file's copy
    with_flop = facts[facts["train_flop"].notna() & (facts["train_flop"] > 0)]
    with_flop = with_flop.assign(_release=with_flop["version_name"].notna()).sort_values(
        ["_release", "rank"], ascending=[True, False], kind="stable").drop_duplicates("model")
    published = seen[seen["train_flop"].notna() & (seen["train_flop"] > 0)
                     & ~seen["train_flop_note"].fillna("").str.startswith("joined")].drop_duplicates("model")
    published = published.assign(confidence=published["train_flop_note"].map(_grade), train_flop_lo=np.nan,
                                 train_flop_hi=np.nan)
    flop = pd.concat([with_flop, published[~published["model"].isin(with_flop["model"])]], ignore_index=True)
    flop = flop.set_index("model").reindex(out["model"])
    bounds = [compute_bounds(f, lo, hi, c) for f, lo, hi, c in
              zip(flop["train_flop"], flop["train_flop_lo"], flop["train_flop_hi"], flop["confidence"], strict=True)]
    out["train_flop"] = flop["train_flop"].to_numpy(dtype=float)
    out["train_flop_lo"] = [b[0] for b in bounds]
    out["train_flop_hi"] = [b[1] for b in bounds]
    out["bounds_basis"] = [b[2] for b in bounds]
    out["confidence"] = [c if isinstance(c, str) else None for c in flop["confidence"]]
    for model, origin, value in zip(out["model"], flop["origin"], out["train_flop"], strict=True):
        if isinstance(origin, str) and np.isfinite(value):
            sources_of[model]["train_flop"] = origin
    out["accessibility_detail"] = out.pop("accessibility")
    out["accessibility"] = out["accessibility_detail"].map(access_group)
    spellings = aliases[aliases["status"] == "matched"].groupby("model")["alias"].nunique()
    out["n_aliases"] = out["model"].map(spellings).fillna(0).astype(int)
    out["field_sources"] = [json.dumps(sources_of[m], sort_keys=True) for m in out["model"]]
    origins = pd.concat([facts[["model", "origin"]], seen[["model", "origin"]]]).dropna().drop_duplicates()
    listed = origins.sort_values(["model", "origin"]).groupby("model")["origin"].agg(list)
    out["sources"] = [json.dumps(listed.get(m, [])) for m in out["model"]]
    return out[list(MODEL_COLUMNS)]


def _grade(note) -> str | None:
    found = re.search(r"Confidence: (\w+)", str(note)) if isinstance(note, str) else None
    return found.group(1) if found else None
