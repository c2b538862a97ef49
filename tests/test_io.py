import pytest

from pcdata.errors import SourceError
from pcdata.sources.root import load_mapping
from pcmodels.errors import ConfigError
from pcmodels.config import load_config


def test_yaml_files_give_one_line_errors_naming_the_file(tmp_path):
    with pytest.raises(SourceError, match=r"m.yaml: no such mapping file"):
        load_mapping(tmp_path / "m.yaml")
    (tmp_path / "bad.yaml").write_text("layout: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(SourceError, match=r"list.yaml: a mapping file must hold a YAML mapping"):
        load_mapping(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match=r"list.yaml: a config file must hold a YAML mapping"):
        load_config(tmp_path / "list.yaml")
    # An empty config file means "all defaults" of the model given; an empty mapping file is an error.
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml", model="mdma").model == "mdma"
    with pytest.raises(ConfigError, match=r"empty.yaml: no model given"):
        load_config(tmp_path / "empty.yaml")
    with pytest.raises(SourceError, match="must hold a YAML mapping"):
        load_mapping(tmp_path / "empty.yaml")
