"""The registration form: the buyer's contact details as the landing page sends them.

pydantic with e-mail validation (email_validator) costs about a tenth of a second to import, so only the code
that validates a submitted form imports this module, when a form arrives: the fulfillment function never
does, and the registration function's first request (usually the page asking for its state) does not either.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

# Anything below U+0020, DEL and the C1 range, plus line/paragraph separators: never valid in a form field.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# E.164-ish, with the spacing people type: "+1 (555) 010-2030", "+44 20 7946 0958".
_PHONE = re.compile(r"^\+?[0-9][0-9 ().\-]{5,30}$")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters or line breaks")
    if value != value.strip():
        raise ValueError("must not start or end with spaces")
    return value


def _phone(value: str) -> str:
    if not _PHONE.match(value) or sum(ch.isdigit() for ch in value) < 6:
        raise ValueError("enter a phone number with country code, e.g. +1 555 010 2030")
    return value


Text = Annotated[str, AfterValidator(_no_control_characters)]


class RegistrationRequest(BaseModel):
    """The buyer's contact details from the landing page's form (stored as given, escaped when shown)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    company_name: Text = Field(alias="companyName", min_length=1, max_length=200)
    contact_person: Text = Field(alias="contactPerson", min_length=1, max_length=200)
    contact_email: EmailStr = Field(alias="contactEmail", max_length=254)
    contact_phone: Annotated[Text, AfterValidator(_phone)] = Field(alias="contactPhone", max_length=32)
