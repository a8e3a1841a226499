"""Regenerate the demo orgs' recorded runtime signals (``demo/orgs/<org>/.aicolleague/signals/``).

``python -m bench.demo_signals`` — deterministic (seeded). The recordings are what the APIs
would have answered between 2026-10-20 and 2026-11-19 (the period of the recorded audit
trails), in the APIs' own shapes: query records (``<Object>.json``), EventLogFile LogFile CSVs
(``EventLogFile/<Id>.csv``, every value quoted as Salesforce writes them), daily ``/limits``
snapshots (``limits.json``) and what the org cannot serve (``unavailable.json``).

The stories, each tied to a change in the org's audit trail:

- acme-prod: ``OpportunityTrigger`` throws from 2026-11-03 17:25, 1 h 35 min after its code
  changed; ``Case_Escalation`` interviews fail from 2026-11-13 12:05, 45 min after its Apex
  action ``CaseEscalationAction`` changed; ``ErpIntegrationService`` callouts time out now and
  then all month (no change behind it); API usage jumps on the last two days.
- acme-uat: no Event Monitoring (INVALID_TYPE); ``InvoiceServiceTest`` fails from the first
  test run after ``InvoiceService`` changed (2026-11-05).
- globex-prod: ``Subscription_Status_Sync`` fails from 15 min after its version 2 was
  activated; ``InvoiceTrigger`` hits the SOQL limit after its change on 2026-11-09;
  ``RenewalBatch`` fails on the last day, right after its change.

Log lines and error messages carry the personal details and record ids real ones do (user
ids, IP addresses, names, e-mail addresses): the extraction must scrub them.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent / "aicolleague_pipelines" / "demo" / "orgs"
FIRST, LAST = date(2026, 10, 20), date(2026, 11, 19)
DAYS = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
USERS = {"acme": [("0055e000004XyZaAAK", "Acme Integration"), ("0055e000005SoFaAAK", "Sofia Alvarez"),
                  ("0055e000006LiNoAAK", "Liam Novak")],
         "globex": [("0054x000002MeTaAAC", "Mei Tanaka"), ("0054x000003CaMeAAC", "Carlos Mendes")]}
UNAVAILABLE_ELF = ("INVALID_TYPE: sObject type 'EventLogFile' is not supported. If you are attempting to use a "
                   "custom object, be sure to append the '__c' after the entity name.")


class Ids:
    def __init__(self, pod: str) -> None:
        self.pod, self.n = pod, 0

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.pod}{self.n:05d}AAA"


def sf(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def at(d: date, h: int, m: int = 0, s: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, h, m, s)


class Org:
    def __init__(self, name: str, org_id: str, pod: str, seed: int) -> None:
        self.name, self.org_id = name, org_id
        self.rng = random.Random(seed)
        self.id = Ids(pod)
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.logs: dict[str, str] = {}
        self.log_rows: dict[tuple[str, date], list[dict[str, Any]]] = {}
        self.limits: list[dict[str, Any]] = []
        self.unavailable: dict[str, str] = {}

    def add(self, obj: str, **rec: Any) -> dict[str, Any]:
        rec.setdefault("Id", self.id({"AsyncApexJob": "707", "ApexTestRunResult": "05m", "ApexTestResult": "07M",
                                      "FlowInterview": "0Fo", "FlowVersionView": "301"}.get(obj, "000")))
        self.rows.setdefault(obj, []).append(rec)
        return rec

    def log(self, event_type: str, when: datetime, **cols: Any) -> None:
        user = self.rng.choice(USERS["acme" if self.name.startswith("acme") else "globex"])
        row = {"EVENT_TYPE": event_type, "TIMESTAMP": when.strftime("%Y%m%d%H%M%S.") + f"{self.rng.randint(0, 999):03d}",
               "REQUEST_ID": "".join(self.rng.choice("abcdefghijkLMNOPQRS0123456789") for _ in range(22)),
               "ORGANIZATION_ID": self.org_id[:15], "USER_ID": user[0][:15], **cols,
               "TIMESTAMP_DERIVED": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "USER_ID_DERIVED": user[0]}
        self.log_rows.setdefault((event_type, when.date()), []).append(row)

    def write(self) -> None:
        folder = ROOT / self.name / ".aicolleague" / "signals"
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "EventLogFile").mkdir(parents=True)
        if "EventLogFile" not in self.unavailable:
            for (event_type, day), rows in sorted(self.log_rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
                rows.sort(key=lambda r: r["TIMESTAMP"])
                buf = io.StringIO()
                w = csv.DictWriter(buf, fieldnames=list(rows[0]), quoting=csv.QUOTE_ALL, lineterminator="\n")
                w.writeheader()
                w.writerows(rows)
                rid = self.id("0AT")
                (folder / "EventLogFile" / f"{rid}.csv").write_text(buf.getvalue(), encoding="utf-8")
                self.add("EventLogFile", Id=rid, EventType=event_type, LogDate=sf(at(day, 0)), Interval="Daily",
                         LogFileLength=len(buf.getvalue().encode()), LogFileContentType="CSV", Sequence=1,
                         ApiVersion=62.0, CreatedDate=sf(at(day + timedelta(days=1), 3, self.rng.randint(0, 59))))
        for obj, rows in sorted(self.rows.items()):
            (folder / f"{obj}.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        (folder / "limits.json").write_text(json.dumps(self.limits, indent=1) + "\n", encoding="utf-8")
        if self.unavailable:
            (folder / "unavailable.json").write_text(json.dumps(self.unavailable, indent=1) + "\n", encoding="utf-8")
        if not any((folder / "EventLogFile").iterdir()):
            (folder / "EventLogFile").rmdir()

    # -- common shapes -------------------------------------------------------------------------------
    def daily_limits(self, api_max: int, api_used: callable, async_used: callable, data_used_mb: float) -> None:
        for i, d in enumerate(DAYS):
            used = int(api_used(d))
            self.limits.append({"at": sf(at(d, 23, 50)), "limits": {
                "DailyApiRequests": {"Max": api_max, "Remaining": api_max - used},
                "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000 - int(async_used(d))},
                "DataStorageMB": {"Max": 10240, "Remaining": int(10240 - data_used_mb - i * 3)},
                "FileStorageMB": {"Max": 51200, "Remaining": 51200 - 8200 - i * 11},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - self.rng.randint(0, 12)},
                "SingleEmail": {"Max": 5000, "Remaining": 5000 - self.rng.randint(20, 90)},
            }})

    def async_job(self, cls: str, job_type: str, done: datetime, *, failed: bool = False, status: str | None = None,
                  items: int = 1, errors: int = 0, method: str | None = None) -> None:
        self.add("AsyncApexJob", ApexClassId=None, ApexClass={"Name": cls}, JobType=job_type,
                 Status="Failed" if failed else "Completed", ExtendedStatus=status, NumberOfErrors=errors,
                 JobItemsProcessed=items, TotalJobItems=items, MethodName=method,
                 CreatedDate=sf(done - timedelta(seconds=self.rng.randint(5, 90))), CompletedDate=sf(done))

    def test_run(self, when: datetime, results: list[tuple[str, str, str, str | None]]) -> None:
        failed = sum(1 for r in results if r[2] != "Pass")
        run = self.add("ApexTestRunResult", AsyncApexJobId=self.id("707"), Status="Completed",
                       StartTime=sf(when), EndTime=sf(when + timedelta(minutes=4)), MethodsEnqueued=len(results),
                       MethodsCompleted=len(results), MethodsFailed=failed, ClassesCompleted=len({r[0] for r in results}),
                       JobName=None, IsAllTests=True)
        for i, (cls, method, outcome, message) in enumerate(results):
            self.add("ApexTestResult", ApexClassId=None, ApexClass={"Name": cls}, MethodName=method, Outcome=outcome,
                     Message=message, StackTrace=f"Class.{cls}.{method}: line 41, column 1" if message else None,
                     TestTimestamp=sf(when + timedelta(seconds=5 * i)), RunTime=120,
                     AsyncApexJobId=run["AsyncApexJobId"], ApexTestRunResultId=run["Id"])

    def flow_versions(self, flows: dict[str, int]) -> dict[str, str]:
        ids = {}
        for name, version in flows.items():
            vid = self.id("301")
            ids[name] = vid
            self.add("FlowVersionView", Id=vid, DurableId=vid, VersionNumber=version, Status="Active",
                     Label=name.replace("_", " "), FlowDefinitionViewId=self.id("300"),
                     FlowDefinitionView={"ApiName": name})
        return ids

    def coverage(self, org_wide: int, per: dict[str, tuple[int, int]]) -> None:
        self.rows["ApexOrgWideCoverage"] = [{"Id": self.id("715"), "PercentCovered": org_wide}]
        self.rows["ApexCodeCoverageAggregate"] = [
            {"Id": self.id("715"), "ApexClassOrTriggerId": self.id("01q" if name.endswith("Trigger") else "01p"),
             "ApexClassOrTrigger": {"Name": name}, "NumLinesCovered": cov, "NumLinesUncovered": unc}
            for name, (cov, unc) in sorted(per.items())]


def _apex_exception(o: Org, when: datetime, etype: str, message: str, trace: str, category: str | None = None) -> None:
    o.log("ApexUnexpectedException", when, EXCEPTION_TYPE=etype, EXCEPTION_MESSAGE=message, STACK_TRACE=trace,
          EXCEPTION_CATEGORY=category or etype.rpartition(".")[2])


def _api_rows(o: Org, d: date, n: int, entities: list[str]) -> None:
    for _ in range(n):
        when = at(d, o.rng.randint(0, 23), o.rng.randint(0, 59), o.rng.randint(0, 59))
        o.log("API", when, CLIENT_IP=f"203.0.113.{o.rng.randint(2, 250)}", API_TYPE=o.rng.choice(["R", "R", "E", "B"]),
              METHOD_NAME=o.rng.choice(["query", "update", "create", "describeSObject"]),
              ENTITY_NAME=o.rng.choice(entities), ROWS_PROCESSED=o.rng.randint(1, 200))


def acme_prod() -> Org:
    o = Org("acme-prod", "00D8c0000012AcmEAE", "8c00000", seed=11)
    flows = o.flow_versions({"Case_Escalation": 3, "New_Client_Intake": 2, "Opportunity_Program_Sync": 4,
                             "Notify_Account_Team": 1, "Invoice_Overdue_Notification": 4})
    trigger_change = datetime(2026, 11, 3, 15, 50, 21)
    action_change = datetime(2026, 11, 13, 11, 20, 36)
    spike = {date(2026, 11, 18), date(2026, 11, 19)}
    for d in DAYS:
        # Callouts of the ERP integration time out now and then, all month (nothing changed).
        for k in range(o.rng.choice([0, 0, 1, 1, 2])):
            when = at(d, 3 if (d == FIRST and k == 0) else o.rng.randint(1, 22), 14, o.rng.randint(0, 59))
            _apex_exception(o, when, "System.CalloutException", "Read timed out",
                            "Class.ErpIntegrationService.pushInvoices: line 38, column 1\n"
                            "Class.ErpIntegrationService.execute: line 12, column 1", "CalloutException")
        # The opportunity trigger breaks after its code change of 2026-11-03 15:50.
        if d >= trigger_change.date():
            n = o.rng.randint(15, 35) if d > trigger_change.date() else 9
            for k in range(n):
                start_h = 17 if d == trigger_change.date() else 6
                when = at(d, o.rng.randint(start_h, 21), o.rng.randint(0, 59), o.rng.randint(0, 59))
                if d == trigger_change.date() and k == 0:
                    when = at(d, 17, 25, 4)
                if k % 5 == 4:
                    user = o.rng.choice(USERS["acme"][1:])
                    first = user[1].split()[0].lower()
                    last = user[1].split()[1].lower()
                    _apex_exception(
                        o, when, "System.DmlException",
                        f"Insert failed. First exception on row 0 with id 0065e00000Gh{o.rng.randint(100, 999)}AAJ; "
                        "first error: FIELD_CUSTOM_VALIDATION_EXCEPTION, Program owner "
                        f"{user[1]} ({first}.{last}@acme.com, +1 415 555 01{o.rng.randint(10, 99)}) must approve "
                        "delivery for 'Northwind Traders': [Program__c]",
                        "Trigger.OpportunityTrigger: line 44, column 1", "DmlException")
                else:
                    _apex_exception(o, when, "System.NullPointerException", "Attempt to de-reference a null object",
                                    "Trigger.OpportunityTrigger: line 23, column 1", "NullPointerException")
        # Flow executions; Case_Escalation fails from 45 min after its Apex action changed.
        for name, vid in flows.items():
            interviews = o.rng.randint(15, 40) if name != "Notify_Account_Team" else o.rng.randint(2, 8)
            errors = 0
            if name == "Case_Escalation" and d >= action_change.date():
                errors = o.rng.randint(3, 8)
            o.log("FlowExecution", at(d, 23, 55), PROCESS_TYPE="Flow" if name == "New_Client_Intake" else
                  "AutoLaunchedFlow", FLOW_VERSION_ID=vid[:15], NUMBER_OF_INTERVIEWS=interviews,
                  NUMBER_OF_ERRORS=errors, TOTAL_EXECUTION_TIME=interviews * o.rng.randint(40, 90))
            for k in range(errors):
                when = at(d, o.rng.randint(12 if d == action_change.date() else 7, 20), o.rng.randint(0, 59))
                if d == action_change.date() and k == 0:
                    when = at(d, 12, 5, 41)
                case_no = f"0000{o.rng.randint(1000, 9999)}"
                msg = ("An Apex error occurred: System.QueryException: List has no rows for assignment to SObject"
                       if k % 3 else
                       f"An Apex error occurred: System.QueryException: no account team for case {case_no} "
                       f"(contact jane.cooper{case_no[-2:]}@example.com)")
                o.add("FlowInterview", Name=f"FI-{o.rng.randint(100000, 999999)}",
                      InterviewLabel=f"Case Escalation {when:%m/%d/%Y %I:%M %p} for Jane Cooper",
                      InterviewStatus="Error", CurrentElement="Escalate_Case", FlowVersionViewId=vid,
                      Guid=f"{o.rng.getrandbits(64):016x}", PauseLabel=None, Error=msg, OwnerId=USERS["acme"][0][0],
                      CreatedDate=sf(when - timedelta(seconds=3)), LastModifiedDate=sf(when))
        # API usage: steady, then an integration loops on the last two days.
        _api_rows(o, d, o.rng.randint(40, 80) if d not in spike else o.rng.randint(230, 280),
                  ["Opportunity", "Account", "Invoice__c", "Program__c"])
        if o.rng.random() < 0.3:
            o.log("ReportExport", at(d, o.rng.randint(8, 18), o.rng.randint(0, 59)),
                  CLIENT_IP=f"198.51.100.{o.rng.randint(2, 250)}", REPORT_ID="00O5e000000AbCdEAK")
        # The ERP queueable, a dozen or so a day; rare failures.
        for _ in range(o.rng.randint(10, 18)):
            fail = o.rng.random() < 0.02
            o.async_job("ErpIntegrationService", "Queueable", at(d, o.rng.randint(0, 23), o.rng.randint(0, 59)),
                        failed=fail, status="Read timed out" if fail else None)
    o.daily_limits(115000, lambda d: o.rng.randint(7600, 9400) if d not in {date(2026, 11, 18), date(2026, 11, 19)}
                   else o.rng.randint(36000, 41000), lambda d: o.rng.randint(300, 420), 6120)
    for d in (date(2026, 10, 24), date(2026, 10, 31), date(2026, 11, 7), date(2026, 11, 14)):
        o.test_run(at(d, 2, 0), [("InvoiceServiceTest", "createsOneInvoicePerAccount", "Pass", None),
                                 ("InvoiceServiceTest", "returnsOnlyOpenInvoices", "Pass", None),
                                 ("AccountHealthCalculatorTest", "findsAtRiskAccounts", "Pass", None),
                                 ("OpportunityHelperTest", "createsRenewals", "Pass", None)])
    o.coverage(81, {"InvoiceService": (88, 6), "OpportunityHelper": (41, 12), "AccountHealthCalculator": (30, 9),
                    "ErpIntegrationService": (0, 54), "CaseEscalationAction": (0, 21), "OpportunityTrigger": (48, 3),
                    "ContactTrigger": (0, 6), "ProgramController": (18, 4)})
    for k in range(4):  # screen flows left paused by users
        when = at(date(2026, 11, 2 + 4 * k), 10 + k, 12)
        o.add("FlowInterview", Name=f"FI-{o.rng.randint(100000, 999999)}", InterviewLabel="New Client Intake",
              InterviewStatus="Paused", CurrentElement="Program_Details", FlowVersionViewId=flows["New_Client_Intake"],
              Guid=f"{o.rng.getrandbits(64):016x}", PauseLabel="waiting for the signed SOW", Error=None,
              OwnerId=USERS["acme"][1][0], CreatedDate=sf(when - timedelta(minutes=9)), LastModifiedDate=sf(when))
    return o


def acme_uat() -> Org:
    o = Org("acme-uat", "00D7Z000000AcUtUAG", "7Z00000", seed=12)
    o.unavailable["EventLogFile"] = UNAVAILABLE_ELF
    o.flow_versions({"Case_Escalation": 3, "Invoice_Overdue_Notification": 5})
    for d in DAYS:
        for _ in range(o.rng.randint(2, 6)):
            o.async_job("ErpIntegrationService", "Queueable", at(d, o.rng.randint(8, 18), o.rng.randint(0, 59)))
    o.daily_limits(5000000, lambda d: o.rng.randint(900, 1600), lambda d: o.rng.randint(20, 60), 310)
    failing = ("System.AssertException: Assertion Failed: Expected: 30, Actual: 45 — due date of the invoice for "
               "Test Billing User (billing.test@acme.com.uat)")
    for d in (date(2026, 10, 27), date(2026, 11, 4), date(2026, 11, 6), date(2026, 11, 12), date(2026, 11, 18)):
        broken = d >= date(2026, 11, 6)
        o.test_run(at(d, 9, 30), [
            ("InvoiceServiceTest", "createsOneInvoicePerAccount", "Fail" if broken else "Pass",
             failing if broken else None),
            ("InvoiceServiceTest", "returnsOnlyOpenInvoices", "Pass", None),
            ("OpportunityHelperTest", "createsRenewals", "Pass", None)])
    o.coverage(78, {"InvoiceService": (80, 14), "ChurnRiskScorer": (0, 26), "OpportunityHelper": (41, 12)})
    o.rows["FlowInterview"] = []
    return o


def globex_prod() -> Org:
    o = Org("globex-prod", "00D4x000007GlbxEAC", "4x00000", seed=13)
    flows = o.flow_versions({"Subscription_Status_Sync": 2, "Subscription_Renewal_Reminder": 3,
                             "Account_Churn_Cleanup": 1, "Invoice_Dunning": 11})
    activation = datetime(2026, 11, 3, 13, 55, 40)
    trigger_change = datetime(2026, 11, 9, 9, 20, 33)
    batch_change = datetime(2026, 11, 19, 11, 3, 47)
    for d in DAYS:
        if d >= activation.date():
            for k in range(o.rng.randint(1, 4) if d > activation.date() else 2):
                when = at(d, o.rng.randint(14 if d == activation.date() else 6, 21), o.rng.randint(0, 59))
                if d == activation.date() and k == 0:
                    when = at(d, 14, 10, 12)
                o.add("FlowInterview", Name=f"FI-{o.rng.randint(100000, 999999)}",
                      InterviewLabel=f"Subscription Status Sync {when:%m/%d/%Y %I:%M %p}", InterviewStatus="Error",
                      CurrentElement="Mark_Account_Churned", FlowVersionViewId=flows["Subscription_Status_Sync"],
                      Guid=f"{o.rng.getrandbits(64):016x}", PauseLabel=None,
                      Error=("This error occurred when the flow tried to update records: "
                             "FIELD_CUSTOM_VALIDATION_EXCEPTION: Segment is required for churned accounts. "
                             f"Account 0014x00000K9{o.rng.randint(100, 999)}AAJ owned by Carlos Mendes"),
                      OwnerId=USERS["globex"][1][0], CreatedDate=sf(when - timedelta(seconds=2)),
                      LastModifiedDate=sf(when))
        if d >= trigger_change.date():
            for k in range(o.rng.randint(5, 12)):
                when = at(d, o.rng.randint(10 if d == trigger_change.date() else 7, 19), o.rng.randint(0, 59))
                if d == trigger_change.date() and k == 0:
                    when = at(d, 10, 2, 55)
                _apex_exception(o, when, "System.LimitException", "Too many SOQL queries: 101",
                                "Trigger.InvoiceTrigger: line 9, column 1", "LimitException: Queries")
        for name, vid in flows.items():
            o.log("FlowExecution", at(d, 23, 55), PROCESS_TYPE="AutoLaunchedFlow", FLOW_VERSION_ID=vid[:15],
                  NUMBER_OF_INTERVIEWS=o.rng.randint(5, 25), NUMBER_OF_ERRORS=0,
                  TOTAL_EXECUTION_TIME=o.rng.randint(400, 2000))
        _api_rows(o, d, o.rng.randint(30, 60), ["Subscription__c", "Account", "Invoice__c", "Usage_Record__c"])
        # RenewalBatch every two hours; broken from its change on the last day.
        for h in range(1, 24, 2):
            done = at(d, h, 4, o.rng.randint(0, 59))
            broken = done > batch_change
            o.async_job("RenewalBatch", "BatchApex", done, failed=broken, items=o.rng.randint(3, 9),
                        errors=o.rng.randint(2, 5) if broken else 0,
                        status=("First error: Update failed. First exception on row 0 with id "
                                f"a0B4x00000Rk{o.rng.randint(100, 999)}EAJ; first error: "
                                "FIELD_CUSTOM_VALIDATION_EXCEPTION, Renewal date must be after the start date "
                                "for Mei Tanaka (mei.tanaka@globex.example): [Renewal_Date__c]") if broken else None)
        for _ in range(o.rng.randint(0, 3)):
            o.async_job("BillingNotifier", "Queueable", at(d, o.rng.randint(0, 23), 30))
    o.daily_limits(100000, lambda d: o.rng.randint(5200, 6100), lambda d: o.rng.randint(150, 220), 2280)
    for d in (date(2026, 10, 30), date(2026, 11, 13)):
        o.test_run(at(d, 1, 0), [("SubscriptionServiceTest", "cancelsAtPeriodEnd", "Pass", None),
                                 ("RenewalBatchTest", "renewsDueSubscriptions", "Pass", None)])
    o.coverage(74, {"SubscriptionService": (60, 8), "RenewalBatch": (44, 6), "BillingNotifier": (0, 40),
                    "LegacyBillingEngine": (0, 612), "InvoiceTrigger": (12, 9), "SubscriptionTrigger": (4, 0)})
    return o


def main() -> None:
    for make in (acme_prod, acme_uat, globex_prod):
        org = make()
        org.write()
        n = sum(len(v) for v in org.rows.values())
        print(f"{org.name}: {n} records, {len(org.log_rows)} event log files")


if __name__ == "__main__":
    main()
