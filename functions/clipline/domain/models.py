"""The base of the domain's records: frozen, with camelCase aliases."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class DomainModel(BaseModel):
    # camelCase aliases are the API's wire names; stored documents use the field names.
    model_config = ConfigDict(frozen=True, populate_by_name=True, alias_generator=to_camel)
