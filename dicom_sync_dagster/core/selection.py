"""Which series of a study a cycle wants: the seed's three modes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pandas as pd

from .text import shorten


class Mode(str, Enum):
    """Member names are the values, so the Launchpad and the YAML show ``fewer_than``."""

    smallest = "smallest"
    fewer_than = "fewer_than"
    all = "all"


def limit_problem(name: str, value: object) -> str | None:
    """The image limit's check, one wording wherever it is given: ``None`` when ``value`` is a
    whole number >= 1."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return None
    return f"{name}={shorten(value)} must be a whole number >= 1 for mode fewer_than"


@dataclass(frozen=True)
class Selection:
    """A mode, with the image limit that ``fewer_than`` needs."""

    mode: Mode = Mode.smallest
    image_limit: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        problem = limit_problem("image_limit", self.image_limit)
        if self.mode is Mode.fewer_than and problem:
            raise ValueError(problem)

    def describe(self) -> str:
        if self.mode is Mode.smallest:
            return "smallest series per study"
        if self.mode is Mode.fewer_than:
            return f"series with < {self.image_limit} images"
        return "all series"

    def wanted(self, series: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """Per series row: is it wanted by the mode, and if not, why not."""
        images = series["images"]
        if self.mode is Mode.all:
            return pd.Series(True, index=series.index), pd.Series("", index=series.index)
        if self.mode is Mode.fewer_than:
            wanted = (images < self.image_limit).fillna(False).astype(bool)
            why = pd.Series(
                f"over the limit: {self.image_limit} images or more", index=series.index
            )
            return wanted, why.where(~wanted, "")
        # smallest: fewest images (empty series last: nothing to move), ties to the lowest
        # SeriesNumber, then to the UID for stability.
        images = images.where(images != 0)
        ranked = series.assign(
            _images=images.fillna(2**62), _number=series["series_number"].fillna(2**62)
        )
        ranked = ranked.sort_values(
            ["study_uid", "_images", "_number", "series_uid"], kind="stable"
        )
        first = ranked.groupby("study_uid", sort=False).head(1).index
        wanted = pd.Series(series.index.isin(first), index=series.index)
        why = pd.Series("not the smallest series", index=series.index)
        return wanted, why.where(~wanted, "")
