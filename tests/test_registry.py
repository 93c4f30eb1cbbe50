"""Keeps rule discovery honest: unique codes, complete docs, bad and good fixtures for every rule."""

from __future__ import annotations

import re

import pytest

from conftest import FIXTURES, ROOT, expected_findings
from elbolint.docs import readme_with_table
from elbolint.registry import all_rules, extra_codes

RULES = all_rules()


def test_codes_are_unique_and_well_formed():
    codes = [r.code for r in RULES] + [c.code for c in extra_codes()]
    assert len(codes) == len(set(codes))
    names = [r.name for r in RULES] + [c.name for c in extra_codes()]
    assert len(names) == len(set(names))
    for rule in RULES:
        assert re.fullmatch(r"ELB[0-9]{3}", rule.code), rule
        assert re.fullmatch(r"[a-z]+(-[a-z0-9]+)*", rule.name), rule


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_documents_every_section(rule):
    doc = rule.documentation()
    for section in ("## What it does", "## Why is this bad?", "## Example", "## Use instead"):
        assert section in doc, f"{rule.code} docstring lacks {section!r}"
    assert rule.summary()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_has_bad_and_good_fixtures(rule):
    folder = FIXTURES / rule.code
    bad = sorted(folder.glob("bad_*.py"))
    good = sorted(folder.glob("good_*.py"))
    assert bad, f"fixtures/{rule.code}/ needs bad_*.py files"
    assert good, f"fixtures/{rule.code}/ needs good_*.py (near-miss) files"
    for path in bad:
        assert any(code == rule.code for _, code in expected_findings(path)), f"{path.name} expects no {rule.code}"
    for path in good:
        assert not any(code == rule.code for _, code in expected_findings(path)), f"{path.name} expects {rule.code}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_confirming_codes_exist(rule):
    dynamic = {c.code for c in extra_codes()}
    assert set(rule.confirmed_by) <= dynamic


def test_readme_rule_table_is_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_with_table(readme) == readme, \
        "run: elbolint rule --table (or python -m elbolint.docs) and update README.md"


def test_every_code_has_a_current_page_and_urls_lead_there(monkeypatch):
    import elbolint.reporters
    from elbolint.docs import RULE_PAGES, rule_pages
    from elbolint.registry import known_codes
    from elbolint.reporters import REPOSITORY_URL, rule_url

    folder = ROOT / RULE_PAGES
    pages = rule_pages()
    assert sorted(p.name for p in folder.glob("*.md")) == sorted(pages), "run: python -m elbolint.docs"
    for name, text in pages.items():
        assert (folder / name).read_text(encoding="utf-8") == text, "run: python -m elbolint.docs"
    # No published address yet: every format leaves the link out. Once one is set, links lead to the pages.
    assert REPOSITORY_URL is None and all(rule_url(code) is None for code in known_codes())
    monkeypatch.setattr(elbolint.reporters, "REPOSITORY_URL", "https://example.org/elbolint")
    for code in known_codes():
        url = rule_url(code)
        assert url is not None and url.startswith("https://example.org/elbolint/blob/main/")
        assert (ROOT / url.split("/blob/main/", 1)[1]).is_file(), url
