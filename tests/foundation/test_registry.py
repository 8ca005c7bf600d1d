"""The one Registry class: duplicates refused, unknown names answered with the valid ones, a lookup that
imports only the module it needs, an index that is complete and current, and every config resolving."""

import json
import subprocess
import sys

import pytest
import yaml

from spikesweep import registry as registry_module
from spikesweep.registry import INDEX_FILE, REGENERATE, Registry, RegistryError, current_index
from tests.conftest import REPO, compose

GROUPS = ("model", "dataset", "neuron", "surrogate", "method", "task")


@pytest.fixture
def scratch(monkeypatch):
    """A registry outside the real ones (they are global: one per kind)."""
    monkeypatch.setattr(registry_module, "_REGISTRIES", {})
    return Registry("widget", "spikesweep.nonexistent_package")


def test_a_duplicate_name_is_refused(scratch):
    @scratch.register("a")
    def first():
        return 1

    def second():
        return 2

    with pytest.raises(RegistryError, match="widget 'a' is registered twice: by .*first and by .*second"):
        scratch.register("a", second)
    assert scratch._entries["a"] is first


def test_reimporting_a_module_is_not_a_duplicate(scratch):
    def build():
        return 1

    scratch.register("a", build)
    scratch.register("a", build)  # importlib.reload runs the same decorator again


def test_two_registries_of_one_kind_are_refused(scratch):
    with pytest.raises(RegistryError, match="registry of kind 'widget' exists already"):
        Registry("widget", "elsewhere")


def test_an_unknown_name_gets_one_line_with_the_valid_ones():
    from spikesweep.models import build_model

    with pytest.raises(ValueError) as err:
        build_model({"name": "msresnet19"}, None, None)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("unknown model 'msresnet19'; valid: ") and "msresnet18, msresnet34" in message


@pytest.mark.parametrize(("kind", "name", "module"), [
    ("model", "sdtv3_s", "spikesweep.models.sdtv3"),
    ("model", "spikingformer_4_384", "spikesweep.models.spikingformer"),
    ("dataset", "shd", "spikesweep.data.events"),
    ("neuron", "gac_lif", "spikesweep.spiking.neurons.gac"),
    ("method", "online", "spikesweep.methods.online"),
])
def test_a_lookup_imports_only_the_module_it_needs(kind, name, module):
    """In a fresh interpreter: of the modules that register a `kind`, only `module` gets imported."""
    home = {"model": "spikesweep.models.registry", "dataset": "spikesweep.data.registry",
            "neuron": "spikesweep.spiking.neurons", "method": "spikesweep.methods"}[kind]
    code = (
        f"import sys, importlib; from spikesweep.registry import _REGISTRIES; importlib.import_module({home!r}); "
        f"_REGISTRIES[{kind!r}].get({name!r}); print('\\n'.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    registering = set(json.loads(INDEX_FILE.read_text())[kind].values())  # the modules that register a {kind}
    assert set(out) & (registering - {home}) == {module}


def test_the_index_is_complete_and_current():
    assert json.loads(INDEX_FILE.read_text()) == current_index(), (
        f"{INDEX_FILE.name} is stale (a name was added, moved or removed): run `{REGENERATE}` and commit it"
    )


def _config_names(group: str) -> dict[str, str]:
    """config file -> the registered name it selects (a preset names its base config in `defaults`)."""
    names = {}
    for path in sorted((REPO / "conf" / group).glob("*.yaml")):
        node = yaml.safe_load(path.read_text())
        while "name" not in node:
            base = next(d for d in node["defaults"] if isinstance(d, str) and d != "_self_")
            node = yaml.safe_load((path.parent / f"{base}.yaml").read_text())
        names[path.stem] = node["name"]
    return names


@pytest.mark.parametrize("group", GROUPS)
def test_every_config_resolves_and_every_name_has_a_config(group):
    registry = registry_module.registries()[group]
    names = _config_names(group)
    assert names, f"conf/{group} is empty"
    for config, name in names.items():
        assert registry.get(name) is not None, f"conf/{group}/{config}.yaml: {name}"
    assert sorted(set(registry.names()) - set(names.values())) == [], f"registered {group}s without a config"


def test_every_neuron_and_surrogate_config_builds_with_its_defaults():
    """The shipped values lie inside every range check."""
    from spikesweep.spiking import build_neuron, build_surrogate

    for config in (REPO / "conf" / "surrogate").glob("*.yaml"):  # some read neuron.D: compose them
        build_surrogate(compose(f"surrogate={config.stem}", "neuron=multispike").surrogate)
    atan = build_surrogate({"name": "atan"})
    for config in (REPO / "conf" / "neuron").glob("*.yaml"):
        build_neuron(yaml.safe_load(config.read_text()), atan, time_steps=4)()
