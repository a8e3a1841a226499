"""Name resolution over one org's inventory, shared by every parser.

Salesforce API names are case-insensitive; keys use the casing the org defines, or the casing
seen in the reference when the component is not in the inventory (an external node).
Relationship paths (``Program__r.Account__r.Name``, ``Account.Owner.Email``) resolve through
lookup fields' ``reference_to`` and a small table of standard relationships.
"""

from __future__ import annotations

from collections.abc import Iterable

from aicolleague_pipelines.lib.salesforce.model import Component, component_key

#: Standard relationship name → (lookup field, target objects), valid on every object.
_COMMON_RELATIONSHIPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "owner": ("OwnerId", ("User",)),
    "createdby": ("CreatedById", ("User",)),
    "lastmodifiedby": ("LastModifiedById", ("User",)),
    "recordtype": ("RecordTypeId", ("RecordType",)),
}
#: (object, relationship) → (lookup field, target objects) for common standard lookups.
_STANDARD_RELATIONSHIPS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("contact", "account"): ("AccountId", ("Account",)),
    ("contact", "reportsto"): ("ReportsToId", ("Contact",)),
    ("opportunity", "account"): ("AccountId", ("Account",)),
    ("opportunity", "campaign"): ("CampaignId", ("Campaign",)),
    ("opportunitylineitem", "opportunity"): ("OpportunityId", ("Opportunity",)),
    ("opportunitylineitem", "product2"): ("Product2Id", ("Product2",)),
    ("opportunitycontactrole", "contact"): ("ContactId", ("Contact",)),
    ("opportunitycontactrole", "opportunity"): ("OpportunityId", ("Opportunity",)),
    ("case", "account"): ("AccountId", ("Account",)),
    ("case", "contact"): ("ContactId", ("Contact",)),
    ("case", "parent"): ("ParentId", ("Case",)),
    ("account", "parent"): ("ParentId", ("Account",)),
    ("asset", "account"): ("AccountId", ("Account",)),
    ("asset", "contact"): ("ContactId", ("Contact",)),
    ("contract", "account"): ("AccountId", ("Account",)),
    ("order", "account"): ("AccountId", ("Account",)),
    ("lead", "convertedaccount"): ("ConvertedAccountId", ("Account",)),
    ("lead", "convertedcontact"): ("ConvertedContactId", ("Contact",)),
    ("task", "who"): ("WhoId", ("Contact", "Lead")),
    ("task", "what"): ("WhatId", ("Account", "Opportunity", "Case")),
    ("event", "who"): ("WhoId", ("Contact", "Lead")),
    ("event", "what"): ("WhatId", ("Account", "Opportunity", "Case")),
    ("user", "profile"): ("ProfileId", ("Profile",)),
    ("user", "manager"): ("ManagerId", ("User",)),
    ("user", "contact"): ("ContactId", ("Contact",)),
}


class Schema:
    """Objects, fields and relationships of one org, for resolving names in code and formulas."""

    def __init__(self, components: Iterable[Component]) -> None:
        self._objects: dict[str, str] = {}  # lower name → canonical name
        self._fields: dict[str, dict[str, Component]] = {}  # lower obj → lower field → comp
        self._relationships: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        self._classes: dict[str, str] = {}
        self._flows: dict[str, str] = {}
        self._keys: dict[str, str] = {}  # lower key → canonical key (every component)
        for c in components:
            self._keys[c.key.lower()] = c.key
            if c.type == "CustomObject":
                self._objects[c.full_name.lower()] = c.full_name
            elif c.type == "CustomField":
                obj, _, fld = c.full_name.partition(".")
                self._objects.setdefault(obj.lower(), obj)
                self._fields.setdefault(obj.lower(), {})[fld.lower()] = c
            elif c.type == "ApexClass":
                self._classes[c.full_name.lower()] = c.full_name
            elif c.type == "Flow":
                self._flows[c.full_name.lower()] = c.full_name
        for obj_l, fields in self._fields.items():
            for fld_l, comp in fields.items():
                targets = tuple(comp.attributes.get("reference_to") or ())
                if not targets:
                    continue
                fld = comp.full_name.partition(".")[2]
                rel = comp.attributes.get("relationship_name")
                if fld_l.endswith("__c"):
                    rel_name = (rel + "__r") if rel and not rel.endswith("__r") else (rel or fld[:-3] + "__r")
                elif fld_l.endswith("id"):
                    rel_name = rel or fld[:-2]
                else:
                    rel_name = rel or fld
                self._relationships[(obj_l, rel_name.lower())] = (fld, targets)
                if fld_l.endswith("__c"):  # the forward name is always Field__r (the Metadata
                    # API's relationshipName, as SFDX sources carry it, is the *child* name)
                    self._relationships[(obj_l, fld_l[:-3] + "__r")] = (fld, targets)

    # --- objects -----------------------------------------------------------------------
    def has_object(self, name: str) -> bool:
        return name.lower() in self._objects

    def object_name(self, name: str) -> str:
        """Canonical casing of an object name (as given when unknown)."""
        return self._objects.get(name.lower(), name)

    def object_key(self, name: str) -> str:
        return component_key("CustomObject", self.object_name(name))

    # --- fields ------------------------------------------------------------------------
    def field(self, obj: str, field: str) -> Component | None:
        return self._fields.get(obj.lower(), {}).get(field.lower())

    def has_field(self, obj: str, field: str) -> bool:
        return self.field(obj, field) is not None

    def field_key(self, obj: str, field: str) -> str:
        """``CustomField:Obj.Field`` in canonical casing where the org defines the field."""
        comp = self.field(obj, field)
        if comp is not None:
            return comp.key
        return component_key("CustomField", f"{self.object_name(obj)}.{field}")

    def fields_of(self, obj: str) -> list[Component]:
        return list(self._fields.get(obj.lower(), {}).values())

    # --- relationships -----------------------------------------------------------------
    def relationship(self, obj: str, rel: str) -> tuple[str, tuple[str, ...]] | None:
        """``(lookup field, target objects)`` for relationship ``rel`` on ``obj``, or None."""
        key = (obj.lower(), rel.lower())
        if key in self._relationships:
            return self._relationships[key]
        if key in _STANDARD_RELATIONSHIPS:
            return _STANDARD_RELATIONSHIPS[key]
        if rel.lower() in _COMMON_RELATIONSHIPS:
            return _COMMON_RELATIONSHIPS[rel.lower()]
        if rel.lower().endswith("__r"):  # unknown custom lookup: assume Name__c → Name__c
            base = rel[:-3]
            return (base + "__c", (base + "__c",))
        return None

    def resolve_path(self, obj: str, path: str) -> list[str]:
        """Field keys along a dotted path from ``obj``, lookups included.

        ``resolve_path("ServiceDelivery__c", "Program__r.Account__r.Name")`` →
        ``[CustomField:ServiceDelivery__c.Program__c, CustomField:Program__c.Account__c,
        CustomField:Account.Name]`` (the targets following the org's lookup definitions).
        A polymorphic lookup (several targets) resolves through the first target.
        """
        parts = [p for p in path.split(".") if p]
        keys: list[str] = []
        current = obj
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                keys.append(self.field_key(current, part))
                break
            rel = self.relationship(current, part)
            if rel is None:  # not a relationship: treat as the field itself and stop
                keys.append(self.field_key(current, part))
                break
            lookup_field, targets = rel
            keys.append(self.field_key(current, lookup_field))
            current = self.object_name(targets[0])
        return keys

    # --- other components --------------------------------------------------------------
    def apex_class(self, name: str) -> str | None:
        """Canonical class name if the org defines an Apex class of that name."""
        return self._classes.get(name.lower())

    def flow(self, name: str) -> str | None:
        return self._flows.get(name.lower())

    def canonical_key(self, key: str) -> str:
        """The org's casing of any component key (as given when the org does not define it)."""
        return self._keys.get(key.lower(), key)

    def has_component(self, key: str) -> bool:
        """Whether the org defines a component with this key (any type, case-insensitive)."""
        return key.lower() in self._keys

    # --- additions for the code parsers (Apex, SOQL) -----------------------------------
    def _child_index(self) -> dict[tuple[str, str], tuple[str, str]]:
        idx = getattr(self, "_child_rels", None)
        if idx is None:
            idx = {}
            for obj_l, fields in self._fields.items():
                for fld_l, comp in fields.items():
                    rel = comp.attributes.get("relationship_name")
                    targets = comp.attributes.get("reference_to") or ()
                    if not rel or not targets:
                        continue
                    obj, _, fld = comp.full_name.partition(".")
                    rel_l = rel.lower()
                    if fld_l.endswith("__c") and not rel_l.endswith("__r"):
                        rel_l += "__r"
                    for target in targets:
                        idx.setdefault((target.lower(), rel_l), (self.object_name(obj), fld))
            self._child_rels = idx
        return idx

    def child_relationship(self, parent: str, rel: str) -> tuple[str, str] | None:
        """``(child object, lookup field)`` of child relationship ``rel`` on ``parent``.

        Uses the lookups' Metadata API ``relationshipName`` (the child relationship name:
        ``relationshipName`` ``Deliveries`` on ``Delivery__c.Program__c`` → ``Program__c``'s
        ``Deliveries__r``). None when the org does not define it.
        """
        return self._child_index().get((parent.lower(), rel.lower()))

    def objects_with_field(self, field: str) -> list[str]:
        """Canonical names of the objects that define a field of that name."""
        f = field.lower()
        return [self._objects.get(o, o) for o, fields in self._fields.items() if f in fields]

    def namespaces(self) -> set[str]:
        """Lower-case namespace prefixes seen in the org's component names (``npsp`` …)."""
        ns = getattr(self, "_namespaces", None)
        if ns is None:
            ns = set()
            for key in self._keys:
                name = key.partition(":")[2]
                for part in name.split("."):
                    if part.count("__") >= 2:
                        ns.add(part.split("__", 1)[0])
            self._namespaces = ns
        return ns
