"""The V3 model catalogue (the legacy API documents none): the ``model`` and
``clothes`` IDs a job needs, and the check of a batch against it before
anything is paid for. Two pages list models: ``/api/odin/v3/model`` (with
their clothes, documented up to 1.4.x) and ``/api/odin/v3/dropdown/models``
(today's ``{id, label, avatarType}``, no clothes). Either may be missing or
change shape; the check only catches typos, so it never stops a valid batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ._errors import InvalidJob, ServiceError
from ._jobs import Job


@dataclass(frozen=True)
class Clothes:
    """Clothes a model can wear: its ID for a job's ``clothes``, and its
    names by language (``"ko"``, ``"en"``)."""

    id: str
    names: Dict[str, str]


@dataclass(frozen=True)
class Model:
    """An AI model: its ID for a job's ``model``, its names by language
    (``"ko"``, ``"en"``; a page that gives one plain label: ``"label"``),
    and the clothes it can wear (``None`` when the page does not say)."""

    id: str
    names: Dict[str, str]
    clothes: Optional[Tuple[Clothes, ...]]


def parse_catalogue(body: Any) -> List[Model]:
    """The models of a catalogue answer: a list of models, bare, under
    ``models``, or in the usual ``{"success": true, "data": ...}`` envelope."""
    data = body.get("data", body) if isinstance(body, Mapping) else body
    models = data.get("models") if isinstance(data, Mapping) else data
    if not isinstance(models, list):
        raise ServiceError("the model catalogue's answer holds no list of models")
    result = []
    for model in models:
        if _has_id(model):  # one odd entry does not hide the others
            listed, clothes = model.get("clothes"), None
            if isinstance(listed, list):
                clothes = tuple(Clothes(item["id"], _names(item)) for item in listed if _has_id(item))
            result.append(Model(model["id"], _names(model), clothes))
    return result


def _has_id(entry: Any) -> bool:
    return isinstance(entry, Mapping) and isinstance(entry.get("id"), str)


def _names(entry: Mapping[str, Any]) -> Dict[str, str]:
    label = entry.get("label")
    if isinstance(label, str) and label.strip():
        return {"label": label.strip()}
    if not isinstance(label, Mapping):
        return {}
    return {str(language): str(name) for language, name in label.items() if isinstance(name, (str, int, float))}


def check_jobs_against(jobs: Sequence[Job], models: Sequence[Model]) -> None:
    """Every job's ``model`` must be in the catalogue, and its ``clothes``
    among that model's where the catalogue lists them; :class:`InvalidJob`
    suggests the nearest ID."""
    by_id = {model.id: model for model in models}
    for job in jobs:
        model = by_id.get(job.body["model"].strip())
        if model is None:
            raise InvalidJob(_unknown(job.body["model"], list(by_id), "model"), position=job.position, field="model")
        clothes = [item.id for item in model.clothes or ()]
        if model.clothes is not None and job.body["clothes"].strip() not in clothes:
            raise InvalidJob(
                _unknown(job.body["clothes"], clothes, f"clothes of model {model.id}"),
                position=job.position,
                field="clothes",
            )


def _unknown(value: str, known: List[str], what: str) -> str:
    import difflib  # only for a mistake: not at every start-up

    close = difflib.get_close_matches(value.strip(), known, n=1, cutoff=0.5)
    if close:
        hint = f"did you mean {close[0]!r}?"
    else:
        shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
        hint = f"known: {shown}" if known else "the catalogue lists none"
    return (
        f"{value!r} is not in the service's model catalogue as one of the {what} ({hint}); "
        "see `aistudios-chromakey models`"
    )
