"""docs/operations.md has a runbook for every shipped alert and meta-alert, at the anchor of its runbook_url."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_checks import OPERATIONS_DOC, REPO, RULE_FILES, markdown_anchors, runbook_problems, runbook_urls

SHIPPED = {"ChurnRateHigh", "ChurnSpike", "NpsLow", "NpsDrop", "CsatLow", "FirstResponseSlow", "ComplaintSurge",
           "RefundRateHigh"}
META = {"RetentionMonitorDown", "RetentionDeadLetterRate", "RetentionConsumerLag", "RetentionKpisStale"}


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_runbook_url_has_its_anchor(rule_file: Path) -> None:
    urls = runbook_urls(rule_file)
    assert urls
    assert runbook_problems(urls, OPERATIONS_DOC.read_text()) == []


def test_all_shipped_and_meta_alerts_are_covered() -> None:
    names = {name for path in RULE_FILES for name in runbook_urls(path)}
    assert names >= SHIPPED | META
    anchors = markdown_anchors(OPERATIONS_DOC.read_text())
    assert {n.lower() for n in SHIPPED | META} <= anchors


def test_anchors_from_ids_and_heading_slugs() -> None:
    text = '# Ops\n<a id="churnratehigh"></a>\n## Redis outage\n## Redis outage\n```\n# not a heading\n```\n'
    assert markdown_anchors(text) == {"ops", "churnratehigh", "redis-outage", "redis-outage-1"}
    assert markdown_anchors("### ChurnSpike (critical!)\n") == {"churnspike-critical"}


def test_missing_or_wrong_runbooks_are_reported() -> None:
    base = "https://github.com/retention-monitor/retention-monitor/blob/main/docs/"
    urls = {
        "Fine": base + "operations.md#fine",
        "Missing": base + "operations.md#missing",
        "Elsewhere": base + "scaling.md#fine",
        "NoAnchor": base + "operations.md",
        "NoUrl": None,
    }
    assert runbook_problems(urls, '<a id="fine"></a>\n') == [
        "Missing: anchor #missing does not exist in docs/operations.md",
        f"Elsewhere: runbook_url {base}scaling.md#fine does not point into docs/operations.md#<anchor>",
        f"NoAnchor: runbook_url {base}operations.md does not point into docs/operations.md#<anchor>",
        "NoUrl: no runbook_url",
    ]


def test_removing_a_runbook_section_is_reported() -> None:
    text = OPERATIONS_DOC.read_text().replace('<a id="csatlow"></a>', "").replace("### CsatLow", "### CSAT low")
    problems = runbook_problems(runbook_urls(REPO / "alerts" / "rules.yml"), text)
    assert problems == ["CsatLow: anchor #csatlow does not exist in docs/operations.md"]
