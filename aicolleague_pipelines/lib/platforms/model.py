"""What a platform extract produces (Metabase, Chargebee, Intercom, custom REST sources).

Every platform extract is *metadata and aggregates only*: schemas, definitions, counts, sums,
link keys. Never people's names, emails, phone numbers, addresses or message bodies — those
are personal data and stay on the platform (a test feeds fixtures full of them and scans the
output).

Platform components are graph nodes keyed ``Type:Name`` like Salesforce ones, with the
platform instance in the name so two instances never collide:

- Metabase: ``MetabaseDatabase:<inst>/<db name>``, ``WarehouseTable:<inst>/<db>.<schema>.<table>``,
  ``WarehouseColumn:<inst>/<db>.<schema>.<table>.<column>``, ``MetabaseCard:<inst>/<id>``,
  ``MetabaseDashboard:<inst>/<id>``;
- Chargebee: ``ChargebeeItem:<inst>/<item id>``, ``ChargebeeItemPrice:<inst>/<id>``,
  ``ChargebeeCustomField:<inst>/<entity>.<cf_name>``;
- Intercom: ``IntercomAttribute:<inst>/<model>.<name>`` (model: contact, company,
  conversation);
- custom REST sources: ``ApiEntity:<inst>/<entity>``, ``ApiField:<inst>/<entity>.<field>``.

Edges inside a platform use :mod:`aicolleague_pipelines.lib.graph.model` kinds (a dashboard
``shows`` its cards, a card ``queries`` the columns it reads, a column is ``child_of`` its
table). Links to Salesforce are :class:`SalesforceLink` rows, resolved against an org's graph
when the org graph is built (so ``impact`` on a Salesforce field reaches the cards and
dashboards downstream).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aicolleague_pipelines.lib.graph.model import Edge, Node


@dataclass(frozen=True)
class SalesforceLink:
    """A platform component that holds, mirrors or matches a Salesforce field.

    ``sf_field`` is ``Object.Field`` (``Account.Industry``) or None when only the object is
    known (``sf_object``). The edge is ``platform_key → CustomField:<sf_field>`` (the platform
    component depends on the Salesforce one) of kind ``synced_to``.
    """

    platform_key: str
    sf_object: str
    sf_field: str | None
    evidence: str
    #: Which org the link belongs to (from the platform's config); None = every org.
    org: str | None = None


@dataclass
class PlatformExtract:
    platform: str  # metabase | chargebee | intercom | custom
    instance: str  # the instance's name in the config
    extracted_at: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    links: list[SalesforceLink] = field(default_factory=list)
    #: Aggregates only (counts, sums, distributions); never a person's details.
    aggregates: dict[str, Any] = field(default_factory=dict)
    #: calls, pages, retries, duration_s, rate_limited …
    stats: dict[str, Any] = field(default_factory=dict)
    #: Problems met (clear text, no secrets, no personal data).
    findings: list[str] = field(default_factory=list)

    def link_coverage(self, where: dict[str, str], link: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
        """The ``salesforce_link`` aggregate of the link field: how many records carry a value
        and how many values look like ids of the linked object; a finding when some do not.
        ``where``: the entity and field, under the platform's own names (first entity, then
        field: ``{"entity": "customer", "field": "cf_sf_account_id"}``); ``counts``: records,
        with_value, valid."""
        (entity, entity_name), (_, field_name) = list(where.items())
        records, with_value, valid = counts["records"], counts["with_value"], counts["valid"]
        if with_value and valid < with_value:
            self.findings.append(f"{with_value - valid} of {with_value} {entity_name} values of "
                                 f"{field_name} do not look like {link['object']} ids")
        return {**where, "sf_field": link.get("sf_field"), "records": records, "with_value": with_value,
                "valid_ids": valid, "invalid_ids": with_value - valid, "without_value": records - with_value}


class PlatformError(Exception):
    """A platform extraction failure naming the platform instance, the call and what to do."""

    def __init__(self, instance: str, component: str, problem: str, hint: str = "") -> None:
        self.instance = instance
        self.component = component
        self.problem = problem
        self.hint = hint
        text = f"platform {instance!r}: {component}: {problem}"
        if hint:
            text += f" — {hint}"
        super().__init__(text)
