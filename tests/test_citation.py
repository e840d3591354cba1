"""CITATION.cff validates as GitHub and Zenodo read it (the CFF 1.2.0 schema, loaded the way
``cffconvert --validate`` loads it), and cites the version the package reports."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from propy import __version__
from tests.conftest import REPO

SCHEMA = json.loads((REPO / "tests" / "schemas" / "cff-1.2.0.json").read_text())


class _CffLoader(yaml.SafeLoader):
    """Safe YAML that keeps dates as strings, as cffconvert does: the schema types them as strings."""


_CffLoader.add_constructor("tag:yaml.org,2002:timestamp", _CffLoader.construct_yaml_str)


def _errors(cff: dict) -> list[str]:
    validator_cls = jsonschema.validators.validator_for(SCHEMA)
    validator = validator_cls(SCHEMA, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(cff)]


@pytest.fixture(scope="module")
def citation() -> dict:
    return yaml.load((REPO / "CITATION.cff").read_text(encoding="utf-8"), Loader=_CffLoader)


def test_citation_file_is_valid_cff_1_2_0(citation):
    assert citation["cff-version"] == "1.2.0"
    assert _errors(citation) == []


@pytest.mark.parametrize("breakage", ["no_authors", "bad_doi", "unknown_key"])
def test_the_schema_check_rejects_a_broken_citation(citation, breakage):
    broken = json.loads(json.dumps(citation))  # deep copy
    if breakage == "no_authors":
        del broken["authors"]
    elif breakage == "bad_doi":
        broken["references"][-1]["doi"] = "zenodo 5143773"
    else:
        broken["references"][0]["venue"] = "EMNLP"  # CFF calls it collection-title or conference
    assert _errors(broken)


def test_citation_cites_the_package_version(citation):
    assert citation["version"] == __version__
