"""The V3 model catalogue (``GET /api/odin/v3/model``), in its documented
shape. The IDs the tutorials and the official sample use are here; the
other entries are made up for realism."""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Set

__all__ = ["DEFAULT_CATALOGUE", "clothes_of", "copy_catalogue"]


def _model(model_id: str, ko: str, en: str, clothes: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        "id": model_id,
        "label": {"ko": ko, "en": en},
        "thumbnail": f"https://cdn.aistudios.com/models/{model_id}.png",
        "clothes": clothes,
    }


def _clothes(clothes_id: str, ko: str, en: str) -> Dict[str, Any]:
    return {
        "id": clothes_id,
        "label": {"ko": ko, "en": en},
        "thumbnail": f"https://cdn.aistudios.com/clothes/{clothes_id}.png",
    }


DEFAULT_CATALOGUE: List[Dict[str, Any]] = [
    # The Korean chroma-key tutorial's model and clothes.
    _model(
        "M000004017",
        "사라",
        "Sarah",
        [_clothes("BG00006160", "정장", "Suit"), _clothes("BG00001004", "캐주얼", "Casual")],
    ),
    # The official V3 Python sample's.
    _model("M000045058", "다니엘", "Daniel", [_clothes("BG00002320", "셔츠", "Shirt")]),
    _model(
        "M000120931",
        "지수",
        "Jisoo",
        [_clothes("BG00007715", "블라우스", "Blouse"), _clothes("BG00007716", "니트", "Knit")],
    ),
]


def copy_catalogue(models: Optional[List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """A private copy of ``models`` (default: :data:`DEFAULT_CATALOGUE`)."""
    return copy.deepcopy(DEFAULT_CATALOGUE if models is None else models)


def clothes_of(models: List[Dict[str, Any]], model_id: str) -> Optional[Set[str]]:
    """The clothes IDs of a model, or ``None`` when the model is unknown."""
    for model in models:
        if model.get("id") == model_id:
            return {str(item.get("id")) for item in model.get("clothes", [])}
    return None
