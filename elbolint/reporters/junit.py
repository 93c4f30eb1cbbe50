"""JUnit XML as ruff emits it, for CI systems that show test reports (GitLab `artifacts:reports:junit`,
Jenkins, Azure): one `<testsuite>` per file with findings, one failing `<testcase>` per finding
(`name="org.elbolint.ELB001"`, `classname` the path without its suffix, `line`/`column` attributes, a
`severity` property and the message in `<failure>`). No findings: one passing testcase, "No errors
found", in a suite named elbolint, as ruff does. Paths are relative to the working directory, like
every other format. Characters XML 1.0 cannot carry (control characters in a message or path) are
replaced by U+FFFD so the report always parses.

Notebooks: tools that turn a JUnit report into annotations read `line`/`column` as a place in the
file as stored, so for a notebook finding they are the flagged code's place in the notebook's JSON
(line 1 when that cannot be had), as in the GitHub, SARIF and GitLab formats; the `cell` property and
the failure text (`cell 3, line 2, col 20, ...`) give the position in the cell.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import PurePath

from elbolint.diagnostics import Diagnostic
from elbolint.reporters import display_path
from elbolint.reporters.source_lines import SourceLines

PACKAGE = "org.elbolint"
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def render(diagnostics: list[Diagnostic]) -> str:
    by_file: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        by_file.setdefault(display_path(d.path), []).append(d)
    sources = SourceLines()
    count = str(len(diagnostics))
    root = ET.Element("testsuites", name="elbolint", tests=count, skipped="0", failures=count, errors="0")
    if not diagnostics:
        root.set("tests", "1")
        suite = ET.SubElement(root, "testsuite", name="elbolint", tests="1", skipped="0", errors="0",
                              failures="0", package=PACKAGE)
        ET.SubElement(suite, "testcase", name="No errors found", classname="elbolint")
    for path, found in by_file.items():
        suite = ET.SubElement(root, "testsuite", name=_clean(path), tests=str(len(found)), skipped="0",
                              errors="0", failures=str(len(found)), package=PACKAGE)
        classname = _clean(str(PurePath(path).with_suffix("")) if PurePath(path).suffix else path)
        for d in found:
            line, column = d.line, d.column
            if d.cell is not None:
                region = sources.json_region(d)
                line, column = (1, 1) if region is None else region[:2]
            case = ET.SubElement(suite, "testcase", name=f"{PACKAGE}.{d.code}", classname=classname,
                                 line=str(line), column=str(column))
            properties = ET.SubElement(case, "properties")
            ET.SubElement(properties, "property", name="severity", value=d.severity.value)
            ET.SubElement(properties, "property", name="rule", value=d.name)
            if d.cell is not None:
                ET.SubElement(properties, "property", name="cell", value=str(d.cell))
            if d.dynamic is not None and d.dynamic.get("status"):
                ET.SubElement(properties, "property", name="dynamic", value=_clean(d.dynamic["status"]))
            where = f"cell {d.cell}, " if d.cell is not None else ""
            failure = ET.SubElement(case, "failure", message=_clean(d.message))
            failure.text = _clean(f"{where}line {d.line}, col {d.column}, {d.message}")
    ET.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
