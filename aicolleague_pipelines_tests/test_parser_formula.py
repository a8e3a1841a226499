"""The formula tokenizer / resolver: strings, comments, functions, paths, globals, merge fields."""

from __future__ import annotations

import pytest

from aicolleague_pipelines.lib.graph.model import READ, REFERENCES, WRITE
from aicolleague_pipelines.lib.graph.parsers.formula import (
    merge_expressions,
    parse_formula,
    parse_merge_text,
    tokenize_identifiers,
)
from aicolleague_pipelines.lib.graph.schema import Schema
from aicolleague_pipelines.lib.salesforce.model import Component


def _field(name: str, **attrs) -> Component:
    return Component("CustomField", name, attributes=attrs)


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(
        [
            Component("CustomObject", "Account"),
            Component("CustomObject", "Program__c"),
            Component("CustomObject", "ServiceDelivery__c"),
            Component("CustomObject", "Acme_Settings__c"),
            Component("CustomObject", "Integration_Setting__mdt"),
            _field("Account.Industry"),
            _field("Account.Customer_Tier__c"),
            # relationshipName is the *child* name in Metadata API sources
            _field("Program__c.Account__c", reference_to=["Account"], relationship_name="Programs"),
            _field("Program__c.Status__c"),
            _field("ServiceDelivery__c.Program__c", reference_to=["Program__c"], relationship_name="Deliveries"),
            _field("ServiceDelivery__c.Hours__c"),
            _field("Acme_Settings__c.Default_Rate__c"),
            _field("Integration_Setting__mdt.Endpoint_URL__c"),
            Component("CustomMetadata", "Integration_Setting.ERP"),
        ]
    )


def targets(refs) -> list[str]:
    return [r.target for r in refs]


def test_bare_fields_resolve_on_the_base_object_with_canonical_casing(schema):
    refs = parse_formula("IF(ISBLANK(industry), 'none', Customer_Tier__c)", "Account", schema)
    assert targets(refs) == ["CustomField:Account.Industry", "CustomField:Account.Customer_Tier__c"]
    assert all(r.kind == REFERENCES and r.access == READ and r.line is None for r in refs)


def test_function_names_and_literals_are_not_fields(schema):
    f = 'CASE(Status__c, "Active", TRUE, FALSE) && NOT(ISNULL(Status__c)) || null = TEXT(TODAY())'
    assert targets(parse_formula(f, "Program__c", schema)) == ["CustomField:Program__c.Status__c"]
    # a function name is a field when it is not called …
    assert targets(parse_formula("Text__c + 1", "Program__c", schema)) == ["CustomField:Program__c.Text__c"]
    # … and is not one when a comment sits between it and its parenthesis
    assert parse_formula("TODAY /* now */ ()", "Program__c", schema) == []


def test_string_literals_and_comments_yield_nothing(schema):
    f = """/* Industry__c and Account__r.Name are mentioned here */
    "Industry" & 'Customer_Tier__c' & "it's \\"Hours__c\\"" & Status__c"""
    assert targets(parse_formula(f, "Program__c", schema)) == ["CustomField:Program__c.Status__c"]


def test_ispickval_priorvalue_ischanged(schema):
    f = 'AND(ISCHANGED(Status__c), ISPICKVAL(PRIORVALUE(Status__c), "Draft"), Budget__c > 0)'
    assert targets(parse_formula(f, "Program__c", schema)) == [
        "CustomField:Program__c.Status__c",
        "CustomField:Program__c.Budget__c",
    ]


def test_nested_cross_object_path_resolves_each_lookup(schema):
    refs = parse_formula("Program__r.Account__r.Industry", "ServiceDelivery__c", schema)
    assert targets(refs) == [
        "CustomField:ServiceDelivery__c.Program__c",
        "CustomField:Program__c.Account__c",
        "CustomField:Account.Industry",
    ]


def test_standard_relationships(schema):
    refs = parse_formula("Account.Owner.Email", "Opportunity", schema)
    assert targets(refs) == [
        "CustomField:Opportunity.AccountId",
        "CustomField:Account.OwnerId",
        "CustomField:User.Email",
    ]


def test_line_offsets(schema):
    refs = parse_formula("Industry\n&\n  Customer_Tier__c", "Account", schema, line=10)
    assert [r.line for r in refs] == [10, 12]


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("$User.Email", ["CustomField:User.Email"]),
        ("$User.Manager.Email", ["CustomField:User.ManagerId", "CustomField:User.Email"]),
        ("$Profile.Name", ["CustomField:Profile.Name"]),
        ("$UserRole.DeveloperName", ["CustomField:UserRole.DeveloperName"]),
        ("$Organization.Id", ["CustomField:Organization.Id"]),
        ("$RecordType.DeveloperName", ["CustomField:RecordType.DeveloperName"]),
        ("$Setup.acme_settings__c.Default_Rate__c", ["CustomField:Acme_Settings__c.Default_Rate__c"]),
        ("$Label.Overdue_Message", ["CustomLabel:Overdue_Message"]),
        ("$Permission.Can_Approve", ["CustomPermission:Can_Approve"]),
        (
            "$CustomMetadata.Integration_Setting__mdt.ERP.Endpoint_URL__c",
            ["CustomMetadata:Integration_Setting.ERP", "CustomField:Integration_Setting__mdt.Endpoint_URL__c"],
        ),
        ("$Api.Session_ID", []),
        ("$System.OriginDateTime", []),
        ("$Flow.CurrentDate", []),
        ("$GlobalConstant.True", []),
    ],
)
def test_globals(schema, formula, expected):
    assert targets(parse_formula(formula, "Account", schema)) == expected


def test_record_and_prior_in_flow_formulas(schema):
    f = "{!$Record.Program__r.Account__r.Industry} & {!$Record__Prior.Hours__c} & {!$Record.Hours__c}"
    assert targets(parse_formula(f, "ServiceDelivery__c", schema, variables={})) == [
        "CustomField:ServiceDelivery__c.Program__c",
        "CustomField:Program__c.Account__c",
        "CustomField:Account.Industry",
        "CustomField:ServiceDelivery__c.Hours__c",
    ]


def test_polymorphic_owner_in_flow_paths(schema):
    refs = parse_formula("{!$Record.Owner:User.Email} & {!$Record.Owner:Group.Name}", "Program__c", schema, variables={})
    assert targets(refs) == [
        "CustomField:Program__c.OwnerId",
        "CustomField:User.Email",
        "CustomField:Group.Name",
    ]


def test_variables_mode_resolves_sobject_variables_and_ignores_other_resources(schema):
    variables = {"acct": "Account", "counter": None}
    f = "{!acct.Industry} & {!counter} & {!Hours__c} & {!unknownVar.Field__c}"
    assert targets(parse_formula(f, "ServiceDelivery__c", schema, variables=variables)) == [
        "CustomField:Account.Industry"
    ]


def test_vlookup_objecttype_fields(schema):
    f = "VLOOKUP($ObjectType.Program__c.Fields.Status__c, $ObjectType.Program__c.Fields.Name, Name)"
    assert targets(parse_formula(f, "Account", schema)) == [
        "CustomField:Program__c.Status__c",
        "CustomField:Program__c.Name",
        "CustomField:Account.Name",
    ]


def test_hyperlink_regex_and_datevalue_arguments(schema):
    f = 'HYPERLINK("/lightning/r/Account/" & Id & "/view", Industry) & REGEX(Tax_Id__c, "[0-9]{2}-[0-9]{7}") & TEXT(DATEVALUE(CreatedDate))'
    assert targets(parse_formula(f, "Account", schema)) == [
        "CustomField:Account.Id",
        "CustomField:Account.Industry",
        "CustomField:Account.Tax_Id__c",
        "CustomField:Account.CreatedDate",
    ]


def test_write_access_and_detail_are_passed_through(schema):
    refs = parse_formula("Industry & $Label.X", "Account", schema, access=WRITE, detail="x")
    assert [(r.target, r.access, r.detail) for r in refs] == [
        ("CustomField:Account.Industry", WRITE, "x"),
        ("CustomLabel:X", None, "x"),
    ]


def test_empty_and_none(schema):
    assert parse_formula(None, "Account", schema) == []
    assert parse_formula("", "Account", schema) == []
    assert parse_formula("Industry", None, schema) == []  # no base object: bare names unknown


def test_duplicates_are_collapsed(schema):
    assert len(parse_formula("Industry & Industry & INDUSTRY", "Account", schema)) == 1


def test_tokenizer_marks_functions_and_lines():
    toks = tokenize_identifiers("IF (\n a.b, c)")
    assert [(t.text, t.line, t.is_function) for t in toks] == [("IF", 1, True), ("a.b", 2, False), ("c", 2, False)]


def test_merge_expressions_balance_braces_and_quotes():
    text = 'Hi {!Contact.Name},\n{!IF(x, "}", y)} and {!$Label.Greeting}'
    assert merge_expressions(text) == [("Contact.Name", 1), ('IF(x, "}", y)', 2), ("$Label.Greeting", 2)]
    assert merge_expressions("no merge {! unterminated") == []


def test_parse_merge_text_ignores_text_outside_merge_fields(schema):
    text = "Industry is shown as {!acct.Industry}\nbut Customer_Tier__c in prose is not"
    refs = parse_merge_text(text, None, schema, variables={"acct": "Account"}, line=1)
    assert [(r.target, r.line) for r in refs] == [("CustomField:Account.Industry", 1)]
